// Verify a webhook the portal sent: argv = secret, header, body (base64), as received.
import { verifyWebhook } from "@hitl-portal/client";

const [secret, header, bodyB64] = process.argv.slice(2);
const body = Buffer.from(bodyB64, "base64");
const results = {};
for (const [name, s, b] of [
  ["genuine", secret, body],
  ["tampered", secret, Buffer.concat([body, Buffer.from(" ")])],
  ["wrong_secret", secret + "x", body],
]) {
  try {
    results[name] = await verifyWebhook(s, { "X-HITL-Signature": header }, new Uint8Array(b));
  } catch (error) {
    results[name] = `${error.name}: ${error.message}`;
  }
}
console.log(JSON.stringify(results));
