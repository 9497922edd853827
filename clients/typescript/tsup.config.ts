import { defineConfig } from "tsup";

// ESM + CJS + declarations for each entry point. The adapters' frameworks are peer
// dependencies: never bundled, loaded only by the entry point that needs them.
export default defineConfig({
  entry: { index: "src/index.ts", "ai-sdk": "src/ai-sdk.ts", "openai-agents": "src/openai-agents.ts" },
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "es2022",
  external: ["ai", "@openai/agents"],
});
