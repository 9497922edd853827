/** Vercel AI SDK (`ai`): tools that ask the portal before they run.
 *
 *     import { tool, generateText } from "ai";
 *     import { withApproval } from "@hitl-portal/client/ai-sdk";
 *
 *     const tools = withApproval(client, { deleteFiles: tool({ inputSchema, execute }) }, { risk: "high" });
 *     await generateText({ model, tools, prompt });
 *
 * Each call of a wrapped tool's `execute` is a checkpoint (the tool's input schema is its
 * `args_schema`, so reviewers can only make edits the tool takes); it waits for the decision,
 * checks the receipt offline, redeems it, and runs the original `execute` with the approved —
 * possibly edited — arguments. A rejection (or expiry) is not run: its reason is returned as
 * the tool's result, which is what the model reads next (or thrown, `onReject: "throw"`).
 *
 * This is the tool-level equivalent of the SDK's own `needsApproval` (which can only approve
 * or deny the model's arguments, and needs the application to carry the answer back): the
 * decision is made in the portal, and edits run. Do not set `needsApproval` on a wrapped
 * tool as well, or it is asked for twice. */

import { asSchema } from "ai";
import { gate, type GateOptions } from "./approval.js";
import type { HitlClient } from "./client.js";
import { ApprovalRejected } from "./errors.js";

type Args = Record<string, unknown>;

/** The part of an AI SDK tool this wrapper needs (works with `tool()` of ai 5, 6 and 7). */
export type ToolLike = {
  inputSchema?: unknown;
  execute?: (input: any, options: any) => unknown;
  [key: string]: unknown;
};

export type AiSdkApprovalOptions = Omit<GateOptions, "tool" | "title" | "argsSchema"> & {
  /** A template with `{arg}` placeholders, or a function (default: "Run <tool>"). */
  title?: string | ((args: Args) => string);
  /** "return" (default): a rejection becomes the tool's result, a sentence the model reads;
   * "throw": ApprovalRejected (the SDK reports it as a tool error). */
  onReject?: "return" | "throw";
  /** Your own id per call (e.g. from the tool call id and a conversation id): asking again
   * with the same id returns the same checkpoint. */
  externalId?: (input: Args, toolCallId: string) => string;
};

async function schemaOf(tool: ToolLike): Promise<Record<string, unknown> | undefined> {
  if (tool.inputSchema === undefined) return undefined;
  try {
    const schema = (await asSchema(tool.inputSchema as never).jsonSchema) as Record<string, unknown>;
    return schema && typeof schema === "object" ? schema : undefined;
  } catch {
    return undefined; // a schema the SDK cannot describe: reviewers' edits are not checked
  }
}

/** One tool, gated: `name` is the tool's key in your `tools` object. */
export function approvalTool<T extends ToolLike>(
  client: HitlClient,
  name: string,
  tool: T,
  options: AiSdkApprovalOptions = {},
): T {
  const execute = tool.execute;
  if (typeof execute !== "function") {
    throw new TypeError(`tool ${name} has no execute(): nothing to gate (a client-side tool?)`);
  }
  const { onReject = "return", externalId, ...gateOptions } = options;
  const wrapped = async (input: Args, callOptions: { toolCallId?: string } = {}) => {
    const toolCallId = callOptions?.toolCallId ?? "";
    const outcome = await gate(client, input, {
      ...gateOptions,
      tool: name,
      argsSchema: await schemaOf(tool),
      externalId: externalId ? externalId(input, toolCallId) : undefined,
      context: { ...(gateOptions.context ?? {}), ...(toolCallId ? { tool_call_id: toolCallId } : {}) },
    });
    if (!outcome.approved) {
      if (onReject === "throw") {
        const cp = outcome.checkpoint;
        throw new ApprovalRejected(cp, cp.reason || String(outcome.rejection), cp.status);
      }
      return String(outcome.rejection);
    }
    return execute.call(tool, outcome.args, callOptions);
  };
  return { ...tool, execute: wrapped };
}

/** Every tool of a `tools` object gated (the same options for each). */
export function withApproval<T extends Record<string, ToolLike>>(
  client: HitlClient,
  tools: T,
  options: AiSdkApprovalOptions = {},
): T {
  return Object.fromEntries(
    Object.entries(tools).map(([name, t]) => [name, approvalTool(client, name, t, options)]),
  ) as T;
}
