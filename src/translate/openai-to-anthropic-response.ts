// Anthropic Messages answers -> OpenAI chat-completions answers: whole messages
// (https://docs.anthropic.com/en/api/messages), streams
// (https://docs.anthropic.com/en/docs/build-with-claude/streaming) and errors
// (https://docs.anthropic.com/en/api/errors), into the shapes of
// https://platform.openai.com/docs/api-reference/chat/object and .../chat-streaming.
//
// Thinking blocks (and server-tool blocks) have no chat-completions field and are dropped; their
// tokens are still in output_tokens, so usage stays right.
import { GatewayError, renderError, renderStreamError } from "../api/errors";
import { SseFramer, type SseSink } from "../usage/sse-events";
import { type AnthropicCounts, anthropicInputTokens, emptyAnthropicCounts, mergeAnthropicUsage } from "../usage/usage";
import { clientErrorBody, fallbackMessage } from "./client-errors";
import type { ResponseTranslator, TranslationMeta } from "./types";
import { isRecord, parseObject } from "../api/json";

const EMPTY = Buffer.alloc(0);
const MAX_EVENT_BYTES = 16 * 1024 * 1024;
const DONE = "data: [DONE]\n\n";

function field(obj: unknown, key: string): unknown {
  return isRecord(obj) ? obj[key] : undefined;
}

function finishReason(stop: unknown): string | null {
  switch (stop) {
    case null:
    case undefined:
      return null;
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length";
    case "tool_use":
      return "tool_calls";
    case "refusal":
      return "content_filter";
    // end_turn, stop_sequence, pause_turn and anything newer end the turn normally.
    default:
      return "stop";
  }
}

/** The HTTP status an Anthropic error type stands for: it decides the OpenAI error type. */
function statusOfType(type: unknown): number {
  switch (type) {
    case "invalid_request_error": return 400;
    case "authentication_error": return 401;
    case "permission_error": return 403;
    case "not_found_error": return 404;
    case "request_too_large": return 413;
    case "rate_limit_error": return 429;
    case "timeout_error": return 504;
    case "overloaded_error": return 503;
    default: return 500;
  }
}

/** An Anthropic error object as OpenAI error JSON; undefined when it has no message. */
function errorFrom(error: unknown, status: number): Buffer | undefined {
  if (!isRecord(error) || typeof error["message"] !== "string") return undefined;
  const type = error["type"];
  return clientErrorBody("openai", { status, message: error["message"], code: typeof type === "string" ? type : undefined });
}

function usageJson(counts: AnthropicCounts): string {
  const prompt = anthropicInputTokens(counts) ?? 0;
  const completion = counts.output ?? 0;
  return `{"prompt_tokens":${prompt},"completion_tokens":${completion},"total_tokens":${prompt + completion},"prompt_tokens_details":{"cached_tokens":${counts.cacheRead ?? 0}}}`;
}

const invalidJson = (): Buffer => renderError(new GatewayError("upstream_response_invalid"), "openai").body;

function translateMessage(msg: Record<string, unknown>, meta: TranslationMeta): Buffer {
  if (msg["type"] === "error") return errorFrom(msg["error"], statusOfType(field(msg["error"], "type"))) ?? invalidJson();
  const content = msg["content"];
  if (msg["type"] !== "message" || !Array.isArray(content)) return invalidJson();
  let text: string | null = null;
  const calls: unknown[] = [];
  for (const block of content) {
    if (!isRecord(block)) continue;
    if (block["type"] === "text" && typeof block["text"] === "string") text = (text ?? "") + block["text"];
    else if (block["type"] === "tool_use") {
      calls.push({ id: block["id"], type: "function", function: { name: block["name"], arguments: JSON.stringify(block["input"] ?? {}) } });
    }
  }
  const message: Record<string, unknown> = { role: "assistant", content: text, refusal: null };
  if (calls.length > 0) message["tool_calls"] = calls;
  const counts = emptyAnthropicCounts();
  mergeAnthropicUsage(counts, msg["usage"]);
  const id = typeof msg["id"] === "string" ? msg["id"] : "unknown";
  const model = typeof msg["model"] === "string" ? msg["model"] : meta.clientModel;
  const head = JSON.stringify({
    id: `chatcmpl-${id}`,
    object: "chat.completion",
    created: meta.created,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(msg["stop_reason"]) ?? "stop" }],
  });
  return Buffer.from(`${head.slice(0, -1)},"usage":${usageJson(counts)}}`);
}

/**
 * Events whose data is read. message_stop is known by its type alone; the rest (ping,
 * content_block_stop, event types added later) are skipped without decoding.
 */
const DECODED = new Set(["message_start", "content_block_start", "content_block_delta", "message_delta", "error", "message"]);

const DELTA_HEAD = '{"type":"content_block_delta","index":';
const TEXT_MIDDLE = ',"delta":{"type":"text_delta","text":';
const JSON_MIDDLE = ',"delta":{"type":"input_json_delta","partial_json":';
const INDEX = /^(?:0|[1-9]\d*)$/;
/** One complete JSON string literal (RFC 8259 section 7). */
// eslint-disable-next-line no-control-regex -- raw control characters are what makes a JSON string invalid
const JSON_STRING = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"$/;
/** Longer literals go through JSON.parse, which needs no backtracking stack however long they are. */
const MAX_LITERAL = 4096;

/**
 * One attempt's stream. Every output chunk shares a prefix (id, object, created, model), built
 * once when message_start names the message; the bench holds a translated stream to under twice
 * the cost of passing it through, so deltas mostly skip JSON.parse (compactDelta) and every other
 * event is parsed once.
 */
class StreamTranslator implements SseSink {
  private readonly framer = new SseFramer(this, MAX_EVENT_BYTES);
  private out = "";
  /** The stream ended (message_stop, an error event, or an unreadable event): later bytes are ignored. */
  private done = false;
  private prefix: string | undefined;
  private id = "chatcmpl-unknown";
  private model: string;
  private readonly counts = emptyAnthropicCounts();
  /** OpenAI tool-call index per Anthropic content block index (tool_use blocks only). */
  private readonly toolIndex = new Map<number, number>();
  private tools = 0;

  constructor(private readonly meta: TranslationMeta) {
    this.model = meta.clientModel;
  }

  feed(chunk: Buffer, end: boolean): Buffer {
    if (this.done) return EMPTY;
    try {
      this.framer.feed(chunk, end);
    } catch {
      this.fail();
    }
    const out = this.out;
    if (out === "") return EMPTY;
    this.out = "";
    return Buffer.from(out);
  }

  wantsData(type: string): boolean {
    return !this.done && DECODED.has(type);
  }

  onEvent(type: string, data: string | undefined): void {
    if (this.done) return;
    if (type === "message_stop") return this.stop();
    if (!DECODED.has(type)) return;
    if (type === "content_block_delta" && data !== undefined && this.compactDelta(data)) return;
    const event = data === undefined ? undefined : parseObject(data);
    if (event === undefined) return this.fail();
    const t = type === "message" ? event["type"] : type;
    switch (t) {
      case "message_start":
        return this.start(event["message"]);
      case "content_block_start":
        return this.blockStart(event["index"], event["content_block"]);
      case "content_block_delta":
        return this.delta(event["index"], event["delta"]);
      case "message_delta": {
        mergeAnthropicUsage(this.counts, event["usage"]);
        const reason = finishReason(field(event["delta"], "stop_reason"));
        if (reason !== null) this.chunk(`{}`, `"${reason}"`);
        return;
      }
      case "message_stop":
        return this.stop();
      case "error":
        return this.error(event["error"]);
    }
  }

  /**
   * The delta events that make up nearly all of a stream, in the exact compact form Anthropic
   * sends them, without JSON.parse: the text is a JSON string literal at a known place, checked
   * strictly and copied into the chunk as it is. Anything else (other key order, spacing, escapes
   * the check does not know) returns false and takes the general path.
   */
  private compactDelta(data: string): boolean {
    if (!data.startsWith(DELTA_HEAD) || !data.endsWith("}}")) return false;
    const comma = data.indexOf(",", DELTA_HEAD.length);
    if (comma === -1 || comma - DELTA_HEAD.length > 6) return false;
    const digits = data.slice(DELTA_HEAD.length, comma);
    if (!INDEX.test(digits)) return false;
    let literal: string;
    let tool: number | undefined;
    if (data.startsWith(TEXT_MIDDLE, comma)) {
      literal = data.slice(comma + TEXT_MIDDLE.length, -2);
    } else if (data.startsWith(JSON_MIDDLE, comma)) {
      literal = data.slice(comma + JSON_MIDDLE.length, -2);
      tool = this.toolIndex.get(Number(digits));
      if (tool === undefined) return literal.length <= MAX_LITERAL && JSON_STRING.test(literal);
    } else {
      return false;
    }
    if (literal.length > MAX_LITERAL || !JSON_STRING.test(literal)) return false;
    if (literal.length === 2) return true;
    if (tool === undefined) this.chunk(`{"content":${literal}}`);
    else this.chunk(`{"tool_calls":[{"index":${tool},"function":{"arguments":${literal}}}]}`);
    return true;
  }

  private chunk(delta: string, finish = "null"): void {
    this.prefix ??= `data: {"id":${JSON.stringify(this.id)},"object":"chat.completion.chunk","created":${this.meta.created},"model":${JSON.stringify(this.model)},"choices":[{"index":0,"delta":`;
    this.out += `${this.prefix}${delta},"logprobs":null,"finish_reason":${finish}}]}\n\n`;
  }

  private start(message: unknown): void {
    if (isRecord(message)) {
      if (typeof message["id"] === "string") this.id = `chatcmpl-${message["id"]}`;
      if (typeof message["model"] === "string") this.model = message["model"];
      mergeAnthropicUsage(this.counts, message["usage"]);
    }
    this.prefix = undefined;
    this.chunk(`{"role":"assistant","content":""}`);
  }

  private blockStart(index: unknown, block: unknown): void {
    if (!isRecord(block)) return;
    if (block["type"] === "text") {
      if (typeof block["text"] === "string" && block["text"] !== "") this.chunk(`{"content":${JSON.stringify(block["text"])}}`);
      return;
    }
    if (block["type"] !== "tool_use" || typeof index !== "number") return;
    const n = this.tools++;
    this.toolIndex.set(index, n);
    // Anthropic starts a tool block with an empty input and streams it; an input given whole here
    // (as some Anthropic-compatible servers do) is sent as the first arguments piece.
    const input = block["input"];
    const args = isRecord(input) && Object.keys(input).length > 0 ? JSON.stringify(input) : "";
    const call = { index: n, id: block["id"], type: "function", function: { name: block["name"], arguments: args } };
    this.chunk(`{"tool_calls":[${JSON.stringify(call)}]}`);
  }

  private delta(index: unknown, delta: unknown): void {
    if (!isRecord(delta)) return;
    const type = delta["type"];
    if (type === "text_delta") {
      const text = delta["text"];
      if (typeof text === "string" && text !== "") this.chunk(`{"content":${JSON.stringify(text)}}`);
    } else if (type === "input_json_delta") {
      const n = typeof index === "number" ? this.toolIndex.get(index) : undefined;
      const json = delta["partial_json"];
      if (n !== undefined && typeof json === "string" && json !== "") {
        this.chunk(`{"tool_calls":[{"index":${n},"function":{"arguments":${JSON.stringify(json)}}}]}`);
      }
    }
    // thinking_delta, signature_delta and citations_delta have no chat-completions field.
  }

  private stop(): void {
    if (this.meta.includeUsage) {
      this.out += `data: {"id":${JSON.stringify(this.id)},"object":"chat.completion.chunk","created":${this.meta.created},"model":${JSON.stringify(this.model)},"choices":[],"usage":${usageJson(this.counts)}}\n\n`;
    }
    this.out += DONE;
    this.done = true;
  }

  private error(error: unknown): void {
    const body = errorFrom(error, statusOfType(field(error, "type")));
    if (body === undefined) return this.fail();
    this.out += `data: ${body.toString()}\n\n`;
    this.done = true;
  }

  /** An event that cannot be read ends the translated stream with an error chunk. */
  private fail(): void {
    this.out += renderStreamError(new GatewayError("upstream_response_invalid"), "chat.completions").toString();
    this.done = true;
  }
}

export function responseTranslator(meta: TranslationMeta, _stream: boolean): ResponseTranslator {
  let translator: StreamTranslator | undefined;
  return {
    // 529 is Anthropic's "overloaded"; OpenAI clients (and their retry logic) know 503.
    status: (providerStatus) => (providerStatus === 529 ? 503 : providerStatus),
    contentType: (isStream) => (isStream ? "text/event-stream; charset=utf-8" : "application/json"),
    streamChunk(chunk, end) {
      translator ??= new StreamTranslator(meta);
      return translator.feed(chunk, end);
    },
    json(body) {
      try {
        const msg = parseObject(body.toString("utf8"));
        return msg === undefined ? invalidJson() : translateMessage(msg, meta);
      } catch {
        return invalidJson();
      }
    },
    error(providerStatus, body) {
      const status = providerStatus === 529 ? 503 : providerStatus;
      const parsed = parseObject(body.toString("utf8"));
      return errorFrom(parsed?.["error"], status) ?? clientErrorBody("openai", { status, message: fallbackMessage(providerStatus, body) });
    },
  };
}
