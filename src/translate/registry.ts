// Which translation serves a client operation on a provider type. A provider serves an operation
// natively (its adapter lists it) or through exactly one translation here; anything else is not
// served, and the router never sends such a request there.
import type { Operation } from "../api/operations";
import type { ProviderType } from "../policy/schema";
import type { ProviderAdapter } from "../providers/types";
import { anthropicToOpenAi } from "./anthropic-to-openai";
import { openAiEmbeddingsToBedrock } from "./openai-embeddings-to-bedrock";
import { openAiEmbeddingsToGemini } from "./openai-embeddings-to-gemini";
import { openAiToAnthropic } from "./openai-to-anthropic";
import { openAiToBedrock } from "./openai-to-bedrock";
import { openAiToGemini } from "./openai-to-gemini";
import type { Translation } from "./types";

const TRANSLATIONS: { [T in ProviderType]?: ReadonlyArray<Translation> } = {
  anthropic: [openAiToAnthropic],
  openai: [anthropicToOpenAi],
  "azure-openai": [anthropicToOpenAi],
  "openai-compatible": [anthropicToOpenAi],
  gemini: [openAiToGemini, openAiEmbeddingsToGemini],
  bedrock: [openAiToBedrock, openAiEmbeddingsToBedrock],
};

/** The translation for `operation` on `adapter`'s provider; undefined when it is served natively or not at all. */
export function translationFor(adapter: ProviderAdapter, operation: Operation): Translation | undefined {
  if (adapter.operations.has(operation)) return undefined;
  return TRANSLATIONS[adapter.type]?.find((t) => t.from === operation);
}

/** The provider serves the operation, natively or translated. */
export function serves(adapter: ProviderAdapter, operation: Operation): boolean {
  return adapter.operations.has(operation) || translationFor(adapter, operation) !== undefined;
}

/** Every (client operation, provider type) pair that is translated: README and tests list them. */
export function translatedPairs(): Array<{ operation: Operation; provider: ProviderType; to: Operation }> {
  const out: Array<{ operation: Operation; provider: ProviderType; to: Operation }> = [];
  for (const [provider, list] of Object.entries(TRANSLATIONS) as Array<[ProviderType, ReadonlyArray<Translation>]>) {
    for (const t of list) out.push({ operation: t.from, provider, to: t.to });
  }
  return out;
}
