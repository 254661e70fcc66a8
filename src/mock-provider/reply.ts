// Deterministic reply text and token counts, so tests can assert exact numbers.
//
// - Reply text: "mock reply to <first 8 words of the last user message>". With `streamChunks` set,
//   the reply has exactly that many words (truncated, or padded with "lorem ipsum dolor sit amet").
// - A `max_tokens`-style limit from the request caps the number of words (finish reason "length").
// - Input tokens: ceil(request body characters / 4). Output tokens: number of words; a stream emits
//   one content chunk per word, so output tokens also equal the number of content chunks.

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

export function buildReply(options: ReplyOptions): MockReply {
  const snippet = options.prompt.split(/\s+/).filter((w) => w.length > 0).slice(0, SNIPPET_WORDS);
  let words = ["mock", "reply", "to", ...snippet];
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
