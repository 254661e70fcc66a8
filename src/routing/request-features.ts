// What the router phase learns from an already-parsed LLM request body, once per request, for the
// routing strategies and target eligibility (see strategy-types.ts). This runs on the hot path, so:
// - it never throws on any JSON a client can send: a field of the wrong type is ignored (validating
//   the request is the provider's job, and it answers in its own words);
// - its work is bounded on huge bodies: at most ESTIMATES.exactBudget characters are tokenized, the
//   rest is extrapolated from byte counts; `text` keeps at most TEXT_CAP characters.
// Request shapes: https://platform.openai.com/docs/api-reference (chat, completions, embeddings,
// responses) and https://docs.anthropic.com/en/api/messages.
import type { Operation } from "../api/operations";
import type { JsonObject } from "../api/request-body";
import type { Capability } from "../policy/schema";
import type { RequestFeatures } from "./strategy-types";

/**
 * The numbers behind the estimates (the README's "Token estimates" section quotes them).
 * - exactBudget: characters (UTF-16 units, plus segmentCharge per string) tokenized per request.
 *   gpt-tokenizer runs at ~8-25 MB/s on real text (its Unicode pre-split regex alone is ~50 ns/char)
 *   and at ~1.5 us per token on random text, so tokenizing 256 KiB would block the event loop
 *   ~25 ms on real text (seconds, for crafted input). 16 Ki units cost 0.7-2.6 ms on real text
 *   and at most ~50 ms on random junk (base64, random CJK). Up to the budget the count is exact.
 * - sampleWindows: beyond the budget, this many equal windows (256 units each) spread over all the
 *   prompt text are tokenized, their ends moved to whitespace so no word is split, and the total
 *   bytes are converted at the bytes-per-token ratio they show. Measured: within ±3% on 40 KB-5 MB
 *   documents (prose, markdown, code), up to ±7% on thousands of random slices of mixed corpora. A
 *   prefix would be biased by the system prompt.
 * - segmentCharge: each tokenized string is also charged this many units, so a body of many tiny
 *   strings cannot turn the budget into thousands of tokenizer calls.
 * - maxRunBytes: BPE cost grows quadratically with the length of one pre-split piece ("aaaa..."
 *   of 32 K chars takes ~0.7 s), so runs of whitespace or non-whitespace longer than ~64 UTF-8
 *   bytes are cut and tokenized separately. Each cut adds at most about one token (the safe side);
 *   on real text the cuts cost +0.2% (markdown with URLs) or nothing (prose).
 * - approxBytesPerToken: models without a known tokenizer (Claude, Llama, Gemini, Mistral...)
 *   are estimated at ceil(UTF-8 bytes / 3). English prose runs ~3.5-4.5 bytes per token on these
 *   tokenizers, code ~3-3.5, CJK ~3 (3 bytes per character, about a token each); Claude's
 *   tokenizer needs noticeably more tokens than o200k for the same text. 3 overestimates prose by
 *   roughly 15-30% and is about right for code and CJK: the estimate guards context windows, where
 *   overestimating (skipping a target that would have fit) beats sending a request that fails.
 * - messageOverhead / replyPriming: OpenAI's chat format wraps each message in ~3 tokens plus the
 *   role (1 token) and primes the reply with 3 (OpenAI cookbook, "How to count tokens with
 *   tiktoken"). Used for every message-based API; a message `name` adds its tokens + 1.
 * - image tokens: OpenAI bills images by 512 px tiles (85 base + 170 per tile); a fixed 765 is a
 *   1024x1024 high-detail image, 85 is "detail": "low". Anthropic charges ~width*height/750 tokens
 *   for images up to ~1.15 megapixels, so 1600 is its ceiling. Image bytes are never tokenized.
 * Not counted: audio and file/PDF parts (no cheap estimate; the provider decides), server-side
 * history (`previous_response_id`).
 */
export const ESTIMATES = {
  exactBudget: 16 * 1024,
  sampleWindows: 64,
  segmentCharge: 32,
  maxRunBytes: 64,
  approxBytesPerToken: 3,
  messageOverhead: 4,
  replyPriming: 3,
  imageTokens: 765,
  lowDetailImageTokens: 85,
  anthropicImageTokens: 1600,
} as const;

/** Lowercased user text kept for keyword rules (the newest characters). */
export const TEXT_CAP = 16 * 1024;
/** End-user ids longer than this are truncated (they become hash keys and log fields). */
const USER_CAP = 256;
/** Content nesting followed (Anthropic tool_result -> content -> blocks needs 2). */
const MAX_DEPTH = 3;

export type TokenEncoding = "o200k_base" | "cl100k_base";

// Prefix table, checked in order (cl100k first: "gpt-4-turbo" is cl100k, "gpt-4o" and "gpt-4.1"
// are o200k). Matches tiktoken's model table for the families the router is likely to see:
//   cl100k_base: gpt-4, gpt-4-*, gpt-3.5*, gpt-35* (Azure names), text-embedding-ada-*,
//                text-embedding-3-*
//   o200k_base:  every other gpt-* (gpt-4o, gpt-4.1, gpt-4.5, gpt-5*, gpt-oss...), o1/o3/o4...,
//                chatgpt-*, codex-*, other text-embedding-*, omni-moderation-*
const CL100K_MODELS = /^(?:gpt-4(?:-|$)|gpt-3\.5|gpt-35|text-embedding-ada|text-embedding-3-)/;
const O200K_MODELS = /^(?:gpt-|o\d|chatgpt-|codex-|text-embedding-|omni-moderation)/;

/** The tokenizer of an OpenAI-family model, or undefined (then the byte approximation is used). */
export function encodingForModel(model: string): TokenEncoding | undefined {
  let m = model.slice(0, 256).trim().toLowerCase();
  if (m.startsWith("ft:")) m = m.slice(3); // fine-tuned: ft:gpt-4o-mini-2024-07-18:org::id
  m = m.slice(m.lastIndexOf("/") + 1); // "openai/gpt-4o" as some gateways and vLLM name them
  if (CL100K_MODELS.test(m)) return "cl100k_base";
  if (O200K_MODELS.test(m)) return "o200k_base";
  return undefined;
}

type CountTokens = (text: string) => number;
type Tokenizer = Pick<typeof import("gpt-tokenizer/encoding/o200k_base"), "countTokens">;

// Client text is data: strings such as "<|endoftext|>" are counted as the plain text the provider
// sees (gpt-tokenizer's default throws on them). One constant object: the library re-derives its
// special-token config per call from the options it is given.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };
const counters = new Map<TokenEncoding, CountTokens>();

/**
 * Each BPE table costs ~150 ms and 40-70 MB of RSS to load, so tables load on first use (a
 * deployment without OpenAI models never pays). Call this at startup to keep that first load off
 * a request.
 */
export function preloadTokenizers(): void {
  counterFor("o200k_base");
  counterFor("cl100k_base");
}

function counterFor(encoding: TokenEncoding): CountTokens {
  let count = counters.get(encoding);
  if (count === undefined) {
    const tokenizer = loadTokenizer(encoding);
    count = (text) => tokenizer.countTokens(text, PLAIN_TEXT);
    counters.set(encoding, count);
  }
  return count;
}

function loadTokenizer(encoding: TokenEncoding): Tokenizer {
  // require (not import) so the table loads lazily; literal paths so tools can still see them.
  /* eslint-disable @typescript-eslint/no-require-imports */
  return encoding === "o200k_base" ? require("gpt-tokenizer/encoding/o200k_base") : require("gpt-tokenizer/encoding/cl100k_base");
  /* eslint-enable @typescript-eslint/no-require-imports */
}

/**
 * The features of one request. `model` picks the tokenizer: the model the request will be sent as
 * (a route's first target), or the client's `model` when that is all there is.
 */
export function requestFeatures(operation: Operation, body: JsonObject, model: string): RequestFeatures {
  const encoding = encodingForModel(model);
  const c = new Collector(encoding === undefined ? undefined : counterFor(encoding));
  let messageCount = 0;
  let maxOutputTokens: number | undefined;
  switch (operation) {
    case "chat.completions":
      messageCount = chatMessages(c, body.messages);
      toolDefinitions(c, body);
      responseFormat(c, obj(body.response_format));
      maxOutputTokens = positiveInt(body.max_completion_tokens) ?? positiveInt(body.max_tokens);
      break;
    case "completions":
      messageCount = promptInput(c, body.prompt);
      c.text(str(body.suffix), false);
      maxOutputTokens = positiveInt(body.max_tokens);
      break;
    case "embeddings":
      messageCount = promptInput(c, body.input);
      c.required.add("embeddings");
      break;
    case "responses":
      messageCount = responsesInput(c, body);
      toolDefinitions(c, body);
      responseFormat(c, obj(obj(body.text)?.format));
      maxOutputTokens = positiveInt(body.max_output_tokens);
      break;
    case "messages":
      messageCount = anthropicMessages(c, body);
      toolDefinitions(c, body);
      maxOutputTokens = positiveInt(body.max_tokens);
      break;
  }
  const stream = body.stream === true;
  if (stream) c.required.add("streaming");
  const user = operation === "messages" ? str(obj(body.metadata)?.user_id) : str(body.user);
  return {
    promptTokens: c.tally.total(),
    maxOutputTokens,
    required: c.required,
    messageCount,
    text: c.userText.value(),
    user: user === undefined || user === "" ? undefined : user.slice(0, USER_CAP),
    stream,
  };
}

// ---- Per-API walkers -------------------------------------------------------------------------

/** Chat Completions `messages`. */
function chatMessages(c: Collector, value: unknown): number {
  const messages = arr(value);
  if (messages === undefined) return 0;
  for (const m of messages) {
    c.tally.tokens(ESTIMATES.messageOverhead);
    const msg = obj(m);
    if (msg === undefined) continue;
    if (msg.role === "tool" || msg.role === "function") c.required.add("tools");
    c.content(msg.content, msg.role === "user", 0);
    const name = str(msg.name);
    if (name !== undefined) {
      c.text(name, false);
      c.tally.tokens(1);
    }
    const calls = arr(msg.tool_calls);
    if (calls !== undefined && calls.length > 0) {
      c.required.add("tools");
      for (const call of calls) {
        const o = obj(call);
        c.functionCall(obj(o?.function) ?? obj(o?.custom));
      }
    }
    if (msg.function_call !== undefined && msg.function_call !== null) {
      c.required.add("tools");
      c.functionCall(obj(msg.function_call));
    }
  }
  c.tally.tokens(ESTIMATES.replyPriming);
  return messages.length;
}

/** Responses `instructions` + `input` (a string or a list of items). */
function responsesInput(c: Collector, body: JsonObject): number {
  const instructions = str(body.instructions);
  if (instructions !== undefined) {
    c.tally.tokens(ESTIMATES.messageOverhead);
    c.text(instructions, false);
  }
  if (typeof body.input === "string") {
    c.tally.tokens(ESTIMATES.messageOverhead + ESTIMATES.replyPriming);
    c.text(body.input, true);
    return 1;
  }
  const items = arr(body.input);
  if (items === undefined) return 0;
  for (const it of items) {
    c.tally.tokens(ESTIMATES.messageOverhead);
    const item = obj(it);
    if (item === undefined) continue;
    switch (item.type) {
      case undefined:
      case "message":
        c.content(item.content, item.role === "user", 0);
        break;
      case "function_call":
      case "custom_tool_call":
        c.required.add("tools");
        c.functionCall(item);
        break;
      case "function_call_output":
      case "custom_tool_call_output":
        c.required.add("tools");
        c.content(item.output, false, 0);
        break;
      case "reasoning":
        c.content(item.summary, false, 0);
        break;
    }
  }
  c.tally.tokens(ESTIMATES.replyPriming);
  return items.length;
}

/** Anthropic Messages `system` + `messages`. */
function anthropicMessages(c: Collector, body: JsonObject): number {
  if (body.system !== undefined && body.system !== null) {
    c.tally.tokens(ESTIMATES.messageOverhead);
    c.content(body.system, false, 0);
  }
  const messages = arr(body.messages);
  if (messages === undefined) return 0;
  for (const m of messages) {
    c.tally.tokens(ESTIMATES.messageOverhead);
    const msg = obj(m);
    if (msg !== undefined) c.content(msg.content, msg.role === "user", 0);
  }
  return messages.length;
}

/** Completions `prompt` / Embeddings `input`: a string, strings, a token array or token arrays. */
function promptInput(c: Collector, value: unknown): number {
  if (typeof value === "string") {
    c.text(value, true);
    return 1;
  }
  const list = arr(value);
  if (list === undefined) return 0;
  let inputs = 0;
  let looseTokens = 0;
  for (const el of list) {
    if (typeof el === "string") {
      c.text(el, true);
      inputs++;
    } else if (typeof el === "number") {
      looseTokens++;
    } else {
      const tokens = arr(el);
      if (tokens !== undefined) {
        c.tally.tokens(tokens.length); // already tokens: exact for any model
        inputs++;
      }
    }
  }
  if (looseTokens > 0) {
    c.tally.tokens(looseTokens);
    inputs++;
  }
  return inputs;
}

/** `tools` / `functions` definitions count as prompt text (as JSON: a slight overestimate). */
function toolDefinitions(c: Collector, body: JsonObject): void {
  for (const key of ["tools", "functions"]) {
    const defs = arr(body[key]);
    if (defs !== undefined && defs.length > 0) {
      c.required.add("tools");
      c.json(defs);
    }
  }
  // A tool_choice (or legacy function_call) other than "none" only makes sense with tools.
  for (const choice of [body.tool_choice, body.function_call]) {
    if (choice === undefined || choice === null || choice === "none" || obj(choice)?.type === "none") continue;
    c.required.add("tools");
  }
}

/** OpenAI JSON mode / structured outputs; a JSON schema is sent to the model, so it counts. */
function responseFormat(c: Collector, format: JsonObject | undefined): void {
  if (format?.type === "json_object") c.required.add("json");
  if (format?.type === "json_schema") {
    c.required.add("json");
    c.json(format);
  }
}

// ---- Collection --------------------------------------------------------------------------------

class Collector {
  readonly tally: PromptTally;
  readonly required = new Set<Capability>();
  readonly userText = new TailText(TEXT_CAP);

  constructor(count: CountTokens | undefined) {
    this.tally = new PromptTally(count);
  }

  text(s: string | undefined, fromUser: boolean): void {
    if (s === undefined || s === "") return;
    this.tally.text(s);
    if (fromUser) this.userText.push(s);
  }

  json(value: unknown): void {
    let s: string | undefined;
    try {
      s = JSON.stringify(value);
    } catch {
      // Only nesting deeper than the stack gets here; the provider will reject such a body.
      return;
    }
    this.text(s, false);
  }

  /** An OpenAI function/custom tool call: its name and arguments (or input) are prompt text. */
  functionCall(call: JsonObject | undefined): void {
    if (call === undefined) return;
    this.text(str(call.name), false);
    this.text(str(call.arguments) ?? str(call.input), false);
  }

  /** Message content: a string, or parts / blocks (OpenAI chat, Responses, Anthropic). */
  content(value: unknown, fromUser: boolean, depth: number): void {
    if (typeof value === "string") {
      this.text(value, fromUser);
      return;
    }
    const parts = arr(value);
    if (parts === undefined || depth > MAX_DEPTH) return;
    for (const p of parts) {
      const part = obj(p);
      if (part === undefined) continue;
      switch (part.type) {
        case "text": // OpenAI chat, Anthropic
        case "input_text": // Responses
        case "output_text":
        case "summary_text":
          this.text(str(part.text), fromUser);
          break;
        case "refusal":
          this.text(str(part.refusal), false);
          break;
        case "image_url": // OpenAI chat
          this.image(obj(part.image_url)?.detail);
          break;
        case "input_image": // Responses
          this.image(part.detail);
          break;
        case "image": // Anthropic
          this.required.add("vision");
          this.tally.tokens(ESTIMATES.anthropicImageTokens);
          break;
        case "tool_use": // Anthropic
        case "server_tool_use":
          this.required.add("tools");
          this.text(str(part.name), false);
          this.json(part.input);
          break;
        case "tool_result":
          this.required.add("tools");
          this.content(part.content, false, depth + 1);
          break;
        case "thinking": // earlier assistant turns sent back with extended thinking
          this.text(str(part.thinking), false);
          break;
        case "document": {
          // Plain-text and custom-content documents are text; base64 PDFs are not counted.
          const source = obj(part.source);
          if (source?.type === "text") this.text(str(source.data), false);
          else if (source?.type === "content") this.content(source.content, false, depth + 1);
          break;
        }
        case "search_result":
          this.content(part.content, false, depth + 1);
          break;
      }
    }
  }

  private image(detail: unknown): void {
    this.required.add("vision");
    this.tally.tokens(detail === "low" ? ESTIMATES.lowDetailImageTokens : ESTIMATES.imageTokens);
  }
}

/**
 * Sums prompt tokens. With a tokenizer, text up to ESTIMATES.exactBudget is tokenized exactly,
 * string by string (OpenAI encodes each message separately). Beyond that, ESTIMATES.sampleWindows
 * windows spread evenly over all the text are tokenized and the total UTF-8 byte count is converted
 * at the bytes-per-token ratio measured on them: spread windows, unlike a prefix, do not mistake a
 * prose system prompt for the code that follows it. Without a tokenizer every byte goes through
 * the documented approximation.
 */
class PromptTally {
  private fixed = 0;
  private bytes = 0;
  /** Text strings kept by reference (only with a tokenizer), their length and tokenizing cost. */
  private readonly segments: string[] = [];
  private units = 0;
  private cost = 0;

  constructor(private readonly count: CountTokens | undefined) {}

  tokens(n: number): void {
    this.fixed += n;
  }

  text(s: string): void {
    this.bytes += Buffer.byteLength(s, "utf8");
    if (this.count === undefined) return;
    this.segments.push(s);
    this.units += s.length;
    this.cost += s.length + ESTIMATES.segmentCharge;
  }

  total(): number {
    const count = this.count;
    if (count !== undefined) {
      try {
        return this.fixed + this.counted(count);
      } catch {
        // gpt-tokenizer has no known throw for plain text; if it ever does, estimate, never fail.
      }
    }
    return this.fixed + Math.ceil(this.bytes / ESTIMATES.approxBytesPerToken);
  }

  private counted(count: CountTokens): number {
    if (this.cost <= ESTIMATES.exactBudget) {
      let tokens = 0;
      for (const s of this.segments) tokens += countInRuns(count, s);
      return tokens;
    }
    const sample = this.sample(count);
    const bytesPerToken = sample.tokens > 0 ? sample.bytes / sample.tokens : ESTIMATES.approxBytesPerToken;
    return Math.ceil(this.bytes / bytesPerToken);
  }

  /**
   * Tokenizes the windows (positions over all segments, in UTF-16 units). A window's pieces from
   * different strings are joined with a space, which tokenizes about like separate strings
   * (the space joins the next word's token); only the pieces' own bytes are counted.
   */
  private sample(count: CountTokens): { tokens: number; bytes: number } {
    const windows = ESTIMATES.sampleWindows;
    const stride = this.units / windows;
    // Many tiny strings can exceed the budget with few units: then the windows tile all the text.
    const width = Math.max(1, Math.min(Math.floor(ESTIMATES.exactBudget / windows), Math.floor(stride)));
    const startOf = (w: number): number => Math.floor(w * stride + (stride - width) / 2);
    let tokens = 0;
    let bytes = 0;
    let w = 0;
    let start = startOf(0);
    let pieces: string[] = [];
    let offset = 0;
    for (const s of this.segments) {
      const end = offset + s.length;
      while (w < windows && start + width > offset && start < end) {
        const piece = windowPiece(s, Math.max(start - offset, 0), Math.min(start + width - offset, s.length));
        pieces.push(piece);
        bytes += Buffer.byteLength(piece, "utf8");
        if (start + width > end) break; // the window continues in the next string
        tokens += countInRuns(count, pieces.join(" "));
        pieces = [];
        start = startOf(++w);
      }
      offset = end;
    }
    if (pieces.length > 0) tokens += countInRuns(count, pieces.join(" "));
    return { tokens, bytes };
  }
}

/**
 * s[from, to), with ends cut inside the string moved to whitespace so that no word is split: a
 * split word costs extra tokens, a bias that many small windows would add up. A piece then
 * starts with the space that the tokenizer joins to the following word, as in the full text.
 */
function windowPiece(s: string, from: number, to: number): string {
  let a = from;
  let b = to;
  if (a > 0) {
    while (a < b && !isSpace(s.charCodeAt(a))) a++;
    if (a === b) a = cutBefore(s, from); // no whitespace (CJK, base64): cut anyway
  }
  if (b < s.length) {
    let e = b;
    while (e > a && !isSpace(s.charCodeAt(e))) e--;
    b = e > a ? e : cutBefore(s, to);
  }
  return s.slice(a, b);
}

/** Counts tokens, cutting same-class runs longer than maxRunBytes (see ESTIMATES). */
function countInRuns(count: CountTokens, s: string): number {
  const max = ESTIMATES.maxRunBytes;
  if (s.length <= max / 3) return count(s);
  let total = 0;
  let chunkStart = 0;
  let runBytes = 0;
  let runIsSpace = isSpace(s.charCodeAt(0));
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    const space = isSpace(code);
    if (space !== runIsSpace) {
      runIsSpace = space;
      runBytes = 0;
    } else if (runBytes >= max && !isLowSurrogate(code)) {
      total += count(s.slice(chunkStart, i));
      chunkStart = i;
      runBytes = 0;
    }
    // UTF-8 length, roughly: BPE works on bytes, and CJK takes 3 per character.
    runBytes += code < 0x80 ? 1 : 3;
  }
  return total + count(s.slice(chunkStart));
}

/** Keeps the newest `cap` characters of the user's text, in order, without holding the rest. */
class TailText {
  private parts: string[] = [];
  private head = 0;
  private size = 0;

  constructor(private readonly cap: number) {}

  push(s: string): void {
    if (s.length >= this.cap) {
      this.parts = [tail(s, this.cap)];
      this.head = 0;
      this.size = this.parts[0]?.length ?? 0;
      return;
    }
    this.parts.push(s);
    this.size += s.length + 1;
    // Drop the oldest pieces once the newer ones alone fill the cap.
    for (let oldest = this.parts[this.head]; oldest !== undefined && this.size - oldest.length - 1 >= this.cap; oldest = this.parts[this.head]) {
      this.size -= oldest.length + 1;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.parts.length) {
      this.parts = this.parts.slice(this.head);
      this.head = 0;
    }
  }

  value(): string {
    if (this.parts.length === this.head) return "";
    return tail(this.parts.slice(this.head).join("\n").toLowerCase(), this.cap);
  }
}

// ---- Small helpers -----------------------------------------------------------------------------

function obj(v: unknown): JsonObject | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

function arr(v: unknown): readonly unknown[] | undefined {
  return Array.isArray(v) ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === "number" && Number.isSafeInteger(v) && v > 0 ? v : undefined;
}

function isSpace(code: number): boolean {
  return code === 32 || (code >= 9 && code <= 13) || code === 0xa0 || code === 0x3000;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** An index <= n that does not split a surrogate pair. */
function cutBefore(s: string, n: number): number {
  return n > 0 && n < s.length && isLowSurrogate(s.charCodeAt(n)) ? n - 1 : n;
}

/** The last `n` characters of `s`, not starting inside a surrogate pair. */
function tail(s: string, n: number): string {
  if (s.length <= n) return s;
  const start = s.length - n;
  return s.slice(isLowSurrogate(s.charCodeAt(start)) ? start + 1 : start);
}
