// The retry policy and the wait loop, against a scripted fetch (the live test covers the
// real portal).
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConflictError, HitlClient, NotFound, WaitTimeout } from "../dist/index.js";

function scripted(...steps) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url: String(url), ...init });
    const step = steps.shift();
    if (step === undefined) throw new Error("unexpected request");
    if (step instanceof Error) throw step;
    const [status, body, headers = {}] = step;
    return new Response(body === undefined ? null : JSON.stringify(body), { status, headers });
  };
  return { fetch, calls };
}

const pending = { id: "c1", status: "pending", decision: null };
const approved = { id: "c1", status: "approved", decision: { outcome: "modify", action: { tool: "rm", args: { p: 1 } }, comment: "ok" } };

test("a POST is retried through 503s with the same Idempotency-Key", async () => {
  const { fetch, calls } = scripted([503, {}, { "Retry-After": "0" }], new TypeError("fetch failed"), [201, { id: "r1", status: "running" }]);
  const client = new HitlClient({ baseUrl: "http://portal.test/", apiKey: "k", fetch, retries: 1 });
  const run = await client.startRun("task");
  assert.equal(run.id, "r1");
  assert.equal(client.run.id, "r1");
  assert.equal(calls.length, 3);
  const keys = calls.map((c) => c.headers["Idempotency-Key"]);
  assert.ok(keys[0] && keys.every((k) => k === keys[0]));
  assert.equal(calls[0].url, "http://portal.test/api/v1/runs/");
  assert.equal(calls[0].headers.Authorization, "Bearer k");
  assert.deepEqual(JSON.parse(calls[0].body), { task: "task", external_id: "", metadata: {} });
});

test("refusals are thrown at once, with the problem details", async () => {
  const { fetch, calls } = scripted([404, { code: "not_found", detail: "No such checkpoint." }], [409, { code: "receipt_redeemed", detail: "Already.", winner: "bot" }]);
  const client = new HitlClient({ baseUrl: "http://portal.test", apiKey: "k", fetch });
  await assert.rejects(client.getCheckpoint("nope"), (e) => e instanceof NotFound && e.code === "not_found");
  await assert.rejects(client.redeem("tok", { tool: "rm", args: {} }), (e) => e instanceof ConflictError && e.winner === "bot");
  assert.equal(calls.length, 2);
});

test("wait long-polls through an outage and returns the decision", async () => {
  const down = new TypeError("fetch failed");
  const { fetch, calls } = scripted([200, pending], down, [502, {}], [200, approved]);
  const client = new HitlClient({ baseUrl: "http://portal.test", apiKey: "k", fetch, retries: 0 });
  const cp = await client.wait("c1", { timeout: 30 });
  assert.equal(cp.approved, true);
  assert.equal(cp.edited, true);
  assert.deepEqual(cp.approvedArgs, { p: 1 });
  assert.match(calls[0].url, /checkpoints\/c1\/wait\?timeout=/);
  assert.equal(calls.length, 4);
});

test("wait gives up at its own timeout", async () => {
  const { fetch } = scripted([200, pending], [200, pending]);
  const client = new HitlClient({ baseUrl: "http://portal.test", apiKey: "k", fetch });
  await assert.rejects(client.wait("c1", { timeout: 0 }), WaitTimeout);
});

test("requestApproval sends the checkpoint as the Python client does", async () => {
  const { fetch, calls } = scripted([201, { id: "r1", status: "running" }], [201, pending]);
  const client = new HitlClient({ baseUrl: "http://portal.test", apiKey: "k", fetch });
  await client.requestApproval("Delete", {
    tool: "rm", args: { p: 1 }, risk: "high", reasoning: ["disk full"], idempotencyKey: "ask-1",
    argsSchema: { type: "object" }, externalId: "x1", confidence: 0.5,
  });
  const sent = JSON.parse(calls[1].body);
  assert.equal(calls[1].headers["Idempotency-Key"], "ask-1");
  assert.deepEqual(sent, {
    run: "r1", kind: "approval", title: "Delete", summary: "", risk: "high", role_hint: "",
    action: { tool: "rm", args: { p: 1 }, args_schema: { type: "object" } },
    context: { reasoning: ["disk full"] }, external_id: "x1", confidence: 0.5,
  });
});
