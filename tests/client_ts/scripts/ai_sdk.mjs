// The Vercel AI SDK (`ai`, the real package) with a scripted model (no network): the model
// calls two gated tools at once; the portal's reviewers decide; the tools run with what was
// approved, and the model's next request carries the results (a rejection's reason).
import { generateText, jsonSchema, stepCountIs, tool } from "ai";
import { MockLanguageModelV3 } from "ai/test";
import { HitlClient } from "@hitl-portal/client";
import { withApproval } from "@hitl-portal/client/ai-sdk";

const executed = [];
const usage = {
  inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: 1, text: 1, reasoning: 0 },
};
const prompts = [];
const model = new MockLanguageModelV3({
  doGenerate: async (options) => {
    prompts.push(options.prompt);
    if (prompts.length === 1) {
      return {
        content: [
          { type: "tool-call", toolCallId: "call-del", toolName: "deleteFiles", input: JSON.stringify({ paths: ["/var/log/a.log", "/etc/passwd"] }) },
          { type: "tool-call", toolCallId: "call-rst", toolName: "restartService", input: JSON.stringify({ name: "nginx" }) },
        ],
        finishReason: { unified: "tool-calls", raw: "tool_calls" },
        usage,
        warnings: [],
      };
    }
    return { content: [{ type: "text", text: "done" }], finishReason: { unified: "stop", raw: "stop" }, usage, warnings: [] };
  },
});

const client = new HitlClient();
await client.startRun("AI SDK janitor", { externalId: "ts-ai-sdk" });
const tools = withApproval(
  client,
  {
    deleteFiles: tool({
      description: "Delete files",
      inputSchema: jsonSchema({
        type: "object",
        properties: { paths: { type: "array", items: { type: "string" } } },
        required: ["paths"],
        additionalProperties: false,
      }),
      execute: async ({ paths }) => {
        executed.push({ tool: "deleteFiles", paths });
        return { deleted: paths.length };
      },
    }),
    restartService: tool({
      description: "Restart a service",
      inputSchema: jsonSchema({ type: "object", properties: { name: { type: "string" } }, required: ["name"] }),
      execute: async ({ name }) => {
        executed.push({ tool: "restartService", name });
        return "restarted";
      },
    }),
  },
  { risk: "high", title: (args) => `AI SDK: ${Object.values(args).flat().join(", ")}` },
);
const result = await generateText({ model, tools, prompt: "free some disk space", stopWhen: stepCountIs(3) });
const toolResults = prompts[1]
  .filter((m) => m.role === "tool")
  .flatMap((m) => m.content)
  .map((part) => ({ toolName: part.toolName, output: part.output }));
console.log(JSON.stringify({ text: result.text, executed, toolResults }));
