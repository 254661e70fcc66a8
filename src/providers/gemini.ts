// Google Gemini API (generativelanguage.googleapis.com): the API key in `x-goog-api-key`, the
// model in the path, a separate method for streams (server-sent events with `alt=sse`).
// https://ai.google.dev/api/generate-content ; https://ai.google.dev/api/embeddings
// Gemini serves no client API natively: chat completions and embeddings reach it translated.
import type { ProviderConfig } from "../policy/schema";
import type { ProviderAdapter } from "./types";

type GeminiConfig = Extract<ProviderConfig, { type: "gemini" }>;

export const geminiAdapter: ProviderAdapter<GeminiConfig> = {
  type: "gemini",
  operations: new Set(),
  rewrite({ provider, credential, target, operation, stream, originalPathname, originalQuery }) {
    const setHeaders: Array<[string, string]> = [];
    if (credential) setHeaders.push(["x-goog-api-key", credential.reveal()]);
    // A model name may come as "models/gemini-..." (how Gemini itself lists them) or bare.
    const model = target.model.startsWith("models/") ? target.model.slice("models/".length) : target.model;
    const base = `/${provider.apiVersion}/models/${encodeURIComponent(model)}`;
    let path: string;
    if (operation === "embeddings") path = `${base}:batchEmbedContents`;
    else if (operation === "chat.completions") path = stream ? `${base}:streamGenerateContent?alt=sse` : `${base}:generateContent`;
    // Passthrough: the client's own path under the provider (e.g. GET /v1beta/models).
    else path = `${originalPathname}${originalQuery}`;
    return { path, setHeaders };
  },
};
