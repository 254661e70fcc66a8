// Reads token usage from the response body the client receives, chunk by chunk as Envoy passes it
// on, for quota settlement and cost. The body is in the client's API format (the upstream phase
// has already translated it), so three dialects cover every operation: OpenAI chat/completions
// (embeddings share its usage object), the OpenAI Responses API, and Anthropic messages.
//
// The reader is pure: no clock, no I/O, and it never throws, because a body it cannot read must
// still reach the client untouched. Its one edit is optional: dropping the usage-only chunk of an
// OpenAI stream when the gateway, not the client, asked for stream_options.include_usage.
import type { Operation } from "../api/operations";
import { SseFramer, type SseSink } from "./sse-events";
import {
  type Usage,
  anthropicInputTokens,
  emptyAnthropicCounts,
  mergeAnthropicUsage,
  usageFromAnthropic,
  usageFromOpenAi,
  usageFromResponses,
} from "./usage";
import { isRecord, parseObject } from "../api/json";

export interface UsageReaderOptions {
  operation: Operation;
  /** True when the response content-type is text/event-stream. */
  streaming: boolean;
  /**
   * OpenAI chat/completions streams only: drop the extra usage-only chunk (choices: [] and a usage
   * object), because the gateway added stream_options.include_usage and the client did not ask for it.
   */
  stripUsageChunk: boolean;
  /** Non-streaming bodies larger than this are not kept (usage then unknown); also caps one stream event. Default 16 MiB. */
  maxJsonBytes?: number;
}

export interface UsageReport {
  /** What the provider reported; undefined when it reported nothing (or the stream was cut before it). */
  usage: Usage | undefined;
  /**
   * The terminal marker was seen: `data: [DONE]` (OpenAI chat/completions), `message_stop`
   * (Anthropic), `response.completed`/`response.incomplete`/`response.failed` (Responses API);
   * for JSON: the whole body parsed.
   */
  terminal: boolean;
  /**
   * Output tokens estimated from the content deltas relayed so far (for streams cut short, where
   * usage never came): max(number of delta events carrying output text/arguments,
   * ceil(output characters / 4)). 0 for JSON.
   */
  estimatedOutputTokens: number;
  /** Anthropic message_start usage gives input tokens early; any input count seen before the end, else undefined. */
  inputTokensSeen: number | undefined;
  /** The provider reported an error: an `error` event in a stream, or an error object as the JSON body. */
  errorSeen: boolean;
  /** The answer's own `model` (the first one seen in a stream), when it names one. */
  model: string | undefined;
}

const DEFAULT_MAX_JSON_BYTES = 16 * 1024 * 1024;
// The usage-only chunk is a few hundred bytes. A pending block this large cannot be it, so it is
// released rather than held, which bounds what stripping keeps in memory.
const MAX_HELD_BYTES = 64 * 1024;

type Dialect = "openai" | "responses" | "anthropic";

// Events whose data is decoded and parsed. The rest (pings, block and item starts and stops, the
// `.done` events that repeat the whole text) are skipped on their `event:` line alone; an event
// without one ("message") is parsed to learn its type from the data.
const RESPONSES_FINAL = new Set(["response.completed", "response.incomplete", "response.failed"]);
const RESPONSES_DELTAS = new Set([
  "response.output_text.delta",
  "response.function_call_arguments.delta",
  "response.refusal.delta",
  "response.reasoning_text.delta",
  "response.reasoning_summary_text.delta",
]);
const ANTHROPIC_PARSED = new Set(["message_start", "content_block_delta", "message_delta"]);

function dialectOf(operation: Operation): Dialect {
  if (operation === "responses") return "responses";
  return operation === "messages" ? "anthropic" : "openai";
}

function field(obj: unknown, key: string): unknown {
  return isRecord(obj) ? obj[key] : undefined;
}

function stringField(obj: unknown, key: string): string | undefined {
  const v = field(obj, key);
  return typeof v === "string" ? v : undefined;
}

function textLength(v: unknown): number {
  return typeof v === "string" ? v.length : 0;
}

/** What the events of one SSE body say about usage and output. */
class StreamAccount implements SseSink {
  usage: Usage | undefined;
  terminal = false;
  errorSeen = false;
  inputSeen: number | undefined;
  model: string | undefined;
  deltaEvents = 0;
  outputChars = 0;
  /** Byte span of the usage-only chunk, when asked to find it; -1 until found. */
  dropStart = -1;
  dropEnd = -1;
  private readonly anthropic = emptyAnthropicCounts();

  constructor(
    private readonly dialect: Dialect,
    private readonly findUsageChunk: boolean,
  ) {}

  wantsData(type: string): boolean {
    if (this.dialect === "openai" || type === "message") return true;
    if (this.dialect === "responses") return RESPONSES_FINAL.has(type) || RESPONSES_DELTAS.has(type);
    return ANTHROPIC_PARSED.has(type);
  }

  onEvent(type: string, data: string | undefined, start: number, end: number): void {
    if (this.dialect === "openai") this.openAiEvent(data, start, end);
    else if (this.dialect === "responses") this.responsesEvent(type, data);
    else this.anthropicEvent(type, data);
  }

  private addOutput(chars: number): void {
    if (chars === 0) return;
    this.deltaEvents++;
    this.outputChars += chars;
  }

  // https://platform.openai.com/docs/api-reference/chat-streaming/streaming
  private openAiEvent(data: string | undefined, start: number, end: number): void {
    if (data === undefined) return;
    if (data === "[DONE]") {
      this.terminal = true;
      return;
    }
    const chunk = parseObject(data);
    if (chunk === undefined) return;
    this.model ??= stringField(chunk, "model");
    const choices = chunk["choices"];
    const usage = usageFromOpenAi(chunk["usage"]);
    if (usage !== undefined) {
      this.usage = usage;
      this.inputSeen = usage.inputTokens;
    }
    if (this.findUsageChunk && this.dropStart === -1 && isRecord(chunk["usage"]) && Array.isArray(choices) && choices.length === 0) {
      this.dropStart = start;
      this.dropEnd = end;
    }
    if (isRecord(chunk["error"])) this.errorSeen = true;
    if (!Array.isArray(choices)) return;
    let chars = 0;
    for (const choice of choices) {
      chars += textLength(field(choice, "text"));
      const delta = field(choice, "delta");
      if (!isRecord(delta)) continue;
      // reasoning_content is not OpenAI's, but OpenAI-compatible servers (DeepSeek, vLLM) stream
      // billed reasoning in it.
      chars += textLength(delta["content"]) + textLength(delta["refusal"]) + textLength(delta["reasoning_content"]);
      chars += textLength(field(delta["function_call"], "arguments"));
      const calls = delta["tool_calls"];
      if (Array.isArray(calls)) for (const call of calls) chars += textLength(field(field(call, "function"), "arguments"));
    }
    this.addOutput(chars);
  }

  // https://platform.openai.com/docs/api-reference/responses-streaming
  private responsesEvent(type: string, data: string | undefined): void {
    const event = data === undefined ? undefined : parseObject(data);
    const declared = event?.["type"];
    const t = type === "message" && typeof declared === "string" ? declared : type;
    if (RESPONSES_FINAL.has(t)) {
      this.terminal = true;
      this.model ??= stringField(event?.["response"], "model");
      const usage = usageFromResponses(field(event?.["response"], "usage"));
      if (usage !== undefined) {
        this.usage = usage;
        this.inputSeen = usage.inputTokens;
      }
    } else if (RESPONSES_DELTAS.has(t)) {
      this.addOutput(textLength(event?.["delta"]));
    } else if (t === "error") {
      this.errorSeen = true;
    }
  }

  // https://docs.anthropic.com/en/docs/build-with-claude/streaming
  private anthropicEvent(type: string, data: string | undefined): void {
    const event = data === undefined ? undefined : parseObject(data);
    const declared = event?.["type"];
    const t = type === "message" && typeof declared === "string" ? declared : type;
    switch (t) {
      case "message_start":
        this.model ??= stringField(event?.["message"], "model");
        mergeAnthropicUsage(this.anthropic, field(event?.["message"], "usage"));
        // No prompt has zero tokens: a zero here means "not known yet" (a stream translated from an
        // API that reports usage only at the end), so a stream cut before then is settled from the
        // estimate rather than as free input.
        this.inputSeen = anthropicInputTokens(this.anthropic) || undefined;
        break;
      case "content_block_delta": {
        const delta = event?.["delta"];
        this.addOutput(textLength(field(delta, "text")) + textLength(field(delta, "partial_json")) + textLength(field(delta, "thinking")));
        break;
      }
      case "message_delta": {
        const usage = event?.["usage"];
        if (!isRecord(usage)) break;
        mergeAnthropicUsage(this.anthropic, usage);
        this.inputSeen = anthropicInputTokens(this.anthropic);
        // message_start's counts are provisional (output_tokens is a placeholder); only
        // message_delta's are the final ones.
        this.usage = usageFromAnthropic(this.anthropic);
        break;
      }
      case "message_stop":
        this.terminal = true;
        break;
      case "error":
        this.errorSeen = true;
        break;
    }
  }
}

/** The usage of a whole JSON response body, in its dialect. */
function jsonUsage(dialect: Dialect, body: Record<string, unknown>): Usage | undefined {
  if (dialect === "openai") return usageFromOpenAi(body["usage"]);
  if (dialect === "responses") return usageFromResponses(body["usage"]);
  const counts = emptyAnthropicCounts();
  mergeAnthropicUsage(counts, body["usage"]);
  return usageFromAnthropic(counts);
}

export class UsageReader {
  private readonly dialect: Dialect;
  private readonly maxJsonBytes: number;
  private readonly account: StreamAccount | undefined;
  private readonly framer: SseFramer | undefined;
  private ended = false;
  /** An internal error stopped reading; bytes pass untouched from then on. */
  private failed = false;

  private jsonParts: Buffer[] = [];
  private jsonBytes = 0;
  private jsonTooLarge = false;
  private jsonParsed = false;
  private jsonError = false;
  private jsonUsage: Usage | undefined;
  private jsonModel: string | undefined;

  /** Whether forwarded bytes may still differ from the input: until the usage-only chunk or [DONE] went by. */
  private stripping: boolean;
  /** Bytes held back from the client: stream offsets [heldAt, offset before the current chunk). */
  private held: Buffer | undefined;
  private heldAt = 0;

  constructor(opts: UsageReaderOptions) {
    this.dialect = dialectOf(opts.operation);
    this.maxJsonBytes = opts.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES;
    const strip = opts.streaming && opts.stripUsageChunk && (opts.operation === "chat.completions" || opts.operation === "completions");
    this.stripping = strip;
    if (opts.streaming) {
      this.account = new StreamAccount(this.dialect, strip);
      this.framer = new SseFramer(this.account, this.maxJsonBytes);
    }
  }

  /**
   * Feeds one body chunk (end = end_of_stream). Returns undefined when the chunk must pass
   * unchanged (the common case, no allocation), or the bytes to forward instead, possibly empty
   * while an incomplete event is held back. Never throws, whatever the input. The chunk is kept as
   * a view, not copied, so its memory must not be reused afterwards.
   */
  push(chunk: Buffer, end: boolean): Buffer | undefined {
    if (this.ended || this.failed) return undefined;
    this.ended = end;
    const framer = this.framer;
    const before = framer?.offset ?? 0;
    try {
      if (framer === undefined) {
        this.collectJson(chunk, end);
        return undefined;
      }
      framer.feed(chunk, end);
      return this.stripping ? this.forward(chunk, before, framer.offset, end) : undefined;
    } catch {
      // Unreachable by design; if it happens anyway, the client still gets every byte.
      this.failed = true;
      this.jsonParts = [];
      const held = this.held;
      this.held = undefined;
      this.stripping = false;
      return held === undefined ? undefined : Buffer.concat([held, chunk]);
    }
  }

  report(): UsageReport {
    const account = this.account;
    if (account === undefined) {
      const usage = this.jsonUsage === undefined ? undefined : { ...this.jsonUsage };
      return { usage, terminal: this.jsonParsed, estimatedOutputTokens: 0, inputTokensSeen: usage?.inputTokens, errorSeen: this.jsonError, model: this.jsonModel };
    }
    return {
      usage: account.usage === undefined ? undefined : { ...account.usage },
      terminal: account.terminal,
      estimatedOutputTokens: Math.max(account.deltaEvents, Math.ceil(account.outputChars / 4)),
      inputTokensSeen: account.inputSeen,
      errorSeen: account.errorSeen,
      model: account.model,
    };
  }

  /** The stream so far stops inside an event (or its trailing comments): more bytes would join it. */
  get midEvent(): boolean {
    const framer = this.framer;
    return framer !== undefined && framer.pendingFrom < framer.offset;
  }

  /** A stream relayed its first piece of output (text, tool arguments, reasoning) so far. */
  get outputStarted(): boolean {
    return (this.account?.deltaEvents ?? 0) > 0;
  }

  private collectJson(chunk: Buffer, end: boolean): void {
    if (!this.jsonTooLarge) {
      this.jsonBytes += chunk.length;
      if (this.jsonBytes > this.maxJsonBytes) {
        this.jsonTooLarge = true;
        this.jsonParts = [];
      } else if (chunk.length > 0) {
        this.jsonParts.push(chunk);
      }
    }
    if (!end || this.jsonTooLarge) return;
    const parts = this.jsonParts;
    this.jsonParts = [];
    const text = parts.length === 1 ? parts[0]!.toString("utf8") : Buffer.concat(parts).toString("utf8");
    const body = parseObject(text);
    if (body === undefined) return;
    this.jsonParsed = true;
    // OpenAI errors are {"error": {...}}, Anthropic's {"type": "error", "error": {...}}.
    this.jsonError = isRecord(body["error"]) || body["type"] === "error";
    this.jsonUsage = jsonUsage(this.dialect, body);
    this.jsonModel = stringField(body, "model");
  }

  /**
   * The bytes to forward for this chunk while stripping: everything up to the block still being
   * read, minus the usage-only chunk if it just ended. The block still being read is held back
   * because it might be that chunk; a client cannot act on part of an event anyway.
   */
  private forward(chunk: Buffer, before: number, fed: number, end: boolean): Buffer | undefined {
    const account = this.account!;
    const pendingFrom = this.framer!.pendingFrom;
    const found = account.dropStart !== -1;
    const done = found || account.terminal;
    // A block partly released already (too large) can no longer be held or dropped.
    const holdFrom = end || done || fed - pendingFrom > MAX_HELD_BYTES || pendingFrom < this.heldAt ? fed : pendingFrom;
    const dropping = found && account.dropStart >= this.heldAt;
    if (done) this.stripping = false;
    if (this.held === undefined && !dropping && holdFrom === fed) {
      this.heldAt = fed;
      return undefined;
    }
    const held = this.held ?? Buffer.alloc(0);
    const heldAt = this.heldAt;
    // Bytes [a, b) of the stream, from the held bytes and this chunk.
    const slice = (a: number, b: number): Buffer => {
      if (a >= before) return chunk.subarray(a - before, b - before);
      if (b <= before) return held.subarray(a - heldAt, b - heldAt);
      return Buffer.concat([held.subarray(a - heldAt), chunk.subarray(0, b - before)]);
    };
    const out = dropping ? Buffer.concat([slice(heldAt, account.dropStart), slice(account.dropEnd, holdFrom)]) : slice(heldAt, holdFrom);
    this.held = holdFrom < fed ? slice(holdFrom, fed) : undefined;
    this.heldAt = holdFrom;
    return out;
  }
}
