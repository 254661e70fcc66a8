// What the provider answers, as Envoy passes it to the router phase: an OpenAI chat completion as
// one JSON body, or as a server-sent-event stream cut one event per body chunk (what Envoy relays
// when OpenAI flushes each token). Shapes follow
// https://platform.openai.com/docs/api-reference/chat/object and .../chat-streaming.
// Also the same streamed answer from Anthropic's Messages API (what the upstream phase translates
// for an OpenAI client): https://docs.anthropic.com/en/docs/build-with-claude/streaming.

/** An upstream answer: its content-type, other response headers, and the body chunks Envoy would send, in order. */
export interface Answer {
  contentType: "application/json" | "text/event-stream" | "text/event-stream; charset=utf-8";
  /** The provider's other response headers (besides :status and content-type). */
  headers: Record<string, string>;
  chunks: Buffer[];
}

/** Response headers as OpenAI sends them (the ones the bench has always sent). */
const OPENAI_HEADERS: Record<string, string> = {
  "x-request-id": "req_0123456789abcdef",
  "openai-processing-ms": "412",
  "x-ratelimit-remaining-requests": "9999",
};

/** Response headers as Anthropic sends them (a few of them). */
const ANTHROPIC_HEADERS: Record<string, string> = {
  "request-id": "req_011CVbench0123456789abcd",
  "anthropic-ratelimit-requests-remaining": "3999",
  "cache-control": "no-cache",
};

const ID = "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG";
const CREATED = 1741570283;
const MODEL = "gpt-4o-2024-08-06";
const FINGERPRINT = "fp_f9f4fb6dbf";
const ANTHROPIC_ID = "msg_01XFDUDYJgAACzvnptvVoYEL";
const ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929";
const TEXT =
  "Retries belong in the gateway, not in every client: the gateway sees every provider's failures, so it can back off, fall back to the next target and keep the client's request alive.";

const WORDS = TEXT.split(" ");
/** The text of the i-th content delta (1-based): the answer's words in turn, space-separated. */
const word = (i: number): string => `${i === 1 ? "" : " "}${WORDS[(i - 1) % WORDS.length]}`;

function usage(promptTokens: number, completionTokens: number): object {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

/** A non-streaming chat completion with usage, in one chunk (~1 KiB). */
export function jsonAnswer(promptTokens = 250): Answer {
  const body = {
    id: ID,
    object: "chat.completion",
    created: CREATED,
    model: MODEL,
    choices: [{ index: 0, message: { role: "assistant", content: TEXT, refusal: null, annotations: [] }, logprobs: null, finish_reason: "stop" }],
    usage: usage(promptTokens, 38),
    service_tier: "default",
    system_fingerprint: FINGERPRINT,
  };
  return { contentType: "application/json", headers: OPENAI_HEADERS, chunks: [Buffer.from(JSON.stringify(body))] };
}

/**
 * A stream of `dataChunks` chat.completion.chunk events (the first carries the role, the last the
 * finish_reason, the others one word each), then the usage-only chunk that include_usage asks for,
 * then `data: [DONE]`: dataChunks + 2 body chunks, one event each.
 */
export function sseAnswer(dataChunks: number, promptTokens = 250): Answer {
  const event = (choices: object[], u: object | null) =>
    Buffer.from(`data: ${JSON.stringify({ id: ID, object: "chat.completion.chunk", created: CREATED, model: MODEL, service_tier: "default", system_fingerprint: FINGERPRINT, choices, usage: u })}\n\n`);
  const choice = (delta: object, finish: string | null) => ({ index: 0, delta, logprobs: null, finish_reason: finish });
  const chunks: Buffer[] = [event([choice({ role: "assistant", content: "", refusal: null }, null)], null)];
  for (let i = 1; i < dataChunks - 1; i++) chunks.push(event([choice({ content: word(i) }, null)], null));
  chunks.push(event([choice({}, "stop")], null));
  chunks.push(event([], usage(promptTokens, dataChunks - 2)));
  chunks.push(Buffer.from("data: [DONE]\n\n"));
  return { contentType: "text/event-stream", headers: OPENAI_HEADERS, chunks };
}

/** The text `sseAnswer(dataChunks)` and `anthropicSseAnswer(dataChunks)` stream, whole. */
export function streamedText(dataChunks: number): string {
  let text = "";
  for (let i = 1; i < dataChunks - 1; i++) text += word(i);
  return text;
}

/**
 * The same answer as `sseAnswer(dataChunks)` from Anthropic's Messages API, one event per body
 * chunk in the compact JSON Anthropic sends: message_start (with the input tokens), a text
 * content_block_start, ping, dataChunks - 2 text_delta events (the same words as the OpenAI
 * answer's content deltas), content_block_stop, message_delta (stop reason and output tokens),
 * message_stop: dataChunks + 4 body chunks. Translated for an OpenAI client, it gives the same
 * content as sseAnswer: the role chunk, the content deltas, the finish chunk, the usage chunk and
 * `data: [DONE]`.
 */
export function anthropicSseAnswer(dataChunks: number, promptTokens = 250): Answer {
  const event = (type: string, data: object) => Buffer.from(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  const chunks: Buffer[] = [
    event("message_start", {
      message: {
        id: ANTHROPIC_ID,
        type: "message",
        role: "assistant",
        model: ANTHROPIC_MODEL,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: promptTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1, service_tier: "standard" },
      },
    }),
    event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
    event("ping", {}),
  ];
  for (let i = 1; i < dataChunks - 1; i++) chunks.push(event("content_block_delta", { index: 0, delta: { type: "text_delta", text: word(i) } }));
  chunks.push(event("content_block_stop", { index: 0 }));
  chunks.push(event("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: dataChunks - 2 } }));
  chunks.push(event("message_stop", {}));
  return { contentType: "text/event-stream; charset=utf-8", headers: ANTHROPIC_HEADERS, chunks };
}
