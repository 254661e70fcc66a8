// Gemini GenerateContentResponse -> OpenAI chat.completion, whole or streamed, and Gemini error
// bodies -> OpenAI error JSON (https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse).
//
// A Gemini stream (alt=sse) is one GenerateContentResponse per `data:` event and has no terminal
// event: it is complete once every candidate it started has reported a finishReason (or the
// prompt was blocked). Only then does the translated stream get its usage chunk and `data: [DONE]`;
// a stream cut before that ends without them, which the router phase reports as truncated.
import { GatewayError, renderError, renderStreamError } from "../api/errors";
import type { JsonObject } from "../api/request-body";
import { SseFramer, type SseSink } from "../usage/sse-events";
import { clientErrorBody, fallbackMessage } from "./client-errors";
import type { ResponseTranslator, TranslationMeta } from "./types";
import { isRecord } from "../api/json";

const EMPTY = Buffer.alloc(0);
const MAX_EVENT_BYTES = 32 * 1024 * 1024;
const DONE = "data: [DONE]\n\n";
// https://ai.google.dev/api/generate-content#FinishReason
const FILTERED = new Set(["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR"]);

function count(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0;
}

function finishReason(reason: string, toolCalls: boolean): string {
  if (reason === "MAX_TOKENS") return "length";
  if (FILTERED.has(reason)) return "content_filter";
  return toolCalls ? "tool_calls" : "stop";
}

/** OpenAI's usage from Gemini's usageMetadata: thinking is output, billed and reported as reasoning. */
export function openAiUsage(u: JsonObject): JsonObject {
  const prompt = count(u["promptTokenCount"]) + count(u["toolUsePromptTokenCount"]);
  const thoughts = count(u["thoughtsTokenCount"]);
  const completion = count(u["candidatesTokenCount"]) + thoughts;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: count(u["totalTokenCount"]) || prompt + completion,
    prompt_tokens_details: { cached_tokens: count(u["cachedContentTokenCount"]) },
    completion_tokens_details: { reasoning_tokens: thoughts },
  };
}

function tokenLogprob(c: unknown): JsonObject {
  const token = isRecord(c) && typeof c["token"] === "string" ? c["token"] : "";
  const logprob = isRecord(c) && typeof c["logProbability"] === "number" ? c["logProbability"] : 0;
  return { token, logprob, bytes: [...Buffer.from(token, "utf8")] };
}

/** Gemini's logprobsResult as OpenAI's choice.logprobs (null when the candidate has none). */
function openAiLogprobs(r: unknown): JsonObject | null {
  if (!isRecord(r) || !Array.isArray(r["chosenCandidates"])) return null;
  const top = Array.isArray(r["topCandidates"]) ? r["topCandidates"] : [];
  const content = r["chosenCandidates"].map((c, i) => {
    const alternatives: unknown = (top[i] as JsonObject | undefined)?.["candidates"];
    return { ...tokenLogprob(c), top_logprobs: Array.isArray(alternatives) ? alternatives.map(tokenLogprob) : [] };
  });
  return { content, refusal: null };
}

interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
  extra_content?: { google: { thought_signature: string } };
}

/** What one candidate (or one streamed piece of it) says: its text, function calls and finish. */
interface Piece {
  index: number;
  text: string;
  calls: ToolCall[];
  finish: string | undefined;
  logprobs: JsonObject | null;
}

/**
 * Tool call ids: Gemini's own when it sends one, else derived from the response id so that ids
 * stay unique across the turns of a conversation (some providers reject a repeated id).
 */
function readCandidate(c: unknown, pos: number, idBase: string, callsBefore: number): Piece {
  const cand = isRecord(c) ? c : {};
  const index = candidateIndex(cand, pos);
  const parts = field(cand["content"], "parts");
  let text = "";
  const calls: ToolCall[] = [];
  if (Array.isArray(parts)) {
    for (const p of parts) {
      if (!isRecord(p) || p["thought"] === true) continue;
      if (typeof p["text"] === "string") text += p["text"];
      const fc = p["functionCall"];
      if (!isRecord(fc)) continue;
      const n = callsBefore + calls.length;
      const id = typeof fc["id"] === "string" && fc["id"] !== "" ? fc["id"] : `${idBase}${index === 0 ? "" : `${index}_`}${n}`;
      const call: ToolCall = { id, type: "function", function: { name: typeof fc["name"] === "string" ? fc["name"] : "", arguments: JSON.stringify(fc["args"] ?? {}) } };
      if (typeof p["thoughtSignature"] === "string") call.extra_content = { google: { thought_signature: p["thoughtSignature"] } };
      calls.push(call);
    }
  }
  const finish = typeof cand["finishReason"] === "string" && cand["finishReason"] !== "" ? cand["finishReason"] : undefined;
  return { index, text, calls, finish, logprobs: openAiLogprobs(cand["logprobsResult"]) };
}

/** Gemini leaves out index 0 (proto3 JSON omits defaults); anything but a small integer is ignored. */
function candidateIndex(c: unknown, pos: number): number {
  const index = field(c, "index");
  return typeof index === "number" && Number.isInteger(index) && index >= 0 && index < 1024 ? index : pos;
}

function field(obj: unknown, key: string): unknown {
  return isRecord(obj) ? obj[key] : undefined;
}

function blocked(r: JsonObject): boolean {
  return typeof field(r["promptFeedback"], "blockReason") === "string";
}

/** Response ids are URL-safe base64 already; anything else is kept out of tool call ids. */
function callIdBase(r: JsonObject): string {
  const rid = typeof r["responseId"] === "string" ? r["responseId"].replace(/[^A-Za-z0-9_-]/g, "") : "";
  return rid === "" ? "call_" : `call_${rid}_`;
}

function modelOf(r: JsonObject, meta: TranslationMeta): string {
  if (typeof r["modelVersion"] === "string" && r["modelVersion"] !== "") return r["modelVersion"];
  const target = meta.extra?.["model"];
  return typeof target === "string" ? target : meta.clientModel;
}

function completionId(r: JsonObject, meta: TranslationMeta): string {
  return typeof r["responseId"] === "string" && r["responseId"] !== "" ? `chatcmpl-${r["responseId"]}` : `chatcmpl-gemini-${meta.created}`;
}

/** Gemini's error object ({code, message, status}) as the facts of an OpenAI error. */
function errorFacts(e: unknown, status: number): { status: number; message: string; code?: string } {
  const message = field(e, "message");
  const code = field(e, "status");
  return {
    status,
    message: typeof message === "string" && message !== "" ? message : `The provider answered HTTP ${status}.`,
    ...(typeof code === "string" && code !== "" ? { code } : {}),
  };
}

/** A non-2xx Gemini body as an OpenAI error; Gemini wraps errors in an array on some paths. */
export function geminiErrorBody(status: number, body: Buffer): Buffer {
  try {
    let parsed: unknown = JSON.parse(body.toString("utf8"));
    if (Array.isArray(parsed)) parsed = parsed[0];
    const e = field(parsed, "error");
    if (isRecord(e)) return clientErrorBody("openai", errorFacts(e, status));
  } catch {
    // Not JSON: the fallback below.
  }
  return clientErrorBody("openai", { status, message: fallbackMessage(status, body) });
}

function invalidJson(): Buffer {
  return renderError(new GatewayError("upstream_response_invalid"), "openai").body;
}

function completion(r: JsonObject, meta: TranslationMeta): JsonObject {
  const idBase = callIdBase(r);
  const candidates = Array.isArray(r["candidates"]) ? r["candidates"] : [];
  const choices = candidates.map((c, pos) => {
    const piece = readCandidate(c, pos, idBase, 0);
    const message: JsonObject = { role: "assistant", content: piece.text === "" && piece.calls.length > 0 ? null : piece.text, refusal: null };
    if (piece.calls.length > 0) message["tool_calls"] = piece.calls;
    return { index: piece.index, message, logprobs: piece.logprobs, finish_reason: finishReason(piece.finish ?? "STOP", piece.calls.length > 0) };
  });
  if (choices.length === 0) {
    // No candidates: the prompt was blocked (promptFeedback says why) or nothing was generated.
    choices.push({ index: 0, message: { role: "assistant", content: "", refusal: null }, logprobs: null, finish_reason: blocked(r) ? "content_filter" : "stop" });
  }
  const out: JsonObject = { id: completionId(r, meta), object: "chat.completion", created: meta.created, model: modelOf(r, meta), choices };
  if (isRecord(r["usageMetadata"])) out["usage"] = openAiUsage(r["usageMetadata"]);
  return out;
}

interface ChoiceState {
  started: boolean;
  calls: number;
  finished: boolean;
}

class GeminiStream implements SseSink {
  private readonly framer = new SseFramer(this, MAX_EVENT_BYTES);
  private out: string[] = [];
  /** Everything of a chunk before its choices: id, created and model are fixed by the first event. */
  private head: string | undefined;
  private tail = "]}";
  private idBase = "call_";
  private readonly choices = new Map<number, ChoiceState>();
  private promptBlocked = false;
  private usage: JsonObject | undefined;
  /** An error or unreadable event ended the stream; nothing more is translated. */
  private stopped = false;
  private ended = false;

  constructor(private readonly meta: TranslationMeta) {}

  wantsData(): boolean {
    return !this.stopped;
  }

  chunk(chunk: Buffer, end: boolean): Buffer {
    if (this.ended) return EMPTY;
    try {
      this.framer.feed(chunk, end);
    } catch {
      this.fail();
    }
    if (end) {
      this.ended = true;
      if (!this.stopped && this.complete()) {
        if (this.meta.includeUsage && this.usage !== undefined) this.out.push(`data: ${this.head!}],"usage":${JSON.stringify(openAiUsage(this.usage))}}\n\n`);
        this.out.push(DONE);
      }
    }
    const out = this.out;
    if (out.length === 0) return EMPTY;
    this.out = [];
    return Buffer.from(out.length === 1 ? out[0]! : out.join(""), "utf8");
  }

  private complete(): boolean {
    if (this.promptBlocked) return true;
    if (this.choices.size === 0) return false;
    for (const c of this.choices.values()) if (!c.finished) return false;
    return true;
  }

  private fail(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.out.push(renderStreamError(new GatewayError("upstream_response_invalid"), "chat.completions").toString("utf8"));
  }

  onEvent(_type: string, data: string | undefined): void {
    if (this.stopped) return;
    let r: unknown;
    try {
      r = data === undefined ? undefined : JSON.parse(data);
    } catch {
      r = undefined;
    }
    if (!isRecord(r)) return this.fail();
    if (isRecord(r["error"])) {
      const code = r["error"]["code"];
      this.out.push(`data: ${clientErrorBody("openai", errorFacts(r["error"], typeof code === "number" ? code : 500)).toString("utf8")}\n\n`);
      this.stopped = true;
      return;
    }
    if (this.head === undefined) {
      this.head = `{"id":${JSON.stringify(completionId(r, this.meta))},"object":"chat.completion.chunk","created":${this.meta.created},"model":${JSON.stringify(modelOf(r, this.meta))},"choices":[`;
      this.tail = this.meta.includeUsage ? '],"usage":null}' : "]}";
      this.idBase = callIdBase(r);
    }
    if (isRecord(r["usageMetadata"])) this.usage = r["usageMetadata"];
    const candidates = r["candidates"];
    if (!Array.isArray(candidates) || candidates.length === 0) {
      if (blocked(r) && !this.promptBlocked) {
        this.promptBlocked = true;
        this.emit(0, '{"role":"assistant","content":""}', "null", "null");
        this.emit(0, "{}", "null", '"content_filter"');
      }
      return;
    }
    for (let pos = 0; pos < candidates.length; pos++) this.candidate(candidates[pos], pos);
  }

  private candidate(c: unknown, pos: number): void {
    const index = candidateIndex(c, pos);
    let state = this.choices.get(index);
    if (state === undefined) this.choices.set(index, (state = { started: false, calls: 0, finished: false }));
    if (state.finished) return;
    const piece = readCandidate(c, pos, this.idBase, state.calls);
    const hasText = piece.text !== "";
    const hasCalls = piece.calls.length > 0;
    if (!state.started || hasText || hasCalls || piece.logprobs !== null) {
      // The first chunk says content "" like OpenAI's, or null when it opens with a tool call.
      let delta = state.started ? "{" : `{"role":"assistant",`;
      if (hasText) delta += `"content":${JSON.stringify(piece.text)},`;
      else if (!state.started) delta += hasCalls ? `"content":null,` : `"content":"",`;
      if (hasCalls) {
        delta += `"tool_calls":${JSON.stringify(piece.calls.map((call, i) => ({ index: state.calls + i, ...call })))},`;
        state.calls += piece.calls.length;
      }
      delta = delta.length === 1 ? "{}" : `${delta.slice(0, -1)}}`;
      state.started = true;
      this.emit(index, delta, piece.logprobs === null ? "null" : JSON.stringify(piece.logprobs), "null");
    }
    if (piece.finish !== undefined) {
      state.finished = true;
      this.emit(index, "{}", "null", JSON.stringify(finishReason(piece.finish, state.calls > 0)));
    }
  }

  private emit(index: number, delta: string, logprobs: string, finish: string): void {
    this.out.push(`data: ${this.head!}{"index":${index},"delta":${delta},"logprobs":${logprobs},"finish_reason":${finish}}${this.tail}\n\n`);
  }
}

/** The response translator of one attempt of an OpenAI chat request sent to Gemini. */
export function geminiChatResponse(meta: TranslationMeta, _stream: boolean): ResponseTranslator {
  let frames: GeminiStream | undefined;
  return {
    status: (providerStatus) => providerStatus,
    contentType: (s) => (s ? "text/event-stream; charset=utf-8" : "application/json"),
    streamChunk: (chunk, end) => (frames ??= new GeminiStream(meta)).chunk(chunk, end),
    json(body) {
      try {
        const r: unknown = JSON.parse(body.toString("utf8"));
        if (!isRecord(r)) return invalidJson();
        if (isRecord(r["error"])) return clientErrorBody("openai", errorFacts(r["error"], 500));
        return Buffer.from(JSON.stringify(completion(r, meta)));
      } catch {
        return invalidJson();
      }
    },
    error: (providerStatus, body) => geminiErrorBody(providerStatus, body),
  };
}
