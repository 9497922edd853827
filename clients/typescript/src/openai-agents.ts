/** OpenAI Agents JS (`@openai/agents`): submit a paused run's tool approvals to the portal,
 * keep its `RunState` there, and resume it with the reviewers' decisions
 * (`hitl_client.openai_agents`, in TypeScript).
 *
 *     const agent = new Agent({ name: "janitor", model, tools: wrapTools([deleteFiles]) });
 *     let result = await run(agent, "free some disk space");
 *     if (result.interruptions.length) {
 *       const cps = await submitInterruptions(client, result);
 *       // … possibly another process, later, with an Agent built the same way:
 *       const state = await resumeState(client, agent, cps);
 *       result = await run(agent, state);
 *     }
 *
 * - Each interruption (a tool with `needsApproval`) is an `approval` checkpoint with the
 *   external id `openai-agents:<callId>` (submitting again returns the same checkpoints) and
 *   the tool's parameters as its `args_schema`.
 * - The serialized `RunState` is stored once per pause, as a `json` artifact of the first
 *   checkpoint, with its sha256 in every checkpoint's context; `resumeState` loads it from the
 *   portal and refuses it if the digest differs (the SDK asks to deserialize only trusted,
 *   integrity-checked state; reviewers can never edit it).
 * - `state.approve()` cannot change arguments, so an edit runs through `wrapTools`: the
 *   wrapped tool, invoked for the approved call, runs with the reviewer's arguments instead
 *   of the model's and tells the model so in front of its output. A rejection's reason is the
 *   tool output the model reads (`state.reject(item, { message })`).
 * - Only a function tool wrapped by `wrapTools` takes an edit; for other tools reviewers may
 *   approve or reject only, and an edit that reaches one anyway is rejected, saying why
 *   (approving would run the model's original arguments). */

import { RunState } from "@openai/agents";
import type { HitlClient } from "./client.js";
import { HitlError } from "./errors.js";
import type { Checkpoint } from "./models.js";
import { loadSnapshot, type PauseRequest, submitPause } from "./snapshot.js";

export const SOURCE = "openai-agents";
export const STATE = "run_state.json";
const EDIT_NOTICE = (args: string) =>
  `[A human reviewer edited this call before approving it; it ran with these arguments: ${args}]\n`;
const NO_EDIT_OUTCOMES = ["approve", "reject"] as const;

// Edited arguments by tool call id, for the wrapped tools of this process: `resumeState`
// registers them, the approved call's tool takes (and removes) its entry.
const EDITS = new Map<string, string>();
const HONOURS_EDITS = Symbol.for("hitl-portal.honours-edits");

type AnyTool = { type?: string; name?: string; parameters?: unknown; invoke?: (...a: any[]) => any };
type Interruption = {
  name?: string;
  arguments?: string;
  rawItem: { callId?: string; [key: string]: unknown };
  agent: { name: string; tools?: AnyTool[] };
};

/** The tools, with each function tool able to run a reviewer's edited arguments for the call
 * it was approved for; other tools unchanged. */
export function wrapTools<T>(tools: T[]): T[] {
  return tools.map((t) => {
    const tool = t as AnyTool;
    if (tool?.type !== "function" || typeof tool.invoke !== "function") return t;
    const original = tool.invoke;
    const invoke = async (runContext: unknown, input: string, details?: { toolCall?: { callId?: string } }) => {
      const callId = details?.toolCall?.callId ?? "";
      const edited = callId ? EDITS.get(callId) : undefined;
      if (edited === undefined) return original.call(tool, runContext, input, details);
      EDITS.delete(callId);
      const output = await original.call(tool, runContext, edited, details);
      return EDIT_NOTICE(edited) + (typeof output === "string" ? output : JSON.stringify(output));
    };
    Object.defineProperty(invoke, HONOURS_EDITS, { value: true });
    return { ...tool, invoke } as T;
  });
}

/** Why the agent's tool `name` cannot run a reviewer's edit; null if it can. */
function whyNotEditable(agent: Interruption["agent"], name: string): string | null {
  const tools = (agent.tools ?? []).filter((t) => t?.name === name);
  if (!tools.length) return "it is not one of the agent's own tools";
  for (const tool of tools) {
    if (tool.type !== "function") return `a ${tool.type ?? "custom"} tool takes no edited arguments`;
    if (!(tool.invoke as unknown as Record<symbol, unknown>)?.[HONOURS_EDITS]) {
      return "it was not wrapped with wrapTools from @hitl-portal/client/openai-agents";
    }
  }
  return null;
}

function toolSchema(agent: Interruption["agent"], name: string): Record<string, unknown> | undefined {
  const tool = (agent.tools ?? []).find((t) => t?.name === name);
  const schema = tool?.parameters;
  // A zod schema (not JSON) is left out: the SDK sends its JSON form to the model only.
  return schema && typeof schema === "object" && (schema as { type?: unknown }).type === "object"
    ? (schema as Record<string, unknown>)
    : undefined;
}

/** What the call would do, for the reviewer: a function call's arguments, else the raw
 * item's fields (a hosted or built-in tool's call). */
function callArgs(item: Interruption): Record<string, unknown> {
  const text = item.arguments;
  if (text !== undefined) {
    try {
      const value = JSON.parse(text || "{}");
      return value && typeof value === "object" && !Array.isArray(value) ? value : { arguments: value };
    } catch {
      return { arguments: text };
    }
  }
  const skip = new Set(["id", "callId", "type", "status", "providerData"]);
  return Object.fromEntries(Object.entries(item.rawItem).filter(([k, v]) => !skip.has(k) && v != null));
}

type PausedResult = {
  interruptions: Interruption[] | readonly unknown[];
  state: { toString(): string };
};

/** One `approval` checkpoint per interruption of `result` (decided independently), the run
 * state stored with the first. `runExternalId`: the portal run to use (get-or-create), else
 * one run per pause. */
export async function submitInterruptions(
  client: HitlClient,
  result: PausedResult,
  options: { title?: string; runExternalId?: string; risk?: "low" | "medium" | "high" | "critical" } = {},
): Promise<Checkpoint[]> {
  const interruptions = [...(result.interruptions as Interruption[])];
  if (!interruptions.length) return [];
  const first = interruptions[0];
  const run = options.runExternalId
    ? await client.ensureRun(options.runExternalId, options.title ?? `OpenAI agent run ${options.runExternalId}`)
    : await client.startRun(options.title ?? `${first.agent.name}: ${first.name}`);
  const requests: PauseRequest[] = interruptions.map((item) => {
    const callId = item.rawItem.callId ?? "";
    const tool = item.name ?? "tool";
    return {
      externalId: `${SOURCE}:${callId}`.slice(0, 255),
      context: { call_id: callId, agent: item.agent.name },
      title: options.title ?? tool,
      fields: {
        tool,
        args: callArgs(item),
        argsSchema: toolSchema(item.agent, tool),
        risk: options.risk ?? "medium",
        run,
        // No edit the tool cannot run.
        allowedOutcomes: whyNotEditable(item.agent, tool) === null ? undefined : [...NO_EDIT_OUTCOMES],
      },
    };
  });
  return submitPause(client, SOURCE, { name: STATE, text: result.state.toString() }, requests);
}

function rejection(cp: Checkpoint): string {
  if (cp.status === "rejected") return cp.reason || "rejected by a human reviewer";
  if (cp.status === "answered") return `Not run; the reviewer answered instead: ${cp.answer}`;
  return cp.reason ? `not approved (${cp.status}): ${cp.reason}` : `not approved (${cp.status})`;
}

/** The paused run's `RunState`, loaded from the portal (digest checked), with every decision
 * applied: approve → `approve`; modify → the edit registered for the wrapped tool, then
 * `approve` (or `reject`, saying why, when the tool cannot take it); reject / expired /
 * cancelled → `reject` with the reason as the tool's output. Waits (long-poll) for every
 * checkpoint; WaitTimeout after `timeout` seconds. */
export async function resumeState<TAgent extends { name: string }>(
  client: HitlClient,
  agent: TAgent,
  checkpoints: Checkpoint[],
  options: { timeout?: number | null } = {},
): Promise<RunState<any, any>> {
  if (!checkpoints.length) throw new HitlError("no checkpoints to resume from");
  const decided: Checkpoint[] = [];
  for (const cp of checkpoints) decided.push(await client.wait(cp.id, options));
  const text = await loadSnapshot(client, decided[0], SOURCE, STATE);
  const state = await RunState.fromString(agent as never, text);
  const byCall = new Map<string, Checkpoint>();
  for (const cp of decided) {
    const context = ((cp.data.context ?? {}) as Record<string, { call_id?: string } | undefined>)[SOURCE];
    if (context?.call_id) byCall.set(context.call_id, cp);
  }
  for (const item of state.getInterruptions() as unknown as Interruption[]) {
    const callId = item.rawItem.callId ?? "";
    const cp = byCall.get(callId);
    if (cp === undefined) continue; // not submitted with these checkpoints: the SDK asks again
    const approval = item as never;
    if (cp.status !== "approved") {
      state.reject(approval, { message: rejection(cp) });
    } else if (!cp.edited) {
      state.approve(approval);
    } else {
      const why = whyNotEditable(item.agent, item.name ?? "");
      const args = JSON.stringify(cp.approvedArgs);
      if (why !== null) {
        state.reject(approval, {
          message:
            `Not run: a human reviewer approved this call only with edited arguments (${args}), and ` +
            `the ${item.name} tool cannot take edits (${why}), so it was not run with the original ones either.`,
        });
      } else {
        EDITS.set(callId, args);
        state.approve(approval);
      }
    }
  }
  return state;
}
