// OpenAI chat completions answer -> Anthropic Messages answer: whole JSON, streams
// (https://docs.anthropic.com/en/docs/build-with-claude/streaming) and error bodies.
//
// Usage: OpenAI streams report usage once, in a chunk after the finish chunk, while Anthropic
// puts input_tokens in message_start. message_start therefore says 0 and message_delta carries the
// real counts (input_tokens, cache_read_input_tokens, output_tokens): Anthropic's message_delta
// usage documents all three, its SDKs take the non-null ones, and the router's usage reader keeps
// the latest count of each. So message_delta waits for the usage chunk (or [DONE]).
import { GatewayError, renderError, renderStreamError } from "../api/errors";
import { SseFramer, type SseSink } from "../usage/sse-events";
import { clientErrorBody, fallbackMessage } from "./client-errors";
import type { ResponseTranslator, TranslationMeta } from "./types";
import { isRecord, jsonText } from "../api/json";

type Json = Record<string, unknown>;

const EMPTY = Buffer.alloc(0);
/** One provider event larger than this cannot be translated (the framer drops its data). */
const MAX_EVENT_BYTES = 16 * 1024 * 1024;
const INVALID_STREAM = renderStreamError(new GatewayError("upstream_response_invalid"), "messages").toString("utf8");

function invalidJson(): Buffer {
  return renderError(new GatewayError("upstream_response_invalid"), "anthropic").body;
}

/**
 * OpenAI finish_reason -> Anthropic stop_reason. OpenAI does not say which stop sequence matched,
 * so "stop" is end_turn. Some OpenAI-compatible servers finish a tool call with "stop": a turn
 * that produced tool calls is a tool_use turn whatever the reason, since that is what Anthropic
 * clients loop on.
 */
function stopReasonOf(finish: unknown, sawTool: boolean): string {
  switch (finish) {
    case "length": return "max_tokens";
    case "tool_calls":
    case "function_call": return "tool_use";
    case "content_filter": return "refusal";
    default: return sawTool ? "tool_use" : "end_turn";
  }
}

function count(v: unknown): number {
  return typeof v === "number" && v >= 0 && v !== Infinity ? Math.floor(v) : 0;
}

/** Anthropic's input_tokens excludes cache reads; OpenAI's prompt_tokens includes them. */
function usageCounts(u: Json): { input: number; cached: number; output: number } {
  const prompt = count(u["prompt_tokens"]);
  const details = u["prompt_tokens_details"];
  const cached = Math.min(isRecord(details) ? count(details["cached_tokens"]) : 0, prompt);
  return { input: prompt - cached, cached, output: count(u["completion_tokens"]) };
}

/**
 * Output tokens when the provider reported no usage, as the router would estimate them from the
 * deltas (usage-reader's estimatedOutputTokens), so accounting does not fall to zero.
 */
function estimatedOutput(deltas: number, chars: number): number {
  return Math.max(deltas, Math.ceil(chars / 4));
}

interface ErrorFacts {
  message: string;
  code: string | undefined;
}

/** The error in an OpenAI body ({error:{message}}), an Ollama one ({error:"..."}) or a vLLM one ({message}). */
function errorFacts(v: unknown): ErrorFacts | undefined {
  if (!isRecord(v)) return undefined;
  const e = v["error"];
  const holder = isRecord(e) ? e : v;
  const message = typeof e === "string" ? e : holder["message"];
  if (typeof message !== "string" || message === "") return undefined;
  const code = holder["code"] ?? holder["type"];
  return { message, code: typeof code === "string" ? code : undefined };
}

/** A status for an error met inside a 200 (stream chunk or JSON body), from its code or type. */
function errorStatus(v: unknown): number {
  const e = isRecord(v) && isRecord(v["error"]) ? v["error"] : v;
  if (!isRecord(e)) return 500;
  for (const key of ["status", "code"]) {
    const n = e[key];
    if (typeof n === "number" && n >= 400 && n <= 599) return Math.floor(n);
  }
  const kind = `${jsonText(e["type"] ?? "")} ${jsonText(e["code"] ?? "")}`.toLowerCase();
  if (kind.includes("rate_limit") || kind.includes("insufficient_quota")) return 429;
  if (kind.includes("overloaded")) return 529;
  if (kind.includes("authentication")) return 401;
  if (kind.includes("permission")) return 403;
  if (kind.includes("not_found")) return 404;
  if (kind.includes("invalid_request")) return 400;
  return 500;
}

/** A tool call's arguments as Anthropic's input object. */
function toolInput(args: unknown): unknown {
  if (isRecord(args)) return args;
  if (typeof args !== "string" || args.trim() === "") return {};
  try {
    const v: unknown = JSON.parse(args);
    if (isRecord(v)) return v;
  } catch {
    // fall through
  }
  // Anthropic's input must be an object. {} would hide what the model wrote; keeping it lets the
  // client's schema check fail visibly and report it back to the model, which can retry.
  return { _raw: args };
}

/** Message content as text: a string, or (some compatible servers) an array of text parts. */
function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  let text = "";
  for (const part of content) if (isRecord(part) && typeof part["text"] === "string") text += part["text"];
  return text;
}

const NONE = 0;
const TEXT = 1;
const TOOL = 2;

class OpenAiToAnthropic implements ResponseTranslator, SseSink {
  private framer: SseFramer | undefined;
  private out = "";
  private done = false;
  private started = false;
  private msgId = "";
  /** Content blocks opened so far; the open one, if any, has index blocks - 1. */
  private blocks = 0;
  private open = NONE;
  private toolId = "";
  private toolIndex = -1;
  private sawTool = false;
  private stop: string | undefined;
  /** The provider's usage as message_delta's usage JSON, once reported. */
  private usage: string | undefined;
  private deltas = 0;
  private chars = 0;

  constructor(private readonly meta: TranslationMeta) {}

  status(providerStatus: number): number {
    return providerStatus;
  }

  contentType(stream: boolean): string {
    return stream ? "text/event-stream; charset=utf-8" : "application/json";
  }

  streamChunk(chunk: Buffer, end: boolean): Buffer {
    try {
      if (!this.done) (this.framer ??= new SseFramer(this, MAX_EVENT_BYTES)).feed(chunk, end);
      // A finished answer whose [DONE] never came is still complete.
      if (end && !this.done && this.stop !== undefined) this.finish();
    } catch {
      if (!this.done) this.invalid();
    }
    const out = this.out;
    if (out === "") return EMPTY;
    this.out = "";
    return Buffer.from(out);
  }

  wantsData(): boolean {
    return !this.done;
  }

  onEvent(_type: string, data: string | undefined): void {
    if (this.done) return;
    if (data === undefined) return this.invalid();
    if (data === "[DONE]") return this.atDone();
    if (data === "") return;
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      return this.invalid();
    }
    if (!isRecord(chunk)) return this.invalid();
    const error = chunk["error"];
    if (error !== undefined && error !== null) return this.streamError(chunk);
    if (!this.started) this.start(chunk);
    if (this.stop === undefined) {
      const choices = chunk["choices"];
      if (Array.isArray(choices)) {
        // Only the first choice: the request never asks for n > 1.
        for (const choice of choices) if (isRecord(choice) && (choice["index"] ?? 0) === 0) this.choice(choice);
      }
    }
    const usage = chunk["usage"];
    if (isRecord(usage)) {
      const u = usageCounts(usage);
      this.usage = `{"input_tokens":${u.input},"cache_read_input_tokens":${u.cached},"output_tokens":${u.output}}`;
      if (this.stop !== undefined) this.finish();
    }
  }

  private start(chunk: Json): void {
    this.started = true;
    const id = chunk["id"];
    this.msgId = typeof id === "string" && id !== "" ? id : String(this.meta.created);
    const model = typeof chunk["model"] === "string" && chunk["model"] !== "" ? chunk["model"] : this.meta.clientModel;
    this.out +=
      `event: message_start\ndata: {"type":"message_start","message":{"id":${JSON.stringify(`msg_${this.msgId}`)},"type":"message","role":"assistant",` +
      `"model":${JSON.stringify(model)},"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}\n\n`;
  }

  private choice(choice: Json): void {
    const delta = choice["delta"];
    if (isRecord(delta)) {
      const content = delta["content"];
      if (typeof content === "string" && content !== "") this.text(content);
      // A refusal is what the model said instead of an answer: the client shows it as text.
      const refusal = delta["refusal"];
      if (typeof refusal === "string" && refusal !== "") this.text(refusal);
      const calls = delta["tool_calls"];
      if (Array.isArray(calls)) for (const call of calls) if (isRecord(call)) this.toolCall(call);
    }
    const finish = choice["finish_reason"];
    if (typeof finish === "string") {
      this.close();
      this.stop = stopReasonOf(finish, this.sawTool);
    }
  }

  private text(text: string): void {
    if (this.open !== TEXT) {
      this.close();
      this.out += `event: content_block_start\ndata: {"type":"content_block_start","index":${this.blocks},"content_block":{"type":"text","text":""}}\n\n`;
      this.open = TEXT;
      this.blocks++;
    }
    this.out += `event: content_block_delta\ndata: {"type":"content_block_delta","index":${this.blocks - 1},"delta":{"type":"text_delta","text":${JSON.stringify(text)}}}\n\n`;
    this.deltas++;
    this.chars += text.length;
  }

  private toolCall(call: Json): void {
    const rawId = call["id"];
    const id = typeof rawId === "string" && rawId !== "" ? rawId : undefined;
    const index = typeof call["index"] === "number" ? call["index"] : -1;
    const fn = isRecord(call["function"]) ? call["function"] : undefined;
    // A new call opens a new block: a new id, or a new index without one. Ollama numbers every call
    // of a parallel batch 0 and tells them apart by id alone.
    const fresh = this.open !== TOOL || (id !== undefined && id !== this.toolId) || (id === undefined && index !== -1 && index !== this.toolIndex);
    if (fresh) {
      const name = fn?.["name"];
      // Arguments of no call seen, and no name to start one with: nothing to attach them to.
      if (id === undefined && typeof name !== "string") return;
      this.close();
      this.toolId = id ?? `toolu_${this.msgId}_${this.blocks}`;
      this.toolIndex = index;
      this.out +=
        `event: content_block_start\ndata: {"type":"content_block_start","index":${this.blocks},` +
        `"content_block":{"type":"tool_use","id":${JSON.stringify(this.toolId)},"name":${JSON.stringify(typeof name === "string" ? name : "")},"input":{}}}\n\n`;
      this.open = TOOL;
      this.sawTool = true;
      this.blocks++;
    }
    const args = fn?.["arguments"];
    if (typeof args !== "string" || args === "") return;
    this.out += `event: content_block_delta\ndata: {"type":"content_block_delta","index":${this.blocks - 1},"delta":{"type":"input_json_delta","partial_json":${JSON.stringify(args)}}}\n\n`;
    this.deltas++;
    this.chars += args.length;
  }

  private close(): void {
    if (this.open === NONE) return;
    this.out += `event: content_block_stop\ndata: {"type":"content_block_stop","index":${this.blocks - 1}}\n\n`;
    this.open = NONE;
  }

  private atDone(): void {
    // [DONE] with nothing before it: the provider answered no message at all.
    if (!this.started) return this.invalid();
    if (this.stop === undefined) {
      this.close();
      this.stop = this.sawTool ? "tool_use" : "end_turn";
    }
    this.finish();
  }

  private finish(): void {
    const usage = this.usage ?? `{"output_tokens":${estimatedOutput(this.deltas, this.chars)}}`;
    this.out +=
      `event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"${this.stop ?? "end_turn"}","stop_sequence":null},"usage":${usage}}\n\n` +
      `event: message_stop\ndata: {"type":"message_stop"}\n\n`;
    this.done = true;
  }

  private streamError(chunk: Json): void {
    const facts = errorFacts(chunk);
    const body = clientErrorBody("anthropic", { status: errorStatus(chunk), message: facts?.message ?? "The provider reported an error." });
    this.out += `event: error\ndata: ${body.toString("utf8")}\n\n`;
    this.done = true;
  }

  private invalid(): void {
    this.out += INVALID_STREAM;
    this.done = true;
  }

  json(body: Buffer): Buffer {
    try {
      return this.message(body);
    } catch {
      return invalidJson();
    }
  }

  private message(body: Buffer): Buffer {
    let v: unknown;
    try {
      v = JSON.parse(body.toString("utf8"));
    } catch {
      return invalidJson();
    }
    if (!isRecord(v)) return invalidJson();
    const choices = v["choices"];
    if (!Array.isArray(choices)) {
      const facts = errorFacts(v);
      return facts === undefined ? invalidJson() : clientErrorBody("anthropic", { status: errorStatus(v), message: facts.message, code: facts.code });
    }
    const choice: unknown = choices.find((c) => isRecord(c) && (c["index"] ?? 0) === 0) ?? choices[0];
    const message = isRecord(choice) ? choice["message"] : undefined;
    const content: Json[] = [];
    let chars = 0;
    if (isRecord(message)) {
      let text = messageText(message["content"]);
      if (text === "" && typeof message["refusal"] === "string") text = message["refusal"];
      if (text !== "") content.push({ type: "text", text });
      chars += text.length;
      const calls = message["tool_calls"];
      if (Array.isArray(calls)) {
        for (const call of calls) {
          if (!isRecord(call)) continue;
          const fn = isRecord(call["function"]) ? call["function"] : {};
          const id = typeof call["id"] === "string" && call["id"] !== "" ? call["id"] : `toolu_${jsonText(v["id"] ?? this.meta.created)}_${content.length}`;
          const args = fn["arguments"];
          if (typeof args === "string") chars += args.length;
          content.push({ type: "tool_use", id, name: typeof fn["name"] === "string" ? fn["name"] : "", input: toolInput(args) });
        }
      }
    }
    const sawTool = content.some((b) => b["type"] === "tool_use");
    const usage = isRecord(v["usage"]) ? usageCounts(v["usage"]) : { input: 0, cached: 0, output: estimatedOutput(chars > 0 ? 1 : 0, chars) };
    const id = typeof v["id"] === "string" && v["id"] !== "" ? v["id"] : String(this.meta.created);
    return Buffer.from(
      JSON.stringify({
        id: `msg_${id}`,
        type: "message",
        role: "assistant",
        model: typeof v["model"] === "string" && v["model"] !== "" ? v["model"] : this.meta.clientModel,
        content,
        stop_reason: stopReasonOf(isRecord(choice) ? choice["finish_reason"] : undefined, sawTool),
        stop_sequence: null,
        usage: { input_tokens: usage.input, output_tokens: usage.output, cache_read_input_tokens: usage.cached },
      }),
    );
  }

  error(providerStatus: number, body: Buffer): Buffer {
    let facts: ErrorFacts | undefined;
    try {
      facts = errorFacts(JSON.parse(body.toString("utf8")));
    } catch {
      facts = undefined;
    }
    return clientErrorBody("anthropic", {
      status: this.status(providerStatus),
      message: facts?.message ?? fallbackMessage(providerStatus, body),
      code: facts?.code,
    });
  }
}

export function openAiResponseToAnthropic(meta: TranslationMeta): ResponseTranslator {
  return new OpenAiToAnthropic(meta);
}
