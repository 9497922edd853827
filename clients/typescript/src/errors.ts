/** Exceptions raised by the client (the Python client's `hitl_client.errors`, in TypeScript).
 * Every HTTP error carries the server's problem details. */

import type { Checkpoint } from "./models.js";

export type Problem = {
  code?: string;
  detail?: unknown;
  errors?: unknown;
  winner?: string | null;
  current_status?: string | null;
  [key: string]: unknown;
};

/** Any failure talking to the portal (network, HTTP error, unexpected response). */
export class HitlError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class ApiError extends HitlError {
  readonly status: number;
  readonly problem: Problem;
  readonly code: string;
  readonly detail: string;
  readonly errors: unknown;

  constructor(status: number, problem: Problem | null, text = "") {
    const p = problem ?? {};
    const code = typeof p.code === "string" ? p.code : "";
    const detail = (p.detail ? String(p.detail) : "") || text || `HTTP ${status}`;
    super(`${status} ${code}: ${detail}`.trim());
    this.status = status;
    this.problem = p;
    this.code = code;
    this.detail = detail;
    this.errors = p.errors;
  }
}

export class NotFound extends ApiError {}

/** 409: already decided / finished / redeemed; `winner` says who or what got there first. */
export class ConflictError extends ApiError {
  get winner(): string | null {
    return (this.problem.winner as string | undefined) ?? null;
  }

  get currentStatus(): string | null {
    return (this.problem.current_status as string | undefined) ?? null;
  }
}

/** A human said no (or nobody answered in time). `reason` is what to tell the model: the
 * reviewer's comment, or why it expired. */
export class ApprovalRejected extends HitlError {
  readonly checkpoint: Checkpoint;
  readonly reason: string;
  readonly status: string;

  constructor(checkpoint: Checkpoint, reason: string, status: string) {
    super(reason ? `${status}: ${reason}` : status);
    this.checkpoint = checkpoint;
    this.reason = reason;
    this.status = status;
  }
}

/** The checkpoint was still pending when the caller's own timeout ran out. */
export class WaitTimeout extends HitlError {
  readonly checkpoint: Checkpoint;

  constructor(checkpoint: Checkpoint) {
    super(`checkpoint ${checkpoint.id} still pending`);
    this.checkpoint = checkpoint;
  }
}

/** Not a receipt the portal signed (malformed, unknown key, bad signature), or not for the
 * action you are about to run. */
export class InvalidReceipt extends HitlError {}

export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}
