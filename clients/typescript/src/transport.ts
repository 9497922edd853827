/** The one retry policy (`hitl_client/_transport.py`'s, in TypeScript). A request that meets
 * a network error, 429 or 5xx is retried `retries` times with backoff (0.5 s doubling to 8 s,
 * or a 429's / 503's Retry-After, at most a minute). A POST carries an Idempotency-Key (one
 * per call, the same on every attempt, so a retry never acts twice) and keeps retrying
 * through an outage until `patience` seconds have passed (null: until the portal answers). */

import { ApiError, ConflictError, HitlError, NotFound, type Problem } from "./errors.js";

export const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);

export type Call = {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Relative to /api/v1/. */
  path: string;
  json?: unknown;
  body?: FormData;
  params?: Record<string, string | number | boolean | undefined>;
  headers?: Record<string, string>;
  /** Seconds for this request (default: the client's). */
  timeout?: number;
  /** Return the body's bytes instead of its JSON. */
  raw?: boolean;
};

export type Transport = {
  baseUrl: string;
  headers: Record<string, string>;
  timeout: number;
  retries: number;
  patience: number | null;
  fetch: typeof fetch;
};

export const sleep = (seconds: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, seconds) * 1000));

async function errorFor(response: Response): Promise<ApiError> {
  const text = await response.text();
  let problem: Problem | null = null;
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) problem = parsed;
  } catch {
    problem = null;
  }
  const cls = response.status === 404 ? NotFound : response.status === 409 ? ConflictError : ApiError;
  return new cls(response.status, problem, text.slice(0, 500));
}

function retryAfter(response: Response): number | null {
  const value = response.headers.get("Retry-After");
  if (value === null) return null;
  const seconds = Number(value);
  return Number.isFinite(value.trim() === "" ? NaN : seconds) ? Math.min(seconds, 60) : null;
}

/** A 429's Retry-After, or a 503's if it sends one (at most a minute), else exponential
 * backoff from 0.5 s to 8 s. */
export function retryDelay(attempt: number, response: Response | null): number {
  const backoff = Math.min(0.5 * 2 ** attempt, 8);
  if (response?.status === 429) return retryAfter(response) ?? 1;
  if (response?.status === 503) return retryAfter(response) ?? backoff;
  return backoff;
}

/** The portal is unreachable or overloaded (worth waiting out), as opposed to refusing the
 * request (4xx): a transport error, 429 or 5xx. */
export function isOutage(error: unknown): boolean {
  if (error instanceof ApiError) return RETRY_STATUSES.has(error.status);
  return error instanceof HitlError;
}

function url(t: Transport, call: Call): string {
  const target = new URL(`${t.baseUrl}/api/v1/${call.path.replace(/^\/+/, "")}`);
  for (const [name, value] of Object.entries(call.params ?? {})) {
    if (value !== undefined) target.searchParams.set(name, String(value));
  }
  return target.toString();
}

/** Send `call`, retrying as the policy says; the parsed JSON body (null if empty). */
export async function send(t: Transport, call: Call): Promise<any> {
  const headers: Record<string, string> = { ...t.headers, ...call.headers };
  if (call.method === "POST" && !Object.keys(headers).some((h) => h.toLowerCase() === "idempotency-key")) {
    headers["Idempotency-Key"] = globalThis.crypto.randomUUID();
  }
  const idempotent = Object.keys(headers).some((h) => h.toLowerCase() === "idempotency-key");
  let body: string | FormData | undefined;
  if (call.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(call.json);
  } else if (call.body !== undefined) {
    body = call.body;
  }
  const deadline = !idempotent
    ? -Infinity
    : t.patience === null
      ? Infinity
      : Date.now() / 1000 + t.patience;
  const target = url(t, call);
  const seconds = call.timeout ?? t.timeout;
  for (let attempt = 0; ; attempt++) {
    let response: Response | null = null;
    let failure: unknown = null;
    const signal = AbortSignal.timeout(Math.ceil(seconds * 1000)); // an integer, or it throws
    try {
      response = await t.fetch(target, {
        method: call.method,
        headers,
        body,
        signal,
      });
    } catch (error) {
      failure = error;
    }
    if (response !== null && response.status < 400) {
      if (call.raw) return new Uint8Array(await response.arrayBuffer());
      const text = await response.text();
      return text ? JSON.parse(text) : null;
    }
    const left = deadline - Date.now() / 1000;
    const spent = attempt >= t.retries;
    if ((response !== null && !RETRY_STATUSES.has(response.status)) || (spent && left <= 0)) {
      if (response === null) {
        throw new HitlError(`${call.method} ${call.path}: ${String((failure as Error)?.message ?? failure)}`, {
          cause: failure,
        });
      }
      throw await errorFor(response);
    }
    const delay = retryDelay(attempt, response);
    if (response !== null) await response.body?.cancel();
    await sleep(spent ? Math.min(delay, left) : delay);
  }
}
