// Arbitraries for the translation fuzz suite: client request bodies of each client API (mostly the
// right shape, with odd values and prototype keys mixed in), and provider answers of each provider
// dialect generated from a model of what they say (text, tool calls, usage, stop), as JSON and as
// streams, so that what the client receives can be checked against what was generated.
import { EventStreamCodec, type MessageHeaders } from "@smithy/eventstream-codec";
import { fromUtf8, toUtf8 } from "@smithy/util-utf8";
import fc from "fast-check";
import { jsonTree, renderJson } from "./fuzz-arbitraries";

type Json = unknown;

/**
 * Objects whose own `toString` / `valueOf` is no function: String(v) and `${v}` throw on them, so
 * code that stringifies a value it did not type-check first throws out of the stream.
 */
const HOSTILE_OBJECTS = ['{"toString":1}', '{"toString":"x","valueOf":2}', '{"__proto__":{"toString":1}}', '[{"toString":null}]', '{"valueOf":{},"toString":{}}'];

/** Anything at all, prototype keys included (as JSON.parse gives it to the service). */
export const odd: fc.Arbitrary<Json> = fc.oneof(
  { weight: 4, arbitrary: jsonTree(2).map((t) => JSON.parse(renderJson(t)) as Json) },
  { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_OBJECTS).map((t) => JSON.parse(t) as Json) },
);
const str = fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: 12 }) }, { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 6 }) }, { weight: 1, arbitrary: fc.constantFrom("", " ", "\n", "{}", '{"a":1}', "[", "null") });
/** Mostly `a`, sometimes an odd value in its place. */
const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | Json> => fc.oneof({ weight: 8, arbitrary: a }, { weight: 1, arbitrary: odd });
const opt = { requiredKeys: [] as never[] };

/** JSON Schemas as tools and response formats carry them: nested, with $ref, anyOf, enum. */
const jsonSchema: fc.Arbitrary<Json> = fc.letrec<{ schema: Json }>((tie) => ({
  schema: fc.oneof(
    { maxDepth: 3, depthIdentifier: "schema" },
    fc.record({ type: fc.constantFrom("string", "number", "integer", "boolean", "null", ["string", "null"]), description: str, enum: fc.array(fc.oneof(str, fc.integer(), fc.constant(null)), { maxLength: 3 }), format: fc.constantFrom("date-time", "email", "enum", "int32", "x") }, opt),
    fc.record({ type: fc.constant("object"), properties: fc.dictionary(fc.oneof(str, fc.constantFrom("__proto__", "toString", "constructor")), tie("schema"), { maxKeys: 3 }), required: fc.array(str, { maxLength: 2 }), additionalProperties: fc.oneof(fc.boolean(), tie("schema")) }, opt),
    fc.record({ type: fc.constant("array"), items: fc.oneof(tie("schema"), fc.array(tie("schema"), { maxLength: 2 })), minItems: fc.nat(3) }, opt),
    fc.record({ anyOf: fc.array(tie("schema"), { maxLength: 3 }), $defs: fc.dictionary(str, tie("schema"), { maxKeys: 2 }) }, opt),
    fc.record({ $ref: fc.constantFrom("#/$defs/a", "#/definitions/x", "#", "http://x"), allOf: fc.array(tie("schema"), { maxLength: 2 }) }, opt),
    odd,
  ),
})).schema;

// ---- OpenAI chat completions requests ----

const dataUrl = fc.oneof(fc.constantFrom("https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo=", "data:image/jpeg;base64,/9j/", "data:application/pdf;base64,JVBERi0=", "data:,x", "data:image/png,abc"), str.map((s) => `data:${s};base64,${s}`));
const chatPart = fc.oneof(
  fc.record({ type: fc.constant("text"), text: maybe(str) }),
  fc.record({ type: fc.constant("image_url"), image_url: maybe(fc.record({ url: maybe(dataUrl), detail: fc.constantFrom("auto", "low", "high") }, { requiredKeys: ["url"] })) }),
  fc.record({ type: fc.constant("input_audio"), input_audio: fc.record({ data: str, format: fc.constantFrom("wav", "mp3", "x") }) }),
  fc.record({ type: fc.constant("file"), file: fc.record({ filename: str, file_data: dataUrl, file_id: str }, opt) }),
  fc.record({ type: fc.constant("refusal"), refusal: str }),
  odd,
);
const chatContent = fc.oneof({ weight: 3, arbitrary: str }, { weight: 2, arbitrary: fc.array(chatPart, { maxLength: 3 }) }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: odd });
const toolArgs = fc.oneof(str, fc.constantFrom('{"q":"x"}', "", "{", "[1]", '{"__proto__":{"x":1}}'), odd);
const toolCall = fc.record({ id: maybe(str), type: maybe(fc.constant("function")), function: maybe(fc.record({ name: maybe(str), arguments: toolArgs }, opt)), extra_content: fc.record({ google: fc.record({ thought_signature: maybe(str) }) }) }, { requiredKeys: ["function"] });
const chatMessage = fc.oneof(
  fc.record({ role: fc.constantFrom("system", "developer", "user"), content: chatContent, name: str }, { requiredKeys: ["role", "content"] }),
  fc.record({ role: fc.constant("assistant"), content: chatContent, tool_calls: fc.array(toolCall, { maxLength: 2 }), refusal: str, reasoning_content: str, function_call: fc.record({ name: str, arguments: str }) }, { requiredKeys: ["role"] }),
  fc.record({ role: fc.constant("tool"), tool_call_id: maybe(str), content: chatContent }, { requiredKeys: ["role"] }),
  fc.record({ role: fc.constant("function"), name: str, content: chatContent }),
  odd,
);
const chatTool = fc.oneof(
  { weight: 6, arbitrary: fc.record({ type: maybe(fc.constant("function")), function: maybe(fc.record({ name: maybe(str), description: str, parameters: jsonSchema, strict: fc.boolean() }, { requiredKeys: ["name"] })) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constantFrom("web_search", "custom", "file_search") }) },
  { weight: 1, arbitrary: odd },
);
export const chatRequest: fc.Arbitrary<Record<string, Json>> = fc.record(
  {
    model: fc.constant("client-model"),
    messages: fc.oneof({ weight: 10, arbitrary: fc.array(chatMessage, { maxLength: 5 }) }, { weight: 1, arbitrary: odd }),
    stream: maybe(fc.boolean()),
    stream_options: maybe(fc.record({ include_usage: maybe(fc.boolean()) }, opt)),
    max_tokens: maybe(fc.oneof(fc.nat(200_000), fc.integer())),
    max_completion_tokens: maybe(fc.nat(200_000)),
    temperature: maybe(fc.double({ min: 0, max: 2, noNaN: true })),
    top_p: maybe(fc.double({ min: 0, max: 1, noNaN: true })),
    n: maybe(fc.constantFrom(1, 2, null)),
    stop: maybe(fc.oneof(str, fc.array(str, { maxLength: 5 }), fc.constant(null))),
    presence_penalty: maybe(fc.double({ min: -2, max: 2, noNaN: true })),
    frequency_penalty: maybe(fc.double({ min: -2, max: 2, noNaN: true })),
    seed: maybe(fc.integer()),
    logprobs: maybe(fc.boolean()),
    top_logprobs: maybe(fc.nat(5)),
    user: maybe(fc.oneof(str, fc.string({ minLength: 60, maxLength: 80 }))),
    response_format: maybe(fc.oneof(fc.record({ type: fc.constantFrom("text", "json_object") }), fc.record({ type: fc.constant("json_schema"), json_schema: maybe(fc.record({ name: str, schema: jsonSchema, strict: fc.boolean() }, opt)) }))),
    tools: maybe(fc.array(chatTool, { maxLength: 3 })),
    tool_choice: maybe(fc.oneof(fc.constantFrom("auto", "none", "required"), fc.record({ type: fc.constant("function"), function: maybe(fc.record({ name: maybe(str) })) }), fc.record({ type: fc.constant("allowed_tools"), allowed_tools: fc.record({ mode: fc.constantFrom("auto", "required"), tools: fc.array(fc.record({ type: fc.constant("function"), function: fc.record({ name: str }) }), { maxLength: 2 }) }) }))),
    parallel_tool_calls: maybe(fc.boolean()),
    reasoning_effort: maybe(fc.constantFrom("minimal", "low", "medium", "high")),
    modalities: maybe(fc.constantFrom(["text"], ["text", "audio"])),
    audio: maybe(fc.record({ voice: str, format: str })),
    metadata: maybe(fc.dictionary(str, str, { maxKeys: 2 })),
    store: maybe(fc.boolean()),
    service_tier: maybe(fc.constantFrom("auto", "default", "flex")),
    functions: maybe(fc.array(fc.record({ name: str }), { maxLength: 1 })),
    web_search_options: maybe(fc.record({})),
    x_unknown: odd,
  },
  { requiredKeys: ["model", "messages"] },
);

// ---- Anthropic messages requests ----

const textBlock = fc.record({ type: fc.constant("text"), text: maybe(str), cache_control: fc.constant({ type: "ephemeral" }) }, { requiredKeys: ["type", "text"] });
const imageBlock = fc.record({
  type: fc.constant("image"),
  source: maybe(fc.oneof(fc.record({ type: fc.constant("base64"), media_type: fc.constantFrom("image/png", "image/jpeg", "image/webp"), data: str }), fc.record({ type: fc.constant("url"), url: str }), fc.record({ type: fc.constant("file"), file_id: str }))),
});
const anthropicBlock = fc.oneof(
  { weight: 4, arbitrary: textBlock },
  { weight: 1, arbitrary: imageBlock },
  { weight: 2, arbitrary: fc.record({ type: fc.constant("tool_use"), id: maybe(str), name: maybe(str), input: maybe(fc.oneof(fc.constant({}), fc.dictionary(str, str, { maxKeys: 2 }))) }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant("tool_result"), tool_use_id: maybe(str), content: fc.oneof(str, fc.array(fc.oneof(textBlock, imageBlock, odd), { maxLength: 3 })), is_error: fc.boolean() }, { requiredKeys: ["type", "tool_use_id"] }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant("thinking"), thinking: str, signature: str }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constantFrom("redacted_thinking", "document", "server_tool_use", "web_search_tool_result", "search_result") }) },
  { weight: 1, arbitrary: odd },
);
const anthropicMessage = fc.oneof(
  { weight: 8, arbitrary: fc.record({ role: maybe(fc.constantFrom("user", "assistant")), content: fc.oneof(str, fc.array(anthropicBlock, { maxLength: 4 })) }) },
  { weight: 1, arbitrary: odd },
);
const anthropicTool = fc.oneof(
  { weight: 6, arbitrary: fc.record({ name: maybe(str), description: str, input_schema: jsonSchema, type: fc.constant("custom"), cache_control: fc.constant({ type: "ephemeral" }) }, { requiredKeys: ["name", "input_schema"] }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constantFrom("web_search_20250305", "bash_20250124", "text_editor_20250429"), name: str }) },
  { weight: 1, arbitrary: odd },
);
export const messagesRequest: fc.Arbitrary<Record<string, Json>> = fc.record(
  {
    model: fc.constant("client-model"),
    messages: fc.oneof({ weight: 10, arbitrary: fc.array(anthropicMessage, { maxLength: 5 }) }, { weight: 1, arbitrary: odd }),
    system: maybe(fc.oneof(str, fc.array(textBlock, { maxLength: 2 }))),
    max_tokens: maybe(fc.oneof(fc.nat(100_000), fc.integer())),
    stop_sequences: maybe(fc.array(str, { maxLength: 5 })),
    temperature: maybe(fc.double({ min: 0, max: 1, noNaN: true })),
    top_p: maybe(fc.double({ min: 0, max: 1, noNaN: true })),
    top_k: maybe(fc.nat(500)),
    stream: maybe(fc.boolean()),
    metadata: maybe(fc.record({ user_id: maybe(fc.oneof(str, fc.string({ minLength: 60, maxLength: 90 }))) }, opt)),
    tools: maybe(fc.array(anthropicTool, { maxLength: 3 })),
    tool_choice: maybe(fc.oneof(fc.record({ type: fc.constantFrom("auto", "any", "none"), disable_parallel_tool_use: fc.boolean() }, { requiredKeys: ["type"] }), fc.record({ type: fc.constant("tool"), name: maybe(str) }))),
    thinking: maybe(fc.record({ type: fc.constantFrom("enabled", "disabled"), budget_tokens: fc.nat(10_000) })),
    service_tier: maybe(fc.constantFrom("auto", "standard_only")),
  },
  { requiredKeys: ["model", "messages"] },
);

// ---- OpenAI embeddings requests ----

export const embeddingsRequest: fc.Arbitrary<Record<string, Json>> = fc.record(
  {
    model: fc.constant("client-model"),
    input: fc.oneof({ weight: 4, arbitrary: str }, { weight: 3, arbitrary: fc.array(str, { maxLength: 4 }) }, { weight: 1, arbitrary: fc.array(fc.nat(50_000), { maxLength: 5 }) }, { weight: 1, arbitrary: fc.array(fc.array(fc.nat(9), { maxLength: 3 }), { maxLength: 2 }) }, { weight: 1, arbitrary: odd }),
    dimensions: maybe(fc.constantFrom(256, 512, 768, 1024, 1536, 3072, 0, -1)),
    encoding_format: maybe(fc.constantFrom("float", "base64", "x")),
    user: maybe(str),
  },
  { requiredKeys: ["model", "input"] },
);

// ---- provider answers ----

/** What an answer says, in provider-neutral terms: checked against what the client receives. */
export interface AnswerModel {
  /** Text pieces, in stream order (joined: the answer's text). */
  text: string[];
  /** Tool calls: name and argument pieces (joined: the arguments). */
  tools: Array<{ id: string; name: string; args: string[] }>;
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  reasoning: number;
  /** The provider ended the answer (stop reason, finish reason). */
  finished: boolean;
  /** The provider sent its terminal marker ([DONE], message_stop, metadata after messageStop). */
  terminal: boolean;
  /** The provider reported usage. */
  withUsage: boolean;
}

const count = fc.oneof({ weight: 6, arbitrary: fc.nat(100_000) }, { weight: 1, arbitrary: fc.constantFrom(0, 1, 2 ** 31) });
const piece = fc.oneof(fc.string({ minLength: 1, maxLength: 10 }), fc.string({ unit: "grapheme", minLength: 1, maxLength: 4 }), fc.constantFrom("\n", '"', "\\", "\u2028", "\u{1F642}", "</s>"));
/** Tool arguments as models stream them: a JSON object cut into pieces. */
const argPieces = fc.tuple(fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.string({ maxLength: 6 }), fc.integer()), { maxKeys: 3 }), fc.array(fc.nat(), { maxLength: 3 })).map(([obj, cuts]) => {
  const s = JSON.stringify(obj);
  const points = [...new Set(cuts.map((c) => c % (s.length + 1)))].filter((c) => c > 0 && c < s.length).sort((a, b) => a - b);
  const out: string[] = [];
  let at = 0;
  for (const p of [...points, s.length]) {
    out.push(s.slice(at, p));
    at = p;
  }
  return out;
});

export const answerModel: fc.Arbitrary<AnswerModel> = fc.record({
  text: fc.array(piece, { maxLength: 6 }),
  // Providers give every call of an answer its own id.
  tools: fc.array(fc.record({ id: fc.stringMatching(/^[A-Za-z0-9_]{1,12}$/), name: fc.stringMatching(/^[a-z_]{1,10}$/), args: argPieces }), { maxLength: 2 }).map((ts) => ts.map((t, i) => ({ ...t, id: `${t.id}_${i}` }))),
  input: count,
  output: count,
  cacheRead: count,
  cacheWrite: count,
  reasoning: count,
  finished: fc.boolean(),
  terminal: fc.boolean(),
  withUsage: fc.boolean(),
});

/** An SSE body: `event:` lines when given, compact JSON on one data line, a blank line after each. */
export function sse(events: Array<{ event?: string; data: unknown }>): Buffer {
  return Buffer.from(events.map((e) => `${e.event === undefined ? "" : `event: ${e.event}\n`}data: ${typeof e.data === "string" ? e.data : JSON.stringify(e.data)}\n\n`).join(""));
}

/** Anthropic Messages: a whole message, and its stream. */
export function anthropicAnswer(a: AnswerModel): { json: unknown; stream: Buffer } {
  const usage = { input_tokens: a.input, output_tokens: a.output, cache_read_input_tokens: a.cacheRead, cache_creation_input_tokens: a.cacheWrite };
  const stop = a.tools.length > 0 ? "tool_use" : "end_turn";
  const content = [...(a.text.length > 0 ? [{ type: "text", text: a.text.join("") }] : []), ...a.tools.map((t) => ({ type: "tool_use", id: t.id, name: t.name, input: JSON.parse(t.args.join("")) as unknown }))];
  const json = { id: "msg_1", type: "message", role: "assistant", model: "claude-x", content, stop_reason: a.finished ? stop : null, stop_sequence: null, ...(a.withUsage ? { usage } : {}) };
  const events: Array<{ event?: string; data: unknown }> = [];
  const ev = (type: string, body: object) => events.push({ event: type, data: { type, ...body } });
  ev("message_start", { message: { id: "msg_1", type: "message", role: "assistant", model: "claude-x", content: [], stop_reason: null, usage: { input_tokens: a.input, output_tokens: 1, cache_read_input_tokens: a.cacheRead, cache_creation_input_tokens: a.cacheWrite } } });
  let index = 0;
  if (a.text.length > 0) {
    ev("content_block_start", { index, content_block: { type: "text", text: "" } });
    for (const t of a.text) ev("content_block_delta", { index, delta: { type: "text_delta", text: t } });
    ev("ping", {});
    ev("content_block_stop", { index });
    index++;
  }
  for (const t of a.tools) {
    ev("content_block_start", { index, content_block: { type: "tool_use", id: t.id, name: t.name, input: {} } });
    for (const p of t.args) ev("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: p } });
    ev("content_block_stop", { index });
    index++;
  }
  if (a.finished) ev("message_delta", { delta: { stop_reason: stop, stop_sequence: null }, usage: a.withUsage ? { output_tokens: a.output } : {} });
  if (a.terminal) ev("message_stop", {});
  return { json, stream: sse(events) };
}

/** OpenAI chat completions: a chat.completion, and chunks (usage chunk and [DONE] as the model says). */
export function openAiAnswer(a: AnswerModel): { json: unknown; stream: Buffer } {
  const usage = { prompt_tokens: a.input, completion_tokens: a.output, total_tokens: a.input + a.output, prompt_tokens_details: { cached_tokens: a.cacheRead }, completion_tokens_details: { reasoning_tokens: a.reasoning } };
  const calls = a.tools.map((t) => ({ id: t.id, type: "function", function: { name: t.name, arguments: t.args.join("") } }));
  const finish = a.tools.length > 0 ? "tool_calls" : "stop";
  const json = { id: "chatcmpl-1", object: "chat.completion", created: 1, model: "gpt-x", choices: [{ index: 0, message: { role: "assistant", content: a.text.length > 0 ? a.text.join("") : null, ...(calls.length > 0 ? { tool_calls: calls } : {}) }, finish_reason: a.finished ? finish : null }], ...(a.withUsage ? { usage } : {}) };
  const chunk = (delta: object, finishReason: string | null = null) => ({ data: { id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model: "gpt-x", choices: [{ index: 0, delta, finish_reason: finishReason }] } });
  const events: Array<{ data: unknown }> = [chunk({ role: "assistant", content: "" })];
  for (const t of a.text) events.push(chunk({ content: t }));
  a.tools.forEach((t, index) => {
    events.push(chunk({ tool_calls: [{ index, id: t.id, type: "function", function: { name: t.name, arguments: "" } }] }));
    for (const p of t.args) events.push(chunk({ tool_calls: [{ index, function: { arguments: p } }] }));
  });
  if (a.finished) events.push(chunk({}, finish));
  if (a.withUsage) events.push({ data: { id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model: "gpt-x", choices: [], usage } });
  if (a.terminal) events.push({ data: "[DONE]" });
  return { json, stream: sse(events) };
}

/** Gemini generateContent: one response, and a stream of them (alt=sse; the last one finishes). */
export function geminiAnswer(a: AnswerModel): { json: unknown; stream: Buffer } {
  const usageMetadata = { promptTokenCount: a.input, candidatesTokenCount: a.output, thoughtsTokenCount: a.reasoning, cachedContentTokenCount: a.cacheRead, totalTokenCount: a.input + a.output + a.reasoning };
  const calls = a.tools.map((t) => ({ functionCall: { name: t.name, args: JSON.parse(t.args.join("")) as unknown } }));
  const finishReason = a.finished ? "STOP" : undefined;
  const json = { candidates: [{ content: { role: "model", parts: [...(a.text.length > 0 ? [{ text: a.text.join("") }] : []), ...calls] }, index: 0, ...(finishReason ? { finishReason } : {}) }], ...(a.withUsage ? { usageMetadata } : {}), modelVersion: "gemini-x", responseId: "r1" };
  const events: Array<{ data: unknown }> = a.text.map((t) => ({ data: { candidates: [{ content: { role: "model", parts: [{ text: t }] }, index: 0 }], modelVersion: "gemini-x", responseId: "r1" } }));
  if (calls.length > 0) events.push({ data: { candidates: [{ content: { role: "model", parts: calls }, index: 0 }], modelVersion: "gemini-x", responseId: "r1" } });
  if (a.finished || a.withUsage) events.push({ data: { candidates: [{ content: { role: "model", parts: [] }, index: 0, ...(finishReason ? { finishReason } : {}) }], ...(a.withUsage ? { usageMetadata } : {}), modelVersion: "gemini-x", responseId: "r1" } });
  return { json, stream: sse(events) };
}

const codec = new EventStreamCodec(toUtf8, fromUtf8);
const header = (value: string) => ({ type: "string" as const, value });

/** Bedrock Converse: a Converse answer, and a ConverseStream (binary event stream). */
export function bedrockAnswer(a: AnswerModel): { json: unknown; stream: Buffer } {
  const usage = { inputTokens: a.input, outputTokens: a.output, totalTokens: a.input + a.output, cacheReadInputTokens: a.cacheRead, cacheWriteInputTokens: a.cacheWrite };
  const stopReason = a.tools.length > 0 ? "tool_use" : "end_turn";
  const content = [...(a.text.length > 0 ? [{ text: a.text.join("") }] : []), ...a.tools.map((t) => ({ toolUse: { toolUseId: t.id, name: t.name, input: JSON.parse(t.args.join("")) as unknown } }))];
  const json = { output: { message: { role: "assistant", content } }, stopReason: a.finished ? stopReason : undefined, ...(a.withUsage ? { usage } : {}), metrics: { latencyMs: 5 } };
  const frames: Buffer[] = [];
  const event = (type: string, payload: unknown) => {
    const headers: MessageHeaders = { ":event-type": header(type), ":content-type": header("application/json"), ":message-type": header("event") };
    frames.push(Buffer.from(codec.encode({ headers, body: fromUtf8(JSON.stringify(payload)) })));
  };
  event("messageStart", { role: "assistant" });
  let index = 0;
  if (a.text.length > 0) {
    for (const t of a.text) event("contentBlockDelta", { contentBlockIndex: index, delta: { text: t } });
    event("contentBlockStop", { contentBlockIndex: index });
    index++;
  }
  for (const t of a.tools) {
    event("contentBlockStart", { contentBlockIndex: index, start: { toolUse: { toolUseId: t.id, name: t.name } } });
    for (const p of t.args) event("contentBlockDelta", { contentBlockIndex: index, delta: { toolUse: { input: p } } });
    event("contentBlockStop", { contentBlockIndex: index });
    index++;
  }
  if (a.finished) event("messageStop", { stopReason });
  if (a.terminal && a.finished) event("metadata", { usage: a.withUsage ? usage : {}, metrics: { latencyMs: 5 } });
  return { json, stream: Buffer.concat(frames) };
}

/** Bedrock stream frames of any kind with any payload (exceptions included). */
export const bedrockFrames: fc.Arbitrary<Buffer> = fc
  .array(
    fc.record({
      kind: fc.constantFrom("event", "exception", "error", "other"),
      type: fc.constantFrom("messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata", "throttlingException", "x"),
      payload: fc.oneof(odd, fc.record({ contentBlockIndex: fc.oneof(fc.nat(3), odd), delta: fc.oneof(fc.record({ text: odd }), fc.record({ toolUse: fc.record({ input: odd }) })), start: fc.record({ toolUse: fc.record({ toolUseId: odd, name: odd }) }), stopReason: odd, usage: odd }, opt)),
    }),
    { maxLength: 8 },
  )
  .map((frames) =>
    Buffer.concat(
      frames.map((f) => {
        const headers: MessageHeaders = f.kind === "error" ? { ":message-type": header("error"), ":error-code": header(f.type), ":error-message": header("boom") } : { ":message-type": header(f.kind), [f.kind === "exception" ? ":exception-type" : ":event-type"]: header(f.type) };
        return Buffer.from(codec.encode({ headers, body: fromUtf8(JSON.stringify(f.payload) ?? "null") }));
      }),
    ),
  );
