// OpenAI-compatible servers (vLLM, Ollama, OpenRouter, Groq, Together, Mistral, ...): the OpenAI
// wire format under a configurable base path; Bearer auth only when a credential is configured.
import type { ProviderConfig } from "../policy/schema";
import { basePathRewrite } from "./paths";
import type { ProviderAdapter } from "./types";

type CompatibleConfig = Extract<ProviderConfig, { type: "openai-compatible" }>;

export const openaiCompatibleAdapter: ProviderAdapter<CompatibleConfig> = {
  type: "openai-compatible",
  operations: new Set(["chat.completions", "completions", "embeddings", "responses"]),
  rewrite({ provider, credential, operation, originalPathname, originalQuery }) {
    const setHeaders: Array<[string, string]> = credential ? [["authorization", `Bearer ${credential.reveal()}`]] : [];
    return { path: basePathRewrite(provider.basePath, operation, originalPathname, originalQuery), setHeaders };
  },
};
