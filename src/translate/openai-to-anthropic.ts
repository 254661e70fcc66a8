// OpenAI chat-completions clients on an Anthropic Messages target. The request side lives in
// openai-to-anthropic-request.ts, the response side in openai-to-anthropic-response.ts.
import { checkRequest, buildRequest } from "./openai-to-anthropic-request";
import { responseTranslator } from "./openai-to-anthropic-response";
import type { Translation } from "./types";

export const openAiToAnthropic: Translation = {
  from: "chat.completions",
  to: "messages",
  check: checkRequest,
  request: buildRequest,
  response: responseTranslator,
};
