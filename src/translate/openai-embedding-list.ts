// The OpenAI embeddings answer every translated embeddings pair builds: one `embedding` object per
// input vector, base64 when the client asked for it, and the model and usage; and the response
// translator they share, which differs only in how the provider's JSON and errors are read.
// https://platform.openai.com/docs/api-reference/embeddings/object
import type { ResponseTranslator, TranslationMeta } from "./types";

/** OpenAI's base64 embedding: the float32 values, little-endian, as the Python SDK decodes them. */
export function base64Floats(values: number[]): string {
  const buf = Buffer.allocUnsafe(values.length * 4);
  for (let i = 0; i < values.length; i++) buf.writeFloatLE(values[i]!, i * 4);
  return buf.toString("base64");
}

/**
 * The client's answer. `meta.extra.base64`: the client sent encoding_format base64; `meta.extra.model`:
 * the provider's model name, echoed as OpenAI echoes its own.
 */
export function openAiEmbeddingList(vectors: number[][], meta: TranslationMeta, inputTokens: number): Buffer {
  const base64 = meta.extra?.["base64"] === true;
  const data = vectors.map((v, index) => ({ object: "embedding", index, embedding: base64 ? base64Floats(v) : v }));
  const model = meta.extra?.["model"];
  return Buffer.from(
    JSON.stringify({ object: "list", data, model: typeof model === "string" ? model : meta.clientModel, usage: { prompt_tokens: inputTokens, total_tokens: inputTokens } }),
  );
}

/** An embeddings pair's response translator: a whole JSON answer or error, never a stream. */
export function embeddingsResponse(json: ResponseTranslator["json"], error: ResponseTranslator["error"]): ResponseTranslator {
  return {
    status: (providerStatus) => providerStatus,
    contentType: () => "application/json",
    // Embeddings are never streamed; a body arriving this way is passed on as it is.
    streamChunk: (chunk) => chunk,
    json,
    error,
  };
}
