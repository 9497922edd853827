import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { WebhookVerificationError, signWebhook, verifyWebhook } from "../dist/index.js";

const body = '{"event":"checkpoint.resolved","id":"é"}';
const t = 1_700_000_000;
const mac = createHmac("sha256", "s3cret").update(`${t}.${body}`).digest("hex");

test("it signs as the portal does and verifies a good signature", async () => {
  assert.equal(await signWebhook("s3cret", body, t), `t=${t},v1=${mac}`);
  const headers = { "x-hitl-signature": `t=${t},v1=${mac}` };
  assert.equal(await verifyWebhook("s3cret", headers, body, { now: t + 10 }), true);
  const fetchHeaders = new Headers({ "X-HITL-Signature": `t=${t},v1=deadbeef, v1=${mac}` });
  assert.equal(await verifyWebhook("s3cret", fetchHeaders, new TextEncoder().encode(body), { now: t }), true);
});

test("it says what is wrong with a bad signature", async () => {
  const v = (header, opts = { now: t }) => verifyWebhook("s3cret", header ? { "X-HITL-Signature": header } : {}, body, opts);
  await assert.rejects(v(null), /missing X-HITL-Signature/);
  await assert.rejects(v(`v1=${mac}`), /malformed/);
  await assert.rejects(v(`t=²,v1=${mac}`), /malformed/);
  await assert.rejects(v(`t=${t},v1=zz`), /v1 is not hex/);
  await assert.rejects(v(`t=${t},v1=${mac}`, { now: t + 301 }), /301 s off/);
  await assert.rejects(v(`t=${t},v1=${"0".repeat(64)}`), /does not match/);
  assert.equal(await v(`t=${t},v1=${mac}`, { now: t + 10_000, tolerance: 0 }), true);
});
