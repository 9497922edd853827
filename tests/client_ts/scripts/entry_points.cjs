// The CommonJS build of every entry point loads (require), and so does the ESM one (import).
const main = require("@hitl-portal/client");
const ai = require("@hitl-portal/client/ai-sdk");
const agents = require("@hitl-portal/client/openai-agents");
(async () => {
  const esm = await import("@hitl-portal/client");
  console.log(
    JSON.stringify({
      cjs: [typeof main.HitlClient, typeof main.verifyWebhook, typeof ai.withApproval, typeof agents.resumeState],
      esm: [typeof esm.HitlClient, typeof esm.openReceipt],
      version: main.VERSION,
    }),
  );
})();
