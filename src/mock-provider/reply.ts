// Deterministic reply text and token counts, so tests can assert exact numbers.
//
// - Reply text: "mock reply to <first 8 words of the last user message>". With `streamChunks` set,
//   the reply has exactly that many words (truncated, or padded with "lorem ipsum dolor sit amet").
// - A `max_tokens`-style limit from the request caps the number of words (finish reason "length").
// - Input tokens: ceil(request body characters / 4). Output tokens: number of words; a stream emits
//   one content chunk per word, so output tokens also equal the number of content chunks.
import { createHash } from "node:crypto";

const SNIPPET_WORDS = 8;
const PADDING = ["lorem", "ipsum", "dolor", "sit", "amet"];

export interface MockReply {
  /** The reply, one entry per word; chunk i of a stream is `pieces[i]`. */
  readonly pieces: readonly string[];
  readonly text: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** True when a max-tokens limit cut the reply short. */
  readonly truncated: boolean;
}

export interface ReplyOptions {
  /** Body characters (UTF-8 decoded length) of the request. */
  readonly bodyChars: number;
  /** Text the reply quotes (the last user message). */
  readonly prompt: string;
  readonly streamChunks?: number | undefined;
  readonly maxTokens?: number | undefined;
}

export function inputTokensFor(bodyChars: number): number {
  return Math.ceil(bodyChars / 4);
}

/** The first words of a prompt: what a reply quotes, and the `query` of every mock tool call. */
export function promptSnippet(prompt: string): string[] {
  return prompt.split(/\s+/).filter((w) => w.length > 0).slice(0, SNIPPET_WORDS);
}

/** The arguments every mock tool call makes: {"query": <first words of the last user text>}. */
export function toolQuery(prompt: string): { query: string } {
  return { query: promptSnippet(prompt).join(" ") };
}

/**
 * A tool call's JSON arguments in three pieces (fewer when too short to cut), as providers stream
 * them; a cut never splits a UTF-16 surrogate pair.
 */
export function jsonPieces(json: string): string[] {
  const lowSurrogate = (at: number): boolean => {
    const c = json.charCodeAt(at);
    return c >= 0xdc00 && c <= 0xdfff;
  };
  const cut = (at: number): number => (at > 0 && lowSurrogate(at) ? at + 1 : at);
  const a = cut(Math.floor(json.length / 3));
  const b = Math.max(a, cut(Math.floor((2 * json.length) / 3)));
  return [json.slice(0, a), json.slice(a, b), json.slice(b)].filter((p) => p !== "");
}

/** A deterministic embedding of `text`: values in [-1, 1] from its SHA-256. */
export function mockVector(text: string, dimensions: number): number[] {
  const digest = createHash("sha256").update(text).digest();
  const out: number[] = [];
  for (let i = 0; i < dimensions; i++) {
    const byte = digest[i % digest.length] ?? 0;
    out.push(Math.round((((byte + i) % 256) / 127.5 - 1) * 1e6) / 1e6);
  }
  return out;
}

export function buildReply(options: ReplyOptions): MockReply {
  let words = ["mock", "reply", "to", ...promptSnippet(options.prompt)];
  if (options.streamChunks !== undefined && options.streamChunks > 0) {
    const target = options.streamChunks;
    const padded = [...words];
    for (let i = 0; padded.length < target; i++) padded.push(PADDING[i % PADDING.length] ?? "lorem");
    words = padded.slice(0, target);
  }
  let truncated = false;
  if (options.maxTokens !== undefined && options.maxTokens >= 0 && words.length > options.maxTokens) {
    words = words.slice(0, options.maxTokens);
    truncated = true;
  }
  const pieces = words.map((w, i) => (i === 0 ? w : ` ${w}`));
  return {
    pieces,
    text: pieces.join(""),
    inputTokens: inputTokensFor(options.bodyChars),
    outputTokens: words.length,
    truncated,
  };
}

/** Text of a message `content` in either provider's shape: a string or an array of text parts. */
export function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  const texts: string[] = [];
  for (const part of content) {
    if (typeof part === "string") texts.push(part);
    else if (isRecord(part) && typeof part["text"] === "string") texts.push(part["text"]);
  }
  return texts.join(" ");
}

/** Text of the last message with role "user" in a messages/input array. */
export function lastUserText(messages: unknown): string {
  if (typeof messages === "string") return messages;
  if (!Array.isArray(messages)) return "";
  for (let i = messages.length - 1; i >= 0; i--) {
    const m: unknown = messages[i];
    if (isRecord(m) && m["role"] === "user") return contentText(m["content"]);
  }
  return "";
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A positive integer field, or undefined. */
export function positiveInt(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : undefined;
}
