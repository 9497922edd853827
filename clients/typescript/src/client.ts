/** HitlClient: the agent's side of the HITL Portal API (`hitl_client/client.py`, in
 * TypeScript). Runtime dependencies: `fetch` and Web Crypto only.
 *
 *     const client = new HitlClient({ baseUrl: "https://hitl.example.com", apiKey: "hitl_a…" });
 *     await client.startRun("Clean up the logs volume");
 *     const cp = await client.requestApproval("Delete 3 files", { tool: "delete_files", args });
 *     await cp.wait();
 *     if (cp.approved) {
 *       const args = cp.approvedArgs!;                       // as approved, maybe edited
 *       await client.openReceipt(cp.receipt!, { action: { tool: "delete_files", args } });
 *       await client.redeem(cp.receipt!, { tool: "delete_files", args });   // 409: don't act
 *       deleteFiles(args);
 *     }
 *
 * Times are in seconds, as in the API and the Python client.
 */

import { HitlError, WaitTimeout } from "./errors.js";
import { Checkpoint, type CheckpointData, type RunData, Run, type Action } from "./models.js";
import { openReceipt, type PublicKeys, type ReceiptClaims } from "./receipts.js";
import type { components } from "./schema.js";
import { type Call, isOutage, send, sleep, type Transport } from "./transport.js";
import { VERSION } from "./version.js";

type Schemas = components["schemas"];

/** The server caps one long-poll at 60 s. */
export const MAX_WAIT_SLICE = 55;

export type ClientOptions = {
  /** Default: $HITL_URL, else http://127.0.0.1:8000. */
  baseUrl?: string;
  /** An agent key (or a person's token). Default: $HITL_API_KEY or $HITL_TOKEN. */
  apiKey?: string;
  /** Seconds per request (default 30). */
  timeout?: number;
  /** Retries of a request that meets a network error, 429 or 5xx (default 4: about 8 s). */
  retries?: number;
  /** Seconds a POST keeps retrying through an outage (default 120; null: until it answers). */
  outageTimeout?: number | null;
  userAgent?: string;
  /** Ledger public keys pinned out of band (key id → base64); default: the portal's
   * `GET /ledger/keys`, fetched once. */
  publicKeys?: PublicKeys;
  /** Your own fetch (a proxy, a test double). Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** No key: only the public endpoints answer (the ledger's head and keys). */
  anonymous?: boolean;
};

/** An artifact shown with the request: inline `content` or an uploaded `ref`. */
export type ArtifactIn = Partial<Schemas["ArtifactInRequest"]> & { name: string };

export type StartRunOptions = {
  externalId?: string;
  metadata?: Record<string, unknown>;
  /** A one-question run, completed by the portal once its checkpoints are resolved. */
  completeWhenResolved?: boolean;
  idempotencyKey?: string;
};

export type RequestApprovalOptions = {
  tool?: string;
  args?: Record<string, unknown>;
  action?: Action;
  summary?: string;
  risk?: Schemas["RiskEnum"];
  context?: Record<string, unknown>;
  reasoning?: string[];
  artifacts?: ArtifactIn[];
  /** Seconds until it expires (default: by policy). */
  expiresIn?: number;
  roleHint?: string;
  kind?: Schemas["CheckpointKindEnum"];
  options?: (string | { value: string; label?: string })[];
  run?: Run | string;
  /** One request, however often it is sent (a retry after a crash): the portal replays it. */
  idempotencyKey?: string;
  /** Your own id: asking again with the same id and body returns the same checkpoint. */
  externalId?: string;
  allowedOutcomes?: Schemas["AllowedOutcomesEnum"][];
  rejectOptions?: Schemas["RejectOptionRequest"][];
  /** The JSON Schema a reviewer's edit must fit. */
  argsSchema?: Record<string, unknown>;
  /** The integration asking (`context.source`): one the portal knows. */
  source?: Schemas["SourceEnum"];
  /** Your own confidence in the action, 0 to 1. */
  confidence?: number;
};

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.[name] || undefined;
}

export class HitlClient {
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  /** The run later calls default to (set by startRun / ensureRun). */
  run: Run | null = null;
  readonly #transport: Transport;
  #keys: PublicKeys | null;

  constructor(options: ClientOptions = {}) {
    this.baseUrl = (options.baseUrl ?? env("HITL_URL") ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
    this.apiKey = options.apiKey ?? env("HITL_API_KEY") ?? env("HITL_TOKEN");
    if (!this.apiKey && !options.anonymous) {
      throw new HitlError("no API key: pass apiKey or set HITL_API_KEY");
    }
    const headers: Record<string, string> = {
      "User-Agent": options.userAgent ?? `hitl-client-ts/${VERSION}`,
      Accept: "application/json",
    };
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new HitlError("no fetch: pass options.fetch");
    this.#transport = {
      baseUrl: this.baseUrl,
      headers,
      timeout: options.timeout ?? 30,
      retries: options.retries ?? 4,
      patience: options.outageTimeout === undefined ? 120 : options.outageTimeout,
      fetch: f.bind(globalThis),
    };
    this.#keys = options.publicKeys ?? null;
  }

  /** One API call (`path` under /api/v1/), retried on network errors, 429 and 5xx (a POST
   * until `outageTimeout`); resolves to the JSON body, rejects with ApiError (NotFound,
   * ConflictError) or HitlError. Every method goes through here. */
  request<T = any>(call: Call): Promise<T> {
    return send(this.#transport, call);
  }

  // --- runs -----------------------------------------------------------------------------

  /** Start a run of this agent; later calls default to it (`client.run`). */
  async startRun(task: string, options: StartRunOptions = {}): Promise<Run> {
    const json: Record<string, unknown> = {
      task,
      external_id: options.externalId ?? "",
      metadata: options.metadata ?? {},
    };
    if (options.completeWhenResolved) json.complete_when_resolved = true;
    const headers = options.idempotencyKey ? { "Idempotency-Key": options.idempotencyKey } : undefined;
    this.run = new Run(await this.request<RunData>({ method: "POST", path: "runs/", json, headers }));
    return this.run;
  }

  /** This agent's unfinished run named `externalId` (a conversation, a thread), else a new
   * one; later calls default to it. */
  async ensureRun(externalId: string, task: string, options: { metadata?: Record<string, unknown> } = {}): Promise<Run> {
    const page = await this.request<{ results: RunData[] }>({
      method: "GET",
      path: "runs/",
      params: { external_id: externalId, limit: 20 },
    });
    for (const data of page.results) {
      if (data.status === "running" || data.status === "waiting") {
        this.run = new Run(data);
        return this.run;
      }
    }
    // Concurrent first calls (parallel tool calls) start one run: the same key replays it.
    return this.startRun(task, {
      externalId,
      metadata: options.metadata,
      idempotencyKey: `run:${externalId}`.slice(0, 255),
    });
  }

  async getRun(runId: string): Promise<Run> {
    return new Run(await this.request({ method: "GET", path: `runs/${runId}/` }));
  }

  #runId(run?: Run | string | null): string {
    if (run instanceof Run) return run.id;
    if (run) return String(run);
    if (this.run === null) throw new HitlError("no run: call startRun() first or pass run");
    return this.run.id;
  }

  async completeRun(
    options: { run?: Run | string; status?: "completed" | "failed"; result?: unknown; error?: string } = {},
  ): Promise<Run> {
    const json = { status: options.status ?? "completed", result: options.result ?? null, error: options.error ?? "" };
    const done = new Run(
      await this.request({ method: "POST", path: `runs/${this.#runId(options.run)}/complete/`, json }),
    );
    if (this.run !== null && this.run.id === done.id) this.run = done;
    return done;
  }

  /** A line in the run's timeline (reviewers see it next to the checkpoint). */
  async log(
    message: string,
    options: { kind?: Schemas["RunEventKindEnum"]; data?: Record<string, unknown>; run?: Run | string } = {},
  ): Promise<Schemas["RunEventOut"]> {
    const json = { kind: options.kind ?? "log", message, data: options.data ?? {} };
    return this.request({ method: "POST", path: `runs/${this.#runId(options.run)}/events/`, json });
  }

  // --- checkpoints ----------------------------------------------------------------------

  /** Ask a human to approve `tool(args)`. Resolves at once (pending, or already decided when
   * a policy decides it: `cp.automatic`); then `cp.wait()`. Starts a run if there is none. */
  async requestApproval(title: string, o: RequestApprovalOptions = {}): Promise<Checkpoint> {
    if (o.confidence !== undefined && !(o.confidence >= 0 && o.confidence <= 1)) {
      throw new RangeError("confidence is a number from 0 to 1");
    }
    if (o.run === undefined && this.run === null) await this.startRun(title);
    const json: Record<string, unknown> = {
      run: this.#runId(o.run),
      kind: o.kind ?? "approval",
      title,
      summary: o.summary ?? "",
      risk: o.risk ?? "medium",
      role_hint: o.roleHint ?? "",
    };
    let action = o.action;
    if (action === undefined && o.tool) action = { tool: o.tool, args: o.args ?? {} };
    if (action !== undefined && o.argsSchema !== undefined) action = { ...action, args_schema: o.argsSchema };
    if (action !== undefined) json.action = action;
    const context: Record<string, unknown> = { ...(o.context ?? {}) };
    if (o.source) context.source = o.source;
    if (o.reasoning?.length) context.reasoning = [...o.reasoning];
    if (Object.keys(context).length) json.context = context;
    if (o.artifacts?.length) json.artifacts = o.artifacts;
    if (o.expiresIn) json.expires_in = Math.trunc(o.expiresIn);
    if (o.options?.length) json.options = o.options;
    if (o.externalId) json.external_id = o.externalId;
    if (o.allowedOutcomes?.length) json.allowed_outcomes = [...o.allowedOutcomes];
    if (o.rejectOptions?.length) json.reject_options = [...o.rejectOptions];
    if (o.confidence !== undefined) json.confidence = o.confidence;
    const headers = o.idempotencyKey ? { "Idempotency-Key": o.idempotencyKey } : undefined;
    return new Checkpoint(this, await this.request<CheckpointData>({ method: "POST", path: "checkpoints/", json, headers }));
  }

  /** Ask a human a question and resolve to the answer (rejects with ApprovalRejected if they
   * decline or nobody answers before the deadline). */
  async ask(
    question: string,
    options: Omit<RequestApprovalOptions, "kind"> & { timeout?: number | null } = {},
  ): Promise<string> {
    const { timeout, ...rest } = options;
    const cp = await this.requestApproval(question, { ...rest, kind: "question" });
    await cp.wait({ timeout });
    cp.raiseForOutcome();
    return cp.answer ?? "";
  }

  async getCheckpoint(checkpointId: string): Promise<Checkpoint> {
    return new Checkpoint(this, await this.request({ method: "GET", path: `checkpoints/${checkpointId}/` }));
  }

  /** This agent's checkpoint with your own id `externalId`, or null. */
  async findCheckpoint(externalId: string): Promise<Checkpoint | null> {
    const page = await this.request<{ results: CheckpointData[] }>({
      method: "GET",
      path: "checkpoints/",
      params: { external_id: externalId },
    });
    return page.results.length ? new Checkpoint(this, page.results[0]) : null;
  }

  /** Long-poll until decided; `timeout` (seconds) null or absent waits until it is resolved
   * (the portal expires it at its deadline). Rejects with WaitTimeout if still pending after
   * `timeout`.
   *
   * A portal that is down or restarting (connection refused, 5xx, 429) does not end the
   * wait: it is retried with capped backoff (1 s doubling to 30 s) until `timeout` runs out
   * (forever with null), and the last error is thrown only then. A refusal (4xx: no such
   * checkpoint, a revoked key) is thrown at once. */
  async wait(checkpointId: string, options: { timeout?: number | null } = {}): Promise<Checkpoint> {
    const timeout = options.timeout ?? null;
    const now = () => Date.now() / 1000;
    const deadline = timeout === null ? null : now() + timeout;
    let backoff = 1;
    for (;;) {
      const remaining = deadline === null ? MAX_WAIT_SLICE : deadline - now();
      const piece = Math.max(0, Math.min(MAX_WAIT_SLICE, remaining));
      let data: CheckpointData;
      try {
        data = await this.request({
          method: "GET",
          path: `checkpoints/${checkpointId}/wait`,
          params: { timeout: piece.toFixed(1) },
          timeout: piece + 15,
        });
      } catch (error) {
        const left = deadline === null ? null : deadline - now();
        if (!isOutage(error) || (left !== null && left <= 0)) throw error;
        await sleep(left === null ? backoff : Math.min(backoff, left));
        backoff = Math.min(backoff * 2, 30);
        continue;
      }
      backoff = 1;
      const cp = new Checkpoint(this, data);
      if (!cp.pending) return cp;
      if (deadline !== null && now() >= deadline) throw new WaitTimeout(cp);
    }
  }

  async cancel(checkpointId: string, reason = ""): Promise<Checkpoint> {
    return new Checkpoint(
      this,
      await this.request({ method: "POST", path: `checkpoints/${checkpointId}/cancel/`, json: { reason } }),
    );
  }

  /** Upload a file; resolves to {id, ref, sha256, size}. Use `ref` in `artifacts`. */
  async uploadArtifact(
    content: Uint8Array | Blob | string,
    options: { name?: string; kind?: string } = {},
  ): Promise<Schemas["ArtifactCreated"]> {
    const name = options.name ?? "artifact";
    const blob = content instanceof Blob ? content : new Blob([content as BlobPart]);
    const body = new FormData();
    body.set("file", blob, name);
    body.set("name", name);
    body.set("kind", options.kind ?? "file");
    return this.request({ method: "POST", path: "artifacts/", body });
  }

  /** The bytes of an artifact. */
  async artifactContent(artifactId: string): Promise<Uint8Array> {
    return this.request({ method: "GET", path: `artifacts/${artifactId}/content/`, raw: true });
  }

  // --- receipts and the ledger ----------------------------------------------------------

  /** The ledger's public keys (key id → base64): the pinned ones, else the portal's
   * (fetched once per client). */
  async publicKeys(): Promise<PublicKeys> {
    if (this.#keys === null) {
      const served = await this.request<Schemas["LedgerKeys"]>({ method: "GET", path: "ledger/keys" });
      this.#keys = Object.fromEntries(served.keys.map((k) => [k.key_id, k.public_key]));
    }
    return this.#keys;
  }

  /** A receipt's claims, checked offline (Ed25519 over the JWS) against the ledger's public
   * keys; with `action`, also that it was issued for exactly that tool and those arguments.
   * Rejects with InvalidReceipt. Single use and expiry are the portal's: `redeem`. */
  async openReceipt(token: string, options: { action?: Action } = {}): Promise<ReceiptClaims> {
    return openReceipt(token, await this.publicKeys(), options);
  }

  /** Spend an approval's receipt right before acting: `tool`/`args` (or `action`) must be
   * exactly what you are about to run. Rejects with ConflictError (409) if it was already
   * redeemed (by another replica: do not act), expired or is for another action. */
  async redeem(
    receipt: string | null | undefined,
    options: { tool?: string | null; args?: Record<string, unknown>; action?: Action },
  ): Promise<Schemas["Redemption"]> {
    if (!receipt) throw new HitlError("no receipt: only an approved checkpoint has one (cp.receipt)");
    const action = options.action ?? { tool: options.tool ?? null, args: options.args ?? {} };
    return this.request({ method: "POST", path: "receipts/redeem/", json: { receipt, action } });
  }

  /** Check a receipt at the portal without spending it: {valid, problem, claims, ...}. */
  async verifyReceipt(receipt: string, options: { action?: Action } = {}): Promise<Schemas["ReceiptCheck"]> {
    const json: Record<string, unknown> = { receipt };
    if (options.action) json.action = options.action;
    return this.request({ method: "POST", path: "receipts/verify/", json });
  }

  /** The latest signed tree head of the portal's audit ledger. */
  async ledgerHead(): Promise<Schemas["TreeHead"]> {
    return this.request({ method: "GET", path: "ledger/head" });
  }

  // --- people ---------------------------------------------------------------------------

  /** With a person's token: their review queue, soonest deadline first. */
  async queue(limit = 50): Promise<Schemas["QueueItem"][]> {
    return (await this.request({ method: "GET", path: "queue/", params: { limit } })).results;
  }

  /** With a person's token: approve / reject / modify (edited `args`) / answer. */
  async decide(
    checkpointId: string,
    outcome: Schemas["DecisionOutcomeEnum"],
    options: { comment?: string; args?: Record<string, unknown>; answer?: string; actionSha256?: string } = {},
  ): Promise<Schemas["DecisionResult"]> {
    const json: Record<string, unknown> = { outcome, comment: options.comment ?? "", answer: options.answer ?? "" };
    if (options.actionSha256) json.action_sha256 = options.actionSha256;
    if (options.args !== undefined) json.action = { args: options.args };
    return this.request({ method: "POST", path: `checkpoints/${checkpointId}/decision/`, json });
  }
}
