// Provider type -> adapter. Adding a provider: one adapter file, one line here, its test.
import type { ProviderConfig, ProviderType } from "../policy/schema";
import { anthropicAdapter } from "./anthropic";
import { azureOpenaiAdapter } from "./azure-openai";
import { bedrockAdapter } from "./bedrock";
import { geminiAdapter } from "./gemini";
import { openaiAdapter } from "./openai";
import { openaiCompatibleAdapter } from "./openai-compatible";
import type { ProviderAdapter } from "./types";

type AdapterFor<T extends ProviderType> = ProviderAdapter<Extract<ProviderConfig, { type: T }>>;

const ADAPTERS: { [T in ProviderType]: AdapterFor<T> } = {
  openai: openaiAdapter,
  "azure-openai": azureOpenaiAdapter,
  anthropic: anthropicAdapter,
  "openai-compatible": openaiCompatibleAdapter,
  gemini: geminiAdapter,
  bedrock: bedrockAdapter,
};

export function adapterFor(type: ProviderType): ProviderAdapter {
  // The mapped type guarantees each adapter matches its config type; callers pass the config
  // that selected the adapter, so widening here is sound.
  return ADAPTERS[type] as unknown as ProviderAdapter;
}
