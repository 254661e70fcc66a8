// AWS Bedrock Runtime Converse API: POST /model/{modelId}/converse and /converse-stream
// (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html).
// The stream is a binary AWS event stream: messageStart, contentBlockStart (tool use only),
// contentBlockDelta per word (or per piece of the tool input JSON), contentBlockStop, messageStop,
// then metadata with the usage. Like Bedrock, the mock refuses keys Converse does not know (a
// translated body that still carried `model` or `stream` would be a bug) and turns that do not
// alternate.
//
// InvokeModel, POST /model/{modelId}/invoke, for the embedding models only: Titan Text Embeddings
// (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html) and
// Cohere Embed v3 / v4 (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed-v3.html,
// .../model-parameters-embed-v4.html), with their own bodies and limits. Vectors come from
// mockVector (8 values unless dimensions / output_dimension ask for more; the real models give
// 1024 or 1536); the input token count is in the x-amzn-bedrock-input-token-count header (and in
// Titan's body), by the same chars/4 rule as every mock. Cohere answers float embeddings only.
import { EventStreamCodec } from "@smithy/eventstream-codec";
import { fromUtf8, toUtf8 } from "@smithy/util-utf8";
import { type MockContext, type MockHandler, sendError, sendJson } from "./context";
import { buildReply, inputTokensFor, isRecord, jsonPieces, lastUserText, mockVector, positiveInt, toolQuery } from "./reply";

const codec = new EventStreamCodec(toUtf8, fromUtf8);

const CONVERSE_KEYS = new Set([
  "messages",
  "system",
  "inferenceConfig",
  "toolConfig",
  "guardrailConfig",
  "additionalModelRequestFields",
  "additionalModelResponseFieldPaths",
  "promptVariables",
  "requestMetadata",
  "performanceConfig",
  "serviceTier",
]);

/** One ConverseStream event as an encoded frame. */
export function converseFrame(eventType: string, payload: unknown): Uint8Array {
  return codec.encode({
    headers: {
      ":event-type": { type: "string", value: eventType },
      ":content-type": { type: "string", value: "application/json" },
      ":message-type": { type: "string", value: "event" },
    },
    body: fromUtf8(JSON.stringify(payload)),
  });
}

/** Why Bedrock would answer 400 to this body, or undefined. */
function validate(body: Record<string, unknown>, modelId: string): string | undefined {
  if (modelId === "") return "The provided model identifier is invalid.";
  for (const key of Object.keys(body)) if (!CONVERSE_KEYS.has(key)) return `extraneous key [${key}] is not permitted`;
  const messages = body["messages"];
  if (!Array.isArray(messages) || messages.length === 0) return "A conversation must start with a user message.";
  let expected = "user";
  for (const m of messages) {
    if (!isRecord(m) || m["role"] !== expected) return "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.";
    if (!Array.isArray(m["content"]) || m["content"].length === 0) return "The content field in the Message object is empty.";
    expected = expected === "user" ? "assistant" : "user";
  }
  return undefined;
}

/** The tool the mock calls: the named one of toolChoice.tool, else the first; none after a tool result. */
function toolToCall(body: Record<string, unknown>): string | undefined {
  const config = body["toolConfig"];
  if (!isRecord(config) || !Array.isArray(config["tools"])) return undefined;
  const messages = body["messages"] as unknown[];
  const last = messages[messages.length - 1];
  if (isRecord(last) && Array.isArray(last["content"]) && last["content"].some((b) => isRecord(b) && b["toolResult"] !== undefined)) return undefined;
  const choice = config["toolChoice"];
  if (isRecord(choice) && isRecord(choice["tool"]) && typeof choice["tool"]["name"] === "string") return choice["tool"]["name"];
  for (const t of config["tools"]) {
    if (isRecord(t) && isRecord(t["toolSpec"]) && typeof t["toolSpec"]["name"] === "string") return t["toolSpec"]["name"];
  }
  return undefined;
}

interface Answer {
  /** Text pieces (one per word), or undefined for a tool call. */
  pieces: readonly string[] | undefined;
  tool: { toolUseId: string; name: string; input: { query: string } } | undefined;
  stopReason: string;
  usage: { inputTokens: number; outputTokens: number; totalTokens: number };
}

function answer(ctx: MockContext, body: Record<string, unknown>): Answer {
  const prompt = lastUserText(body["messages"]);
  const config = body["inferenceConfig"];
  const maxTokens = isRecord(config) ? positiveInt(config["maxTokens"]) : undefined;
  const reply = buildReply({ bodyChars: ctx.bodyChars, prompt, streamChunks: ctx.streamChunks, maxTokens });
  const name = toolToCall(body);
  if (name !== undefined) {
    const input = toolQuery(prompt);
    // Tool input tokens, by the same chars/4 rule as the input count.
    const outputTokens = Math.max(1, Math.ceil(JSON.stringify(input).length / 4));
    return {
      pieces: undefined,
      tool: { toolUseId: `tooluse_mock_${ctx.seq}`, name, input },
      stopReason: "tool_use",
      usage: { inputTokens: reply.inputTokens, outputTokens, totalTokens: reply.inputTokens + outputTokens },
    };
  }
  return {
    pieces: reply.pieces,
    tool: undefined,
    stopReason: reply.truncated ? "max_tokens" : "end_turn",
    usage: { inputTokens: reply.inputTokens, outputTokens: reply.outputTokens, totalTokens: reply.inputTokens + reply.outputTokens },
  };
}

export function bedrockConverse(stream: boolean, modelId: string): MockHandler {
  return async (ctx) => {
    if (!isRecord(ctx.json)) return sendError(ctx.res, "bedrock", 400, "The request body is not valid JSON.");
    const body = ctx.json;
    const invalid = validate(body, modelId);
    if (invalid !== undefined) return sendError(ctx.res, "bedrock", 400, invalid);
    const a = answer(ctx, body);
    const metrics = { latencyMs: 0 };
    if (!stream) {
      const content = a.tool !== undefined ? [{ toolUse: a.tool }] : [{ text: (a.pieces ?? []).join("") }];
      return sendJson(ctx.res, 200, { output: { message: { role: "assistant", content } }, stopReason: a.stopReason, usage: a.usage, metrics });
    }
    const out = ctx.openStream("application/vnd.amazon.eventstream");
    await out.frame(converseFrame("messageStart", { role: "assistant" }));
    if (a.tool !== undefined) {
      const { toolUseId, name, input } = a.tool;
      await out.frame(converseFrame("contentBlockStart", { contentBlockIndex: 0, start: { toolUse: { toolUseId, name } } }));
      for (const piece of jsonPieces(JSON.stringify(input))) {
        await out.frame(converseFrame("contentBlockDelta", { contentBlockIndex: 0, delta: { toolUse: { input: piece } } }));
      }
    } else {
      for (const text of a.pieces ?? []) await out.frame(converseFrame("contentBlockDelta", { contentBlockIndex: 0, delta: { text } }));
    }
    await out.frame(converseFrame("contentBlockStop", { contentBlockIndex: 0 }));
    await out.frame(converseFrame("messageStop", { stopReason: a.stopReason }));
    await out.frame(converseFrame("metadata", { usage: a.usage, metrics }));
    out.end();
  };
}

// ---- InvokeModel: embedding models ----

const DEFAULT_DIMENSIONS = 8;
const TITAN_V1_KEYS = new Set(["inputText"]);
const TITAN_V2_KEYS = new Set(["inputText", "dimensions", "normalize", "embeddingTypes"]);
const COHERE_V3_KEYS = new Set(["texts", "images", "input_type", "truncate", "embedding_types"]);
const COHERE_V4_KEYS = new Set([...COHERE_V3_KEYS, "inputs", "output_dimension", "max_tokens"]);
const COHERE_INPUT_TYPES = new Set(["search_document", "search_query", "classification", "clustering"]);

function extraneousKey(body: Record<string, unknown>, allowed: ReadonlySet<string>): string | undefined {
  const key = Object.keys(body).find((k) => !allowed.has(k));
  return key === undefined ? undefined : `Malformed input request: extraneous key [${key}] is not permitted, please reformat your input and try again.`;
}

/** A Titan answer, or why Bedrock would answer 400. */
function titan(body: Record<string, unknown>, v2: boolean, tokens: number): Record<string, unknown> | string {
  const bad = extraneousKey(body, v2 ? TITAN_V2_KEYS : TITAN_V1_KEYS);
  if (bad !== undefined) return bad;
  if (typeof body["inputText"] !== "string") return "Malformed input request: required key [inputText] not found, please reformat your input and try again.";
  const dimensions = body["dimensions"];
  if (dimensions !== undefined && dimensions !== 256 && dimensions !== 512 && dimensions !== 1024) return "Malformed input request: dimensions must be one of 256, 512, 1024.";
  const embedding = mockVector(body["inputText"], typeof dimensions === "number" ? dimensions : DEFAULT_DIMENSIONS);
  return v2 ? { embedding, embeddingsByType: { float: embedding }, inputTextTokenCount: tokens } : { embedding, inputTextTokenCount: tokens };
}

/** A Cohere Embed answer (float embeddings, listed or by type), or why Bedrock would answer 400. */
function cohere(body: Record<string, unknown>, v4: boolean, id: string): Record<string, unknown> | string {
  const bad = extraneousKey(body, v4 ? COHERE_V4_KEYS : COHERE_V3_KEYS);
  if (bad !== undefined) return bad;
  const texts = body["texts"];
  if (!Array.isArray(texts) || !texts.every((t) => typeof t === "string")) return "Malformed input request: #/texts: expected type: JSONArray of strings.";
  if (texts.length > 96) return `Malformed input request: #/texts: expected maximum item count: 96, found: ${texts.length}, please reformat your input and try again.`;
  if (typeof body["input_type"] !== "string" || !COHERE_INPUT_TYPES.has(body["input_type"])) return "Malformed input request: #/input_type: required, one of search_document, search_query, classification, clustering.";
  const dimension = body["output_dimension"];
  if (dimension !== undefined && dimension !== 256 && dimension !== 512 && dimension !== 1024 && dimension !== 1536) return "Malformed input request: #/output_dimension: must be one of 256, 512, 1024, 1536.";
  const types = body["embedding_types"];
  if (types !== undefined && (!Array.isArray(types) || types.some((t) => t !== "float"))) return "The mock answers float embedding_types only.";
  const vectors = texts.map((t: string) => mockVector(t, typeof dimension === "number" ? dimension : DEFAULT_DIMENSIONS));
  return types === undefined
    ? { id, embeddings: vectors, response_type: "embeddings_floats", texts }
    : { id, embeddings: { float: vectors }, response_type: "embeddings_by_type", texts };
}

export function bedrockInvoke(modelId: string): MockHandler {
  return (ctx) => {
    if (!isRecord(ctx.json)) return sendError(ctx.res, "bedrock", 400, "Malformed input request, please reformat your input and try again.");
    const id = modelId.toLowerCase();
    const tokens = inputTokensFor(ctx.bodyChars);
    let answer: Record<string, unknown> | string;
    if (id.includes("amazon.titan-embed")) answer = titan(ctx.json, id.includes("titan-embed-text-v2"), tokens);
    else if (id.includes("cohere.embed")) answer = cohere(ctx.json, id.includes("cohere.embed-v4"), `mock-cohere-embed-${ctx.seq}`);
    else answer = "The mock serves InvokeModel for Titan and Cohere embedding models only.";
    if (typeof answer === "string") return sendError(ctx.res, "bedrock", 400, answer);
    sendJson(ctx.res, 200, answer, { "x-amzn-bedrock-input-token-count": String(tokens) });
  };
}
