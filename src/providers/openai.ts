// OpenAI (api.openai.com): Bearer auth, optional organization/project headers.
// https://platform.openai.com/docs/api-reference/authentication
import type { ProviderConfig } from "../policy/schema";
import { basePathRewrite } from "./paths";
import type { ProviderAdapter } from "./types";

type OpenAIConfig = Extract<ProviderConfig, { type: "openai" }>;

export const openaiAdapter: ProviderAdapter<OpenAIConfig> = {
  type: "openai",
  operations: new Set(["chat.completions", "completions", "embeddings", "responses"]),
  rewrite({ provider, credential, operation, originalPathname, originalQuery }) {
    const setHeaders: Array<[string, string]> = [];
    if (credential) setHeaders.push(["authorization", `Bearer ${credential.reveal()}`]);
    if (provider.organization) setHeaders.push(["openai-organization", provider.organization]);
    if (provider.project) setHeaders.push(["openai-project", provider.project]);
    return { path: basePathRewrite(provider.basePath, operation, originalPathname, originalQuery), setHeaders };
  },
};
