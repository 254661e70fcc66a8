// Bedrock Converse / ConverseStream answers -> OpenAI chat completions (JSON, SSE chunks, errors).
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
import type { Message } from "@smithy/eventstream-codec";
import { GatewayError, renderError, renderStreamError } from "../api/errors";
import { clientErrorBody, fallbackMessage, openAiErrorType } from "./client-errors";
import { EventStreamSplitter, stringHeader } from "./event-stream";
import type { BedrockExtra } from "./openai-to-bedrock-request";
import type { ResponseTranslator, TranslationMeta } from "./types";
import { isRecord, jsonText } from "../api/json";

/** A token count from a provider body: a non-negative integer, else 0. */
export function count(v: unknown): number {
  return typeof v === "number" && v >= 0 && Number.isFinite(v) ? Math.floor(v) : 0;
}

export function finishReason(stopReason: unknown): string {
  switch (stopReason) {
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length";
    case "tool_use":
      return "tool_calls";
    case "content_filtered":
    case "guardrail_intervened":
      return "content_filter";
    default:
      return "stop";
  }
}

/**
 * OpenAI usage from Converse TokenUsage. Converse counts cache reads and writes apart from
 * inputTokens, while OpenAI's prompt_tokens includes cached tokens (and the router bills it so).
 */
export function openAiUsage(usage: unknown): string | undefined {
  if (!isRecord(usage)) return undefined;
  const cacheRead = count(usage["cacheReadInputTokens"]);
  const prompt = count(usage["inputTokens"]) + cacheRead + count(usage["cacheWriteInputTokens"]);
  const completion = count(usage["outputTokens"]);
  return `{"prompt_tokens":${prompt},"completion_tokens":${completion},"total_tokens":${prompt + completion},"prompt_tokens_details":{"cached_tokens":${cacheRead}}}`;
}

function extraOf(meta: TranslationMeta): BedrockExtra {
  const e = meta.extra ?? {};
  return {
    model: typeof e["model"] === "string" ? e["model"] : meta.clientModel,
    id: typeof e["id"] === "string" ? e["id"] : `chatcmpl-bedrock-${meta.created}`,
  };
}

const invalid = (): Buffer => renderError(new GatewayError("upstream_response_invalid"), "openai").body;

export function completionJson(body: Buffer, meta: TranslationMeta): Buffer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return invalid();
  }
  if (!isRecord(parsed) || !isRecord(parsed["output"]) || !isRecord(parsed["output"]["message"])) return invalid();
  const content = parsed["output"]["message"]["content"];
  let text = "";
  let hasText = false;
  const calls: string[] = [];
  if (Array.isArray(content)) {
    for (const block of content) {
      if (!isRecord(block)) continue;
      if (typeof block["text"] === "string") {
        text += block["text"];
        hasText = true;
      } else if (isRecord(block["toolUse"])) {
        const t = block["toolUse"];
        const args = JSON.stringify(t["input"] ?? {});
        calls.push(`{"id":${JSON.stringify(jsonText(t["toolUseId"] ?? ""))},"type":"function","function":{"name":${JSON.stringify(jsonText(t["name"] ?? ""))},"arguments":${JSON.stringify(args)}}}`);
      }
      // reasoningContent, citations and images have no place in a chat.completion message.
    }
  }
  const { id, model } = extraOf(meta);
  const contentJson = hasText || calls.length === 0 ? JSON.stringify(text) : "null";
  const toolCalls = calls.length > 0 ? `,"tool_calls":[${calls.join(",")}]` : "";
  const usage = openAiUsage(parsed["usage"]);
  return Buffer.from(
    `{"id":${JSON.stringify(id)},"object":"chat.completion","created":${meta.created},"model":${JSON.stringify(model)},` +
      `"choices":[{"index":0,"message":{"role":"assistant","content":${contentJson},"refusal":null${toolCalls}},"logprobs":null,` +
      `"finish_reason":"${finishReason(parsed["stopReason"])}"}]${usage === undefined ? "" : `,"usage":${usage}`}}`,
  );
}

/** The error type from x-amzn-errortype ("ThrottlingException:http://...") or a JSON __type. */
function errorType(header: string | undefined, body: Record<string, unknown> | undefined): string | undefined {
  const raw = header ?? (typeof body?.["__type"] === "string" ? body["__type"] : undefined);
  if (raw === undefined) return undefined;
  const colon = raw.indexOf(":");
  const name = (colon === -1 ? raw : raw.slice(0, colon)).trim();
  const hash = name.lastIndexOf("#");
  const out = hash === -1 ? name : name.slice(hash + 1);
  return out === "" ? undefined : out;
}

export function errorJson(status: number, body: Buffer, header: (name: string) => string | undefined): Buffer {
  let parsed: Record<string, unknown> | undefined;
  try {
    const v: unknown = JSON.parse(body.toString("utf8"));
    if (isRecord(v)) parsed = v;
  } catch {
    parsed = undefined;
  }
  const m = parsed?.["message"] ?? parsed?.["Message"];
  const message = typeof m === "string" && m !== "" ? m : fallbackMessage(status, body);
  let type: string | undefined;
  try {
    type = errorType(header("x-amzn-errortype"), parsed);
  } catch {
    type = undefined;
  }
  return clientErrorBody("openai", { status, message, code: type });
}

/** Status of a stream exception, for its OpenAI error type (ConverseStream's documented codes). */
const EXCEPTION_STATUS: Record<string, number> = {
  throttlingException: 429,
  validationException: 400,
  serviceUnavailableException: 503,
  internalServerException: 500,
  modelStreamErrorException: 500,
  modelTimeoutException: 500,
};

/** ConverseStream events -> chat.completion.chunk SSE, fed with the binary stream in any cut. */
export class BedrockStreamTranslator {
  private readonly splitter = new EventStreamSplitter();
  /** Every chunk's text up to `"choices":`, built once. */
  private readonly head: string;
  private readonly includeUsage: boolean;
  private roleSent = false;
  private stopped = false;
  /** [DONE] sent, an error sent, or the stream is unreadable: nothing more is written. */
  private finished = false;
  /** Converse content block index -> OpenAI tool_calls index. */
  private readonly toolIndex = new Map<number, number>();

  constructor(meta: TranslationMeta) {
    const { id, model } = extraOf(meta);
    this.head = `data: {"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${meta.created},"model":${JSON.stringify(model)},"choices":`;
    this.includeUsage = meta.includeUsage;
  }

  push(chunk: Buffer, end: boolean): Buffer {
    if (this.finished) return EMPTY;
    let out = "";
    for (const frame of this.splitter.push(chunk)) {
      const r = this.frame(frame);
      if (r === undefined) return this.fail(out);
      out += r;
      if (this.finished) return Buffer.from(out);
    }
    if (this.splitter.corrupt !== undefined) return this.fail(out);
    // A stream cut after messageStop lost only its metadata: the answer is whole, usage unknown.
    if (end && this.stopped) {
      out += "data: [DONE]\n\n";
      this.finished = true;
    }
    return out === "" ? EMPTY : Buffer.from(out);
  }

  private fail(out: string): Buffer {
    this.finished = true;
    return Buffer.concat([Buffer.from(out), renderStreamError(new GatewayError("upstream_response_invalid"), "chat.completions")]);
  }

  private delta(delta: string, finish = "null"): string {
    return `${this.head}[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":${finish}}]}\n\n`;
  }

  private role(): string {
    if (this.roleSent) return "";
    this.roleSent = true;
    return this.delta(`{"role":"assistant","content":""}`);
  }

  /** The SSE for one frame; undefined when its payload is unreadable. */
  private frame(frame: Message): string | undefined {
    const kind = stringHeader(frame.headers, ":message-type");
    if (kind === "exception" || kind === "error") return this.exception(frame, kind);
    if (kind !== "event") return "";
    const type = stringHeader(frame.headers, ":event-type");
    // Only payloads that carry something for the client are decoded (contentBlockStop and events
    // this translation does not know are skipped unread).
    if (type === "messageStart") return this.role();
    if (type !== "contentBlockStart" && type !== "contentBlockDelta" && type !== "messageStop" && type !== "metadata") return "";
    let p: unknown;
    try {
      p = JSON.parse(Buffer.from(frame.body.buffer, frame.body.byteOffset, frame.body.byteLength).toString("utf8"));
    } catch {
      return undefined;
    }
    if (!isRecord(p)) return undefined;
    switch (type) {
      case "contentBlockStart": {
        const start = p["start"];
        if (!isRecord(start) || !isRecord(start["toolUse"])) return "";
        const t = start["toolUse"];
        const index = this.toolIndex.size;
        this.toolIndex.set(count(p["contentBlockIndex"]), index);
        const call = `{"index":${index},"id":${JSON.stringify(jsonText(t["toolUseId"] ?? ""))},"type":"function","function":{"name":${JSON.stringify(jsonText(t["name"] ?? ""))},"arguments":""}}`;
        return this.role() + this.delta(`{"tool_calls":[${call}]}`);
      }
      case "contentBlockDelta": {
        const d = p["delta"];
        if (!isRecord(d)) return "";
        if (typeof d["text"] === "string") return d["text"] === "" ? "" : this.role() + this.delta(`{"content":${JSON.stringify(d["text"])}}`);
        const tool = d["toolUse"];
        if (isRecord(tool) && typeof tool["input"] === "string") {
          const index = this.toolIndex.get(count(p["contentBlockIndex"]));
          if (index === undefined || tool["input"] === "") return "";
          return this.delta(`{"tool_calls":[{"index":${index},"function":{"arguments":${JSON.stringify(tool["input"])}}}]}`);
        }
        // reasoningContent and citations deltas have no chat.completion.chunk field.
        return "";
      }
      case "messageStop":
        if (this.stopped) return "";
        this.stopped = true;
        return this.role() + this.delta("{}", `"${finishReason(p["stopReason"])}"`);
      default: {
        // metadata: Converse sends it after messageStop, with the usage.
        if (!this.stopped) return "";
        this.finished = true;
        const usage = this.includeUsage ? openAiUsage(p["usage"]) : undefined;
        return `${usage === undefined ? "" : `${this.head}[],"usage":${usage}}\n\n`}data: [DONE]\n\n`;
      }
    }
  }

  /** A modelled exception (`:exception-type`) or a protocol error (`:error-code`): one error chunk, then the end. */
  private exception(frame: Message, kind: string): string {
    this.finished = true;
    const name = stringHeader(frame.headers, kind === "exception" ? ":exception-type" : ":error-code") ?? "unknownException";
    let message = kind === "error" ? stringHeader(frame.headers, ":error-message") : undefined;
    if (message === undefined) {
      try {
        const p: unknown = JSON.parse(Buffer.from(frame.body.buffer, frame.body.byteOffset, frame.body.byteLength).toString("utf8"));
        if (isRecord(p)) {
          const m = p["message"] ?? p["Message"];
          if (typeof m === "string") message = m;
        }
      } catch {
        message = undefined;
      }
    }
    const status = EXCEPTION_STATUS[name] ?? 500;
    const error = { message: message ?? `The provider's stream failed (${name}).`, type: openAiErrorType(status), param: null, code: name };
    return `data: ${JSON.stringify({ error })}\n\n`;
  }
}

const EMPTY = Buffer.alloc(0);

export function bedrockResponse(meta: TranslationMeta, _stream: boolean): ResponseTranslator {
  // Made on first use: a stream keeps its state across chunks, a JSON answer never needs one.
  let streamer: BedrockStreamTranslator | undefined;
  return {
    status: (providerStatus) => providerStatus,
    contentType: (s) => (s ? "text/event-stream; charset=utf-8" : "application/json"),
    streamChunk(chunk, end) {
      streamer ??= new BedrockStreamTranslator(meta);
      return streamer.push(chunk, end);
    },
    json: (body) => {
      // Never throws, as every translator: a tool input nested deeper than JSON.stringify can go
      // threw a RangeError out of the stream (found by test/fuzz-translate.test.ts).
      try {
        return completionJson(body, meta);
      } catch {
        return invalid();
      }
    },
    error: (status, body, header) => errorJson(status, body, header),
  };
}
