// Anthropic Messages API: `x-api-key` and a required `anthropic-version` header.
// https://docs.anthropic.com/en/api/versioning
import { OPERATIONS } from "../api/operations";
import type { ProviderConfig } from "../policy/schema";
import type { ProviderAdapter } from "./types";

type AnthropicConfig = Extract<ProviderConfig, { type: "anthropic" }>;

export const anthropicAdapter: ProviderAdapter<AnthropicConfig> = {
  type: "anthropic",
  operations: new Set(["messages"]),
  rewrite({ provider, credential, operation, originalPathname, originalQuery, clientAnthropicVersion, clientAnthropicBeta }) {
    const setHeaders: Array<[string, string]> = [
      // An Anthropic SDK client pins its own API version; keep it so response shapes match the SDK.
      ["anthropic-version", clientAnthropicVersion ?? provider.anthropicVersion],
    ];
    if (clientAnthropicBeta !== undefined) setHeaders.push(["anthropic-beta", clientAnthropicBeta]);
    if (credential) setHeaders.push(["x-api-key", credential.reveal()]);
    // A translated request arrives on another API's path; the operation names the one to use.
    const pathname = operation === undefined ? originalPathname : OPERATIONS[operation].path;
    return { path: `${pathname}${originalQuery}`, setHeaders };
  },
};
