// OpenAI Agents JS (`@openai/agents`, the real package) with its ScriptedModel (no network),
// in two processes: `submit` runs until the tools' approvals interrupt it and submits them;
// `resume` (a fresh process and Agent) loads the state from the portal, applies the decisions
// and finishes the run.
import { Agent, run, setTracingDisabled, tool } from "@openai/agents";
import { ScriptedModel, assistantMessage, functionCall } from "@openai/agents/testing";
import { HitlClient } from "@hitl-portal/client";
import { resumeState, submitInterruptions, wrapTools } from "@hitl-portal/client/openai-agents";

setTracingDisabled(true);
const [mode, ...ids] = process.argv.slice(2);
const executed = [];
const client = new HitlClient();

function agent(model) {
  const deleteFiles = tool({
    name: "delete_files",
    description: "Delete files",
    parameters: {
      type: "object",
      properties: { paths: { type: "array", items: { type: "string" } } },
      required: ["paths"],
      additionalProperties: false,
    },
    strict: true,
    needsApproval: true,
    execute: async ({ paths }) => {
      executed.push({ tool: "delete_files", paths });
      return `deleted ${paths.length}`;
    },
  });
  const restart = tool({
    name: "restart_service",
    description: "Restart a service",
    parameters: { type: "object", properties: { name: { type: "string" } }, required: ["name"], additionalProperties: false },
    strict: true,
    needsApproval: true,
    execute: async ({ name }) => {
      executed.push({ tool: "restart_service", name });
      return "restarted";
    },
  });
  return new Agent({ name: "janitor", instructions: "Keep disks free.", model, tools: wrapTools([deleteFiles, restart]) });
}

if (mode === "submit") {
  const model = new ScriptedModel([
    [
      functionCall("delete_files", { paths: ["/var/log/a.log", "/etc/passwd"] }, { callId: "call_del" }),
      functionCall("restart_service", { name: "nginx" }, { callId: "call_rst" }),
    ],
  ]);
  const result = await run(agent(model), "free some disk space");
  const cps = await submitInterruptions(client, result, { runExternalId: "ts-agents-42" });
  const again = await submitInterruptions(client, result, { runExternalId: "ts-agents-42" });
  console.log(JSON.stringify({
    interruptions: result.interruptions.length,
    checkpoints: cps.map((c) => c.id),
    again: again.map((c) => c.id),
    executed,
  }));
} else {
  const model = new ScriptedModel([[assistantMessage("All done.")]]);
  const a = agent(model);
  const cps = await Promise.all(ids.map((id) => client.getCheckpoint(id)));
  const state = await resumeState(client, a, cps, { timeout: 60 });
  const result = await run(a, state);
  const sent = model.calls.at(-1).request.input;
  const outputs = sent
    .filter((item) => item.type === "function_call_result")
    .map((item) => ({ callId: item.callId, output: item.output }));
  console.log(JSON.stringify({ finalOutput: result.finalOutput, executed, outputs }));
}
