/** Result objects: a Run, a Checkpoint (with its decision), a Rejection
 * (`hitl_client/models.py`). The JSON is the portal's, typed from its OpenAPI schema. */

import { ApprovalRejected } from "./errors.js";
import type { components } from "./schema.js";

export type CheckpointData = components["schemas"]["CheckpointOut"];
export type DecisionData = components["schemas"]["DecisionOut"];
export type RunData = components["schemas"]["RunOut"];
export type Action = { tool: string | null; args?: Record<string, unknown>; [key: string]: unknown };

export const RESOLVED = ["approved", "rejected", "answered", "expired", "cancelled"] as const;

/** What a Checkpoint needs of the client (to refresh, wait and cancel itself). */
export interface CheckpointSource {
  getCheckpoint(id: string): Promise<Checkpoint>;
  wait(id: string, options?: { timeout?: number | null }): Promise<Checkpoint>;
  cancel(id: string, reason?: string): Promise<Checkpoint>;
}

/** A request for a human, as the portal last described it. `wait()` refreshes it. */
export class Checkpoint {
  data: CheckpointData;
  readonly #client: CheckpointSource;

  constructor(client: CheckpointSource, data: CheckpointData) {
    this.#client = client;
    this.data = data;
  }

  get id(): string {
    return this.data.id;
  }
  get status(): CheckpointData["status"] {
    return this.data.status;
  }
  get title(): string {
    return this.data.title ?? "";
  }
  get reviewUrl(): string {
    return this.data.review_url ?? "";
  }
  get decision(): DecisionData | null {
    return this.data.decision ?? null;
  }
  get pending(): boolean {
    return this.status === "pending";
  }
  get approved(): boolean {
    return this.status === "approved";
  }
  get rejected(): boolean {
    return ["rejected", "expired", "cancelled"].includes(this.status);
  }
  get answer(): string | null {
    return this.decision?.answer ?? null;
  }
  /** The reviewer's comment (why it was rejected, or a note with an approval). */
  get reason(): string {
    return this.decision?.comment || "";
  }
  /** The action as approved: possibly edited by the reviewer. Run this, not the proposal. */
  get approvedAction(): Action | null {
    return (this.decision?.action as Action | null | undefined) ?? null;
  }
  get approvedArgs(): Record<string, unknown> | null {
    const action = this.approvedAction;
    return action === null ? null : { ...(action.args ?? {}) };
  }
  /** Decided by a policy (an auto-approve or auto-reject rule), not a person. */
  get automatic(): boolean {
    return Boolean(this.decision?.automatic);
  }
  /** Who decided: a username, or "policy <name> v<n>" for an automatic decision. */
  get decidedBy(): string | null {
    const policy = this.decision?.decided_by_policy;
    if (policy) return `policy ${policy.name} v${policy.version}`;
    return this.decision?.decided_by ?? null;
  }
  /** An approval's signed, single-use receipt: verify it (`client.openReceipt`) and redeem
   * it (`client.redeem`) right before acting. */
  get receipt(): string | null {
    return this.decision?.receipt ?? null;
  }
  /** The decision's place in the portal's audit ledger. */
  get ledgerSeq(): number | null {
    return this.decision?.ledger?.seq ?? null;
  }
  get edited(): boolean {
    return this.decision?.outcome === "modify";
  }

  async refresh(): Promise<this> {
    this.data = (await this.#client.getCheckpoint(this.id)).data;
    return this;
  }

  /** Until decided (or `timeout` seconds; null waits until the checkpoint's own deadline,
   * after which the portal expires it). Resolves to this checkpoint, updated. */
  async wait(options: { timeout?: number | null } = {}): Promise<this> {
    this.data = (await this.#client.wait(this.id, options)).data;
    return this;
  }

  async cancel(reason = ""): Promise<this> {
    this.data = (await this.#client.cancel(this.id, reason)).data;
    return this;
  }

  /** Throw ApprovalRejected unless approved or answered. */
  raiseForOutcome(): this {
    if (this.status === "approved" || this.status === "answered") return this;
    if (this.pending) throw new ApprovalRejected(this, "still pending", "pending");
    throw new ApprovalRejected(this, this.reason || this.status, this.status);
  }

  toJSON(): CheckpointData {
    return this.data;
  }
}

export class Run {
  constructor(public data: RunData) {}
  get id(): string {
    return this.data.id;
  }
  get status(): RunData["status"] {
    return this.data.status;
  }
}

/** What an approval-gated tool returns instead of running (when it does not throw): its
 * `toString()` is a sentence to hand back to the model. */
export class Rejection {
  constructor(
    readonly status: string,
    readonly reason: string,
    readonly checkpoint: Checkpoint | null = null,
  ) {}

  toString(): string {
    const what =
      { expired: "nobody approved it in time", cancelled: "it was withdrawn" }[this.status] ??
      "a human reviewer rejected it";
    return `Not done: ${what}.` + (this.reason ? ` Reason: ${this.reason}` : "");
  }
}
