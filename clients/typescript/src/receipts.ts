/** Receipts checked offline: a receipt is a JWS (compact serialization, EdDSA per RFC 8037)
 * signed with the portal's ledger key, `header.payload.signature`, with the header
 * `{"alg": "EdDSA", "kid": <key id>, "typ": "hitl-receipt+jws"}` and the claims as payload.
 * The public keys are `GET /api/v1/ledger/keys` (base64, raw 32 bytes). Expiry and single
 * use are the portal's to say: redeem the receipt right before acting. */

import { actionSha256 } from "./canonical.js";
import { InvalidReceipt } from "./errors.js";

export const RECEIPT_TYPE = "hitl-receipt+jws";

/** Key id → base64 public key (what `ledger/keys` lists). */
export type PublicKeys = Record<string, string>;

export type ReceiptClaims = {
  typ: string;
  iss: string;
  rid: string;
  nonce: string;
  iat: number;
  exp: number;
  seq: number;
  event: number;
  checkpoint: string;
  run: string;
  agent: string;
  tool: string | null;
  action_sha256: string;
  artifacts: { ref: string; sha256: string }[];
  policy: { id: number | null; name: string | null; version: number | null };
  deciders: string[];
  decided_at: string;
  [key: string]: unknown;
};

export type Action = { tool: string | null; args?: Record<string, unknown> };

function unb64(text: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new InvalidReceipt("not a receipt: not base64url");
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function b64decode(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function json(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new InvalidReceipt("not a receipt: undecodable JSON");
  }
}

/** Whether `signature` over `message` verifies with the base64 Ed25519 public key (Web
 * Crypto: Node 20+, Deno, Bun, browsers). */
export async function verifyEd25519(
  publicKeyB64: string,
  signature: Uint8Array<ArrayBuffer>,
  message: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  try {
    const key = await globalThis.crypto.subtle.importKey(
      "raw",
      b64decode(publicKeyB64),
      { name: "Ed25519" },
      false,
      ["verify"],
    );
    return await globalThis.crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  } catch {
    return false;
  }
}

/** The key id the portal gives a public key: the first 16 hex digits of its sha256. */
export async function keyIdOf(publicKeyB64: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", b64decode(publicKeyB64));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0"))
    .join("")
    .slice(0, 16);
}

/** A receipt's claims, checked offline against the portal's public keys; throws
 * InvalidReceipt if the portal did not sign it. With `action` (what you are about to run),
 * also that the receipt was issued for exactly that tool and those arguments. */
export async function openReceipt(
  token: string,
  keys: PublicKeys,
  options: { action?: Action } = {},
): Promise<ReceiptClaims> {
  const parts = typeof token === "string" ? token.split(".") : [];
  if (parts.length !== 3) {
    throw new InvalidReceipt("not a receipt (expected header.payload.signature)");
  }
  const [headerB64, payloadB64, signatureB64] = parts;
  const header = json(unb64(headerB64));
  const claims = json(unb64(payloadB64));
  const signature = unb64(signatureB64);
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new InvalidReceipt("not a receipt: the header is not an object");
  }
  const h = header as Record<string, unknown>;
  if (h.alg !== "EdDSA" || h.typ !== RECEIPT_TYPE) {
    throw new InvalidReceipt("not a HITL receipt (alg/typ)");
  }
  if (typeof h.kid !== "string") {
    throw new InvalidReceipt("not a receipt: the header is not an object with a string kid");
  }
  const key = Object.hasOwn(keys, h.kid) ? keys[h.kid] : undefined;
  if (key === undefined) {
    throw new InvalidReceipt(`signed with an unknown key ${JSON.stringify(h.kid)}`);
  }
  const message = new TextEncoder().encode(`${headerB64}.${payloadB64}`);
  if (!(await verifyEd25519(key, signature, message))) {
    throw new InvalidReceipt("the receipt's signature does not verify");
  }
  if (typeof claims !== "object" || claims === null || Array.isArray(claims)) {
    throw new InvalidReceipt("not a receipt (claims are not an object)");
  }
  const c = claims as ReceiptClaims;
  if (options.action) {
    const digest = await actionSha256(options.action.tool, options.action.args ?? {});
    if (digest !== c.action_sha256) {
      throw new InvalidReceipt(
        `the receipt is for another action than ${options.action.tool} with these arguments`,
      );
    }
  }
  return c;
}
