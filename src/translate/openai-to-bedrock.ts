// OpenAI chat completions clients on AWS Bedrock targets, through the Converse API. The adapter
// (providers/bedrock.ts) builds /model/{id}/converse or /converse-stream for chat.completions;
// this pair turns the body into a Converse request and the answer (JSON, binary event stream or
// error) back into OpenAI's shapes. README "Translation" lists what is mapped, dropped or refused.
import { checkOpenAiForBedrock, openAiToBedrockRequest } from "./openai-to-bedrock-request";
import { bedrockResponse } from "./openai-to-bedrock-response";
import type { Translation } from "./types";

export const openAiToBedrock: Translation = {
  from: "chat.completions",
  to: "chat.completions",
  check: checkOpenAiForBedrock,
  request: openAiToBedrockRequest,
  response: bedrockResponse,
};
