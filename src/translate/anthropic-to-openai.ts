// Anthropic Messages clients (Anthropic SDKs, Claude Code) on OpenAI-compatible chat completions
// targets: OpenAI, Azure OpenAI, vLLM, Ollama. The request side is in -request.ts, the answer side
// (JSON, stream, errors) in -response.ts; README "Translation" lists what is mapped, dropped and
// rejected.
import { anthropicRequestToOpenAi, checkAnthropicForOpenAi } from "./anthropic-to-openai-request";
import { openAiResponseToAnthropic } from "./anthropic-to-openai-response";
import type { Translation } from "./types";

export const anthropicToOpenAi: Translation = {
  from: "messages",
  to: "chat.completions",
  check: checkAnthropicForOpenAi,
  request: anthropicRequestToOpenAi,
  response: (meta) => openAiResponseToAnthropic(meta),
};
