// OpenAI embeddings -> AWS Bedrock InvokeModel (POST /model/{modelId}/invoke, built by
// providers/bedrock.ts), whose body is the model's own, and back. Two families, told apart by the
// target's model id (a cross-region profile prefix such as `us.` or an ARN around it is fine):
// - Amazon Titan Text Embeddings: `{inputText}`, one text per call; V2 also takes `dimensions`
//   1024 (default), 512 or 256, G1/V1 nothing else. Answer: `{embedding, inputTextTokenCount}`.
//   https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html
// - Cohere Embed v3 and v4: `{texts, input_type, embedding_types}`, up to 96 texts per call; v4
//   also takes `output_dimension` 256, 512, 1024 or 1536. Answer: `embeddings` is a list of
//   vectors, or `{float: [...]}` when embedding_types was sent (both are read).
//   https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed-v3.html
//   https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed-v4.html
// An ext_proc attempt is exactly one upstream request, so a batch the model cannot take in one call
// is refused in check() (the router tries another target, or answers 400), never split.
import { GatewayError, renderError } from "../api/errors";
import { isRecord, jsonText } from "../api/json";
import type { JsonObject } from "../api/request-body";
import { embeddingsResponse, openAiEmbeddingList } from "./openai-embedding-list";
import { count, errorJson } from "./openai-to-bedrock-response";
import type { TranslatedRequest, Translation, TranslationMeta, TranslationTarget } from "./types";

interface Family {
  /** For the client's error sentences. */
  readonly label: string;
  readonly api: "titan" | "cohere";
  /** Texts per InvokeModel call. */
  readonly maxInputs: number;
  /** Accepted `dimensions`; empty when the model's size is fixed. */
  readonly dimensions: readonly number[];
}

const TITAN_V1: Family = { label: "Amazon Titan Embeddings G1", api: "titan", maxInputs: 1, dimensions: [] };
const TITAN_V2: Family = { label: "Amazon Titan Text Embeddings V2", api: "titan", maxInputs: 1, dimensions: [256, 512, 1024] };
const COHERE_V3: Family = { label: "Cohere Embed v3", api: "cohere", maxInputs: 96, dimensions: [] };
const COHERE_V4: Family = { label: "Cohere Embed v4", api: "cohere", maxInputs: 96, dimensions: [256, 512, 1024, 1536] };

/** The embedding family of a Bedrock model id, inference profile id or ARN; undefined when not served. */
export function embeddingFamily(model: string): Family | undefined {
  const id = model.toLowerCase();
  if (id.includes("amazon.titan-embed-text-v2")) return TITAN_V2;
  // amazon.titan-embed-text-v1, amazon.titan-embed-g1-text-02: inputText only.
  if (id.includes("amazon.titan-embed")) return TITAN_V1;
  if (id.includes("cohere.embed-v4")) return COHERE_V4;
  if (id.includes("cohere.embed")) return COHERE_V3;
  return undefined;
}

const MAPPED = new Set(["model", "input", "dimensions", "encoding_format"]);

const present = (v: unknown): boolean => v !== undefined && v !== null;

/** The texts of `input`, or why it is not text. */
function texts(input: unknown): string[] | string {
  if (typeof input === "string") return [input];
  if (!Array.isArray(input)) return "`input` must be a string or an array of strings.";
  if (input.every((v) => typeof v === "string")) return input as string[];
  if (input.some((v) => typeof v === "number" || Array.isArray(v))) return "`input` holds token ids; Bedrock embedding models take text only, so send the text itself.";
  return "`input` must be a string or an array of strings.";
}

function checkEmbeddings(body: JsonObject, model: string): string | undefined {
  const family = embeddingFamily(model);
  if (family === undefined) return "The target's model family is not supported for embeddings (Amazon Titan Text Embeddings and Cohere Embed are).";
  const list = texts(body["input"]);
  if (typeof list === "string") return list;
  if (list.length === 0) return "`input` is empty.";
  if (list.length > family.maxInputs) {
    return family.maxInputs === 1
      ? `\`input\` holds ${list.length} texts; ${family.label} embeds one text per request, so send one text (or a route with a target that takes batches).`
      : `\`input\` holds ${list.length} texts; ${family.label} on Bedrock takes at most ${family.maxInputs} per request.`;
  }
  const dimensions = body["dimensions"];
  if (present(dimensions)) {
    if (family.dimensions.length === 0) return `\`dimensions\` cannot be set for ${family.label}: its embeddings have a fixed size.`;
    if (typeof dimensions !== "number" || !family.dimensions.includes(dimensions)) {
      return `\`dimensions\` must be one of ${family.dimensions.join(", ")} for ${family.label}.`;
    }
  }
  const format = body["encoding_format"];
  if (present(format) && format !== "float" && format !== "base64") return `encoding_format \`${jsonText(format)}\` is not supported.`;
  return undefined;
}

function requestEmbeddings(body: JsonObject, target: TranslationTarget): TranslatedRequest {
  // check() refused every other model, so the Titan default is never really taken.
  const family = embeddingFamily(target.model) ?? TITAN_V1;
  const list = texts(body["input"]);
  const inputs = typeof list === "string" ? [] : list;
  const dimensions = typeof body["dimensions"] === "number" && family.dimensions.length > 0 ? body["dimensions"] : undefined;
  // Titan's `normalize` defaults to true, as OpenAI's vectors are (unit length). Cohere's
  // input_type is required and OpenAI has no equivalent: embeddings are asked for as documents.
  // embedding_types ["float"] makes Cohere answer one shape, `embeddings: {float: [...]}`.
  const native =
    family.api === "titan"
      ? { inputText: inputs[0] ?? "", ...(dimensions === undefined ? {} : { dimensions }) }
      : { texts: inputs, input_type: "search_document", embedding_types: ["float"], ...(dimensions === undefined ? {} : { output_dimension: dimensions }) };
  return {
    body: Buffer.from(JSON.stringify(native)),
    stream: false,
    dropped: Object.keys(body).filter((k) => !MAPPED.has(k) && present(body[k])),
    meta: {
      clientModel: typeof body["model"] === "string" ? body["model"] : target.model,
      created: Math.floor(target.nowMs / 1000),
      includeUsage: false,
      extra: { model: target.model, base64: body["encoding_format"] === "base64" },
    },
  };
}

const invalid = (): Buffer => renderError(new GatewayError("upstream_response_invalid"), "openai").body;

const isVector = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === "number");

/**
 * The vectors and input token count of a Titan or a Cohere answer (told apart by shape). Titan
 * counts tokens in the body. Bedrock's Cohere body has none: InvokeModel reports them in the
 * x-amzn-bedrock-input-token-count response header, read here when the body has no count (and
 * Cohere's own `meta.billed_units.input_tokens` when a body carries it).
 */
function readAnswer(r: Record<string, unknown>): { vectors: unknown[]; tokens: number } | undefined {
  if (r["embedding"] !== undefined || r["inputTextTokenCount"] !== undefined) {
    const byType = r["embeddingsByType"];
    const vector = r["embedding"] ?? (isRecord(byType) ? byType["float"] : undefined);
    return { vectors: [vector], tokens: count(r["inputTextTokenCount"]) };
  }
  const e = r["embeddings"];
  const vectors = Array.isArray(e) ? e : isRecord(e) ? e["float"] : undefined;
  if (!Array.isArray(vectors)) return undefined;
  const meta = r["meta"];
  const billed = isRecord(meta) ? meta["billed_units"] : undefined;
  return { vectors, tokens: count(isRecord(billed) ? billed["input_tokens"] : undefined) };
}

/** Bedrock's InvokeModel response header with the request's input token count. */
const INPUT_TOKENS_HEADER = "x-amzn-bedrock-input-token-count";

function embeddingsJson(body: Buffer, meta: TranslationMeta, header: ((name: string) => string | undefined) | undefined): Buffer {
  let r: unknown;
  try {
    r = JSON.parse(body.toString("utf8"));
  } catch {
    return invalid();
  }
  const answer = isRecord(r) ? readAnswer(r) : undefined;
  if (answer === undefined || !answer.vectors.every(isVector)) return invalid();
  const tokens = answer.tokens > 0 ? answer.tokens : count(Number(header?.(INPUT_TOKENS_HEADER)));
  return openAiEmbeddingList(answer.vectors as number[][], meta, tokens);
}

export const openAiEmbeddingsToBedrock: Translation = {
  from: "embeddings",
  to: "embeddings",
  check: checkEmbeddings,
  request: requestEmbeddings,
  response: (meta) =>
    embeddingsResponse(
      (body, header) => embeddingsJson(body, meta, header),
      (providerStatus, body, header) => errorJson(providerStatus, body, header),
    ),
};
