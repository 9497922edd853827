// Offline receipt checks against a key of our own, signed the way core/ledger/receipts.py
// signs (the live test checks receipts the real portal issued).
import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidReceipt, actionSha256, canonicalJson, keyIdOf, openReceipt } from "../dist/index.js";

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");

async function issuer() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const raw = Buffer.from(await crypto.subtle.exportKey("raw", pair.publicKey)).toString("base64");
  const kid = await keyIdOf(raw);
  const sign = async (claims, header = { alg: "EdDSA", kid, typ: "hitl-receipt+jws" }) => {
    const h = b64url(new TextEncoder().encode(canonicalJson(header)));
    const p = b64url(new TextEncoder().encode(canonicalJson(claims)));
    const sig = await crypto.subtle.sign("Ed25519", pair.privateKey, new TextEncoder().encode(`${h}.${p}`));
    return `${h}.${p}.${b64url(new Uint8Array(sig))}`;
  };
  return { keys: { [kid]: raw }, kid, sign };
}

test("it opens a receipt signed by a known key, for the action about to run", async () => {
  const { keys, sign } = await issuer();
  const args = { paths: ["/tmp/a"] };
  const token = await sign({ checkpoint: "c1", tool: "rm", action_sha256: await actionSha256("rm", args) });
  const claims = await openReceipt(token, keys, { action: { tool: "rm", args } });
  assert.equal(claims.checkpoint, "c1");
  await assert.rejects(openReceipt(token, keys, { action: { tool: "rm", args: { paths: ["/"] } } }), InvalidReceipt);
});

test("it refuses a tampered, foreign or malformed receipt", async () => {
  const { keys, sign } = await issuer();
  const other = await issuer();
  const token = await sign({ checkpoint: "c1", action_sha256: "x" });
  const [h, , s] = token.split(".");
  const forged = `${h}.${b64url(new TextEncoder().encode('{"checkpoint":"c2"}'))}.${s}`;
  await assert.rejects(openReceipt(forged, keys), /does not verify/);
  await assert.rejects(openReceipt(token, other.keys), /unknown key/);
  await assert.rejects(openReceipt("a.b", keys), /expected header.payload.signature/);
  await assert.rejects(openReceipt(await sign({}, { alg: "none", kid: "k", typ: "hitl-receipt+jws" }), keys), /alg\/typ/);
  await assert.rejects(openReceipt(await sign([1]), keys), /claims are not an object/);
});
