// OpenAI embeddings -> Gemini batchEmbedContents (https://ai.google.dev/api/embeddings), one
// EmbedContentRequest per input, and back. Gemini embeds text only and reports no token counts for
// embeddings, so usage comes back as zeros rather than a guess.
import { GatewayError, renderError } from "../api/errors";
import type { JsonObject } from "../api/request-body";
import { clientErrorBody } from "./client-errors";
import { geminiErrorBody } from "./gemini-response";
import type { TranslatedRequest, Translation, TranslationMeta, TranslationTarget } from "./types";
import { isRecord, jsonText } from "../api/json";
import { embeddingsResponse, openAiEmbeddingList } from "./openai-embedding-list";

const MAPPED = new Set(["model", "input", "dimensions", "encoding_format"]);

function inputs(input: unknown): string[] {
  return typeof input === "string" ? [input] : Array.isArray(input) ? input.map((v) => (typeof v === "string" ? v : "")) : [];
}

function checkEmbeddings(body: JsonObject): string | undefined {
  const input = body["input"];
  if (Array.isArray(input) && !input.every((v) => typeof v === "string")) {
    return "`input` holds token ids; Gemini embeds text only, so send the text itself.";
  }
  const format = body["encoding_format"];
  if (format !== undefined && format !== null && format !== "float" && format !== "base64") return `encoding_format \`${jsonText(format)}\` is not supported.`;
  return undefined;
}

function requestEmbeddings(body: JsonObject, target: TranslationTarget): TranslatedRequest {
  const model = target.model.startsWith("models/") ? target.model.slice("models/".length) : target.model;
  const dimensions = body["dimensions"];
  const requests = inputs(body["input"]).map((text) => ({
    model: `models/${model}`,
    content: { parts: [{ text }] },
    ...(typeof dimensions === "number" ? { outputDimensionality: dimensions } : {}),
  }));
  const dropped = Object.keys(body).filter((k) => !MAPPED.has(k) && body[k] !== undefined && body[k] !== null);
  return {
    body: Buffer.from(JSON.stringify({ requests })),
    stream: false,
    dropped,
    meta: {
      clientModel: typeof body["model"] === "string" ? body["model"] : model,
      created: Math.floor(target.nowMs / 1000),
      includeUsage: false,
      extra: { model, base64: body["encoding_format"] === "base64" },
    },
  };
}

function embeddingsJson(body: Buffer, meta: TranslationMeta): Buffer {
  let r: unknown;
  try {
    r = JSON.parse(body.toString("utf8"));
  } catch {
    r = undefined;
  }
  if (!isRecord(r)) return renderError(new GatewayError("upstream_response_invalid"), "openai").body;
  if (isRecord(r["error"])) {
    const message = r["error"]["message"];
    return clientErrorBody("openai", { status: 500, message: typeof message === "string" ? message : "The provider reported an error." });
  }
  const list = Array.isArray(r["embeddings"]) ? r["embeddings"] : [];
  const vectors: number[][] = [];
  for (const e of list) {
    const raw = (e as JsonObject | undefined)?.["values"];
    if (!Array.isArray(raw) || !raw.every((v) => typeof v === "number")) return renderError(new GatewayError("upstream_response_invalid"), "openai").body;
    vectors.push(raw);
  }
  // Gemini reports no token counts for embeddings.
  return openAiEmbeddingList(vectors, meta, 0);
}

export const openAiEmbeddingsToGemini: Translation = {
  from: "embeddings",
  to: "embeddings",
  check: checkEmbeddings,
  request: requestEmbeddings,
  response: (meta) =>
    embeddingsResponse(
      (body) => embeddingsJson(body, meta),
      (providerStatus, body) => geminiErrorBody(providerStatus, body),
    ),
};
