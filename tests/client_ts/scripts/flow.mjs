// An agent written against the installed @hitl-portal/client: start a run, ask, wait, check
// the receipt offline, redeem it, then "execute" (print) what was approved. Prints one JSON
// line when it has asked ({checkpoint}) and one when it is done.
import { ConflictError, HitlClient } from "@hitl-portal/client";

const out = (value) => console.log(JSON.stringify(value));
const client = new HitlClient(); // HITL_URL, HITL_API_KEY
const run = await client.startRun("Free disk space on web-1", { externalId: "ts-flow" });
const args = { paths: ["/var/log/a.log", "/var/log/b.log"], force: false };
const ask = () =>
  client.requestApproval("Delete 2 old logs", {
    tool: "delete_files",
    args,
    risk: "high",
    reasoning: ["disk 95%"],
    idempotencyKey: "ts-flow-ask-1",
  });
const cp = await ask();
const again = await ask(); // the same key: the portal replays the first answer
out({ run: run.id, checkpoint: cp.id, again: again.id, status: cp.status });

await cp.wait();
if (!cp.approved) {
  out({ status: cp.status, reason: cp.reason });
  process.exit(0);
}
const action = { tool: "delete_files", args: cp.approvedArgs ?? args };
const claims = await client.openReceipt(cp.receipt, { action }); // offline: Ed25519 + digest
let forged = null;
try {
  await client.openReceipt(cp.receipt, { action: { tool: "delete_files", args } }); // the original
} catch (error) {
  forged = error.name;
}
const redemption = await client.redeem(cp.receipt, action);
let second = null;
try {
  await client.redeem(cp.receipt, action);
} catch (error) {
  second = error instanceof ConflictError ? { status: error.status, code: error.code } : String(error);
}
const executed = action; // a real agent would delete the files here
await client.completeRun({ result: { deleted: executed.args.paths.length } });
out({
  status: cp.status,
  edited: cp.edited,
  decidedBy: cp.decidedBy,
  ledgerSeq: cp.ledgerSeq,
  claims,
  originalArgsRefused: forged,
  redemption,
  secondRedeem: second,
  executed,
});
