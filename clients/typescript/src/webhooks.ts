/** Verifying the portal's webhook signatures in a receiver (Web Crypto only), as
 * `hitl_client.webhooks` does:
 *
 *     X-HITL-Signature: t=<unix seconds>,v1=<hex hmac-sha256(secret, "<t>.<raw body>")>
 */

import { hex } from "./canonical.js";
import { WebhookVerificationError } from "./errors.js";

export const SIGNATURE_HEADER = "X-HITL-Signature";
export const DEFAULT_TOLERANCE = 300; // seconds; older signatures are refused (replays)

export type HeadersLike = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeadersLike, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") {
    return (headers as Headers).get(name) ?? undefined;
  }
  const lowered = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === lowered) return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}

function bytes(body: string | ArrayBuffer | Uint8Array): Uint8Array {
  if (typeof body === "string") return new TextEncoder().encode(body);
  return body instanceof Uint8Array ? body : new Uint8Array(body);
}

async function mac(secret: string, timestamp: number, body: Uint8Array): Promise<string> {
  const key = await globalThis.crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const prefix = new TextEncoder().encode(`${timestamp}.`);
  const message = new Uint8Array(prefix.length + body.length);
  message.set(prefix);
  message.set(body, prefix.length);
  return hex(await globalThis.crypto.subtle.sign("HMAC", key, message));
}

/** The header value the portal sends for `body` (for tests of a receiver). */
export async function signWebhook(
  secret: string,
  body: string | ArrayBuffer | Uint8Array,
  timestamp: number = Math.floor(Date.now() / 1000),
): Promise<string> {
  const t = Math.trunc(timestamp);
  return `t=${t},v1=${await mac(secret, t, bytes(body))}`;
}

function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Check the X-HITL-Signature of a request over its raw body (pass the body exactly as
 * received, before any JSON parsing). Resolves true, or rejects with a
 * WebhookVerificationError saying what is wrong. `now` in seconds. */
export async function verifyWebhook(
  secret: string,
  headers: HeadersLike,
  body: string | ArrayBuffer | Uint8Array,
  options: { tolerance?: number; now?: number } = {},
): Promise<true> {
  const tolerance = options.tolerance ?? DEFAULT_TOLERANCE;
  const value = header(headers, SIGNATURE_HEADER);
  if (!value) throw new WebhookVerificationError(`missing ${SIGNATURE_HEADER} header`);
  let timestamp: string | undefined;
  const signatures: string[] = [];
  for (const part of value.split(",")) {
    const item = part.trim();
    const at = item.indexOf("=");
    const key = at < 0 ? item : item.slice(0, at);
    const v = at < 0 ? "" : item.slice(at + 1);
    if (key === "t") timestamp = v;
    else if (key === "v1") signatures.push(v);
  }
  if (timestamp === undefined || !/^[0-9]{1,15}$/.test(timestamp) || signatures.length === 0) {
    throw new WebhookVerificationError(`malformed ${SIGNATURE_HEADER} header`);
  }
  if (!signatures.every((s) => /^[0-9a-fA-F]+$/.test(s))) {
    throw new WebhookVerificationError(`malformed ${SIGNATURE_HEADER} header: v1 is not hex`);
  }
  const t = Number(timestamp);
  const age = (options.now ?? Date.now() / 1000) - t;
  if (tolerance && Math.abs(age) > tolerance) {
    throw new WebhookVerificationError(`signature timestamp is ${Math.trunc(age)} s off (replay?)`);
  }
  const expected = await mac(secret, t, bytes(body));
  if (!signatures.some((s) => sameText(expected, s))) {
    throw new WebhookVerificationError("signature does not match");
  }
  return true;
}
