/** Gating an action behind a human decision, once for every adapter (what the Python
 * client's `require_approval` decorator does): ask, wait, verify the receipt offline, redeem
 * it, and only then run — with the approved, possibly edited, arguments. */

import type { HitlClient, RequestApprovalOptions } from "./client.js";
import { ApprovalRejected } from "./errors.js";
import { type Checkpoint, Rejection } from "./models.js";
import type { ReceiptClaims } from "./receipts.js";
import type { components } from "./schema.js";

type Args = Record<string, unknown>;

/** Titles are one line (the portal refuses line breaks and control characters in one). */
export function oneLine(text: string, limit = 300): string {
  const flat = text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]+/g, " ").trim();
  return [...flat].length <= limit ? flat : [...flat].slice(0, limit - 1).join("").trimEnd() + "…";
}

/** A title from a template with `{arg}` placeholders (unknown ones are kept), or a function. */
export function titleFor<A extends Args>(
  template: string | ((args: A) => string) | undefined,
  tool: string,
  args: A,
): string {
  if (typeof template === "function") return oneLine(String(template(args)));
  const text = template || `Run ${tool}`;
  return oneLine(
    text.replace(/\{(\w+)\}/g, (whole, name: string) =>
      Object.hasOwn(args, name) ? String(args[name]) : whole,
    ),
  );
}

export type GateOptions<A extends Args = Args> = Omit<
  RequestApprovalOptions,
  "tool" | "args" | "action" | "kind" | "confidence"
> & {
  /** The tool's name, as the reviewer sees it and the receipt binds it. */
  tool: string;
  /** A template with `{arg}` placeholders, or a function of the arguments. */
  title?: string | ((args: A) => string);
  /** Seconds to wait for a decision (null: until the checkpoint's own deadline). */
  timeout?: number | null;
  confidence?: number | ((args: A) => number | undefined);
};

export type Gate =
  | {
      approved: true;
      /** What to run: the reviewer's edit if there was one, else the arguments asked. */
      args: Args;
      edited: boolean;
      checkpoint: Checkpoint;
      claims: ReceiptClaims;
      redemption: components["schemas"]["Redemption"];
    }
  | { approved: false; rejection: Rejection; checkpoint: Checkpoint };

/** Ask for `args` to be approved and wait. Approved: the receipt is checked offline (signed by
 * the ledger key, for exactly the action about to run) and redeemed (ConflictError if another
 * replica redeemed it first: do not act). Not approved: a Rejection to tell the model. */
export async function gate<A extends Args>(client: HitlClient, args: A, options: GateOptions<A>): Promise<Gate> {
  const { tool, title, timeout, confidence, ...ask } = options;
  const sent = JSON.parse(JSON.stringify(args ?? {})) as Args; // what the reviewer sees
  const cp = await client.requestApproval(titleFor(title, tool, args), {
    ...ask,
    tool,
    args: sent,
    confidence: typeof confidence === "function" ? confidence(args) : confidence,
  });
  await cp.wait({ timeout: timeout ?? null });
  if (cp.status !== "approved") {
    return { approved: false, rejection: new Rejection(cp.status, cp.reason, cp), checkpoint: cp };
  }
  // null: approved as proposed. An object (even {}) is the reviewer's edit.
  const approved = cp.approvedArgs ?? sent;
  const action = { tool, args: approved };
  const claims = await client.openReceipt(cp.receipt ?? "", { action });
  const redemption = await client.redeem(cp.receipt, action);
  return { approved: true, args: approved, edited: cp.edited, checkpoint: cp, claims, redemption };
}

/** `fn` gated: each call asks, waits, redeems and runs `fn` with the approved arguments. A
 * rejection throws ApprovalRejected, or with `onReject: "return"` resolves to a Rejection
 * (its `toString()` tells the model why). */
export function requireApproval<A extends Args, R>(
  client: HitlClient,
  fn: (args: A) => R | Promise<R>,
  options: GateOptions<A> & { onReject?: "throw" | "return" },
): (args: A) => Promise<R | Rejection> {
  const { onReject = "throw", ...gateOptions } = options;
  return async (args: A) => {
    const outcome = await gate(client, args, gateOptions);
    if (!outcome.approved) {
      if (onReject === "return") return outcome.rejection;
      const cp = outcome.checkpoint;
      throw new ApprovalRejected(cp, cp.reason || String(outcome.rejection), cp.status);
    }
    return fn(outcome.args as A);
  };
}
