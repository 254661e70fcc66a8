// Gemini API: POST /{version}/models/{model}:generateContent, :streamGenerateContent (alt=sse:
// one GenerateContentResponse per `data:` event, no terminal event; without alt=sse, a JSON array)
// and :batchEmbedContents (https://ai.google.dev/api/generate-content, https://ai.google.dev/api/embeddings).
// Deterministic like the other mocks: the reply quotes the last user text, one event per word, the
// last one with finishReason and the full usageMetadata. With function declarations offered (and
// calling not switched off) the reply to a user turn is a call of the first allowed function.
import { type MockContext, type MockHandler, sendError, sendJson } from "./context";
import { buildReply, isRecord, mockVector, positiveInt, toolQuery } from "./reply";

export type GeminiMethod = "generateContent" | "streamGenerateContent" | "batchEmbedContents";

const DEFAULT_DIMENSIONS = 8;

type Json = Record<string, unknown>;

function partsOf(content: unknown): unknown[] {
  return isRecord(content) && Array.isArray(content["parts"]) ? content["parts"] : [];
}

function textOf(content: unknown): string {
  const texts: string[] = [];
  for (const p of partsOf(content)) if (isRecord(p) && typeof p["text"] === "string") texts.push(p["text"]);
  return texts.join(" ");
}

/** Text of the last user turn that has any (a turn of function responses has none). */
function lastUserText(contents: unknown[]): string {
  for (let i = contents.length - 1; i >= 0; i--) {
    const c = contents[i];
    if (isRecord(c) && (c["role"] === "user" || c["role"] === undefined)) {
      const text = textOf(c);
      if (text !== "") return text;
    }
  }
  return "";
}

/** The function to call, when the request offers functions and the last turn is not a function's answer. */
function functionToCall(body: Json, contents: unknown[]): string | undefined {
  const config = isRecord(body["toolConfig"]) ? body["toolConfig"]["functionCallingConfig"] : undefined;
  const mode = isRecord(config) ? config["mode"] : undefined;
  if (mode === "NONE") return undefined;
  const last = contents[contents.length - 1];
  if (partsOf(last).some((p) => isRecord(p) && p["functionResponse"] !== undefined)) return undefined;
  const allowed = isRecord(config) && Array.isArray(config["allowedFunctionNames"]) ? config["allowedFunctionNames"] : [];
  const tools = Array.isArray(body["tools"]) ? body["tools"] : [];
  for (const tool of tools) {
    const decls = isRecord(tool) && Array.isArray(tool["functionDeclarations"]) ? tool["functionDeclarations"] : [];
    for (const d of decls) {
      const name = isRecord(d) ? d["name"] : undefined;
      if (typeof name === "string" && (allowed.length === 0 || allowed.includes(name))) return name;
    }
  }
  return undefined;
}

function usage(prompt: number, output: number): Json {
  return { promptTokenCount: prompt, candidatesTokenCount: output, totalTokenCount: prompt + output };
}

function generate(ctx: MockContext, stream: boolean, model: string, body: Json, contents: unknown[]): Promise<void> | void {
  const generation = isRecord(body["generationConfig"]) ? body["generationConfig"] : {};
  const prompt = lastUserText(contents);
  const reply = buildReply({ bodyChars: ctx.bodyChars, prompt, streamChunks: ctx.streamChunks, maxTokens: positiveInt(generation["maxOutputTokens"]) });
  // Gemini repeats the usage in every streamed event, counting the output so far.
  const event = (parts: Json[], finishReason: string | undefined, output: number): Json => ({
    candidates: [{ content: { parts, role: "model" }, ...(finishReason === undefined ? {} : { finishReason }), index: 0 }],
    usageMetadata: usage(reply.inputTokens, output),
    modelVersion: model,
    responseId: `mock-gemini-${ctx.seq}`,
  });

  const fn = functionToCall(body, contents);
  if (fn !== undefined) {
    const args = toolQuery(prompt);
    const call = event([{ functionCall: { name: fn, args } }], "STOP", Math.ceil(JSON.stringify(args).length / 4));
    if (!stream) return sendJson(ctx.res, 200, call);
    return ctx.url.searchParams.get("alt") === "sse" ? sendEvents(ctx, [call]) : sendJson(ctx.res, 200, [call]);
  }
  const finishReason = reply.truncated ? "MAX_TOKENS" : "STOP";
  if (!stream) return sendJson(ctx.res, 200, event([{ text: reply.text }], finishReason, reply.outputTokens));
  const pieces = reply.pieces.length > 0 ? reply.pieces : [""];
  const events = pieces.map((text, i) => event([{ text }], i === pieces.length - 1 ? finishReason : undefined, Math.min(i + 1, reply.outputTokens)));
  return ctx.url.searchParams.get("alt") === "sse" ? sendEvents(ctx, events) : sendJson(ctx.res, 200, events);
}

async function sendEvents(ctx: MockContext, events: Json[]): Promise<void> {
  const sse = ctx.openStream();
  for (const e of events) await sse.json(e);
  sse.end();
}

/** A small deterministic vector derived from the text. */
function embed(ctx: MockContext, model: string, body: Json): void {
  const requests = body["requests"];
  if (!Array.isArray(requests) || requests.length === 0) return sendError(ctx.res, "gemini", 400, "* BatchEmbedContentsRequest.requests: at least one request is required");
  const embeddings: Json[] = [];
  for (let i = 0; i < requests.length; i++) {
    const r: unknown = requests[i];
    if (!isRecord(r) || r["model"] !== `models/${model}`) {
      return sendError(ctx.res, "gemini", 400, `* BatchEmbedContentsRequest.requests[${i}].model: must be models/${model}`);
    }
    if (!isRecord(r["content"])) return sendError(ctx.res, "gemini", 400, `* BatchEmbedContentsRequest.requests[${i}].content: content is required`);
    embeddings.push({ values: mockVector(textOf(r["content"]), positiveInt(r["outputDimensionality"]) || DEFAULT_DIMENSIONS) });
  }
  sendJson(ctx.res, 200, { embeddings });
}

export function gemini(method: GeminiMethod, model: string): MockHandler {
  return (ctx) => {
    if (!isRecord(ctx.json)) return sendError(ctx.res, "gemini", 400, "Invalid JSON payload received.");
    const body = ctx.json;
    if (method === "batchEmbedContents") return embed(ctx, model, body);
    const contents = body["contents"];
    if (!Array.isArray(contents) || contents.length === 0) return sendError(ctx.res, "gemini", 400, "* GenerateContentRequest.contents: contents is not specified");
    return generate(ctx, method === "streamGenerateContent", model, body, contents);
  };
}
