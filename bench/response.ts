// What the provider answers, as Envoy passes it to the router phase: an OpenAI chat completion as
// one JSON body, or as a server-sent-event stream cut one event per body chunk (what Envoy relays
// when OpenAI flushes each token). Shapes follow
// https://platform.openai.com/docs/api-reference/chat/object and .../chat-streaming.

/** An upstream answer: its content-type and the body chunks Envoy would send, in order. */
export interface Answer {
  contentType: "application/json" | "text/event-stream";
  chunks: Buffer[];
}

const ID = "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG";
const CREATED = 1741570283;
const MODEL = "gpt-4o-2024-08-06";
const FINGERPRINT = "fp_f9f4fb6dbf";
const TEXT =
  "Retries belong in the gateway, not in every client: the gateway sees every provider's failures, so it can back off, fall back to the next target and keep the client's request alive.";

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
  return { contentType: "application/json", chunks: [Buffer.from(JSON.stringify(body))] };
}

/**
 * A stream of `dataChunks` chat.completion.chunk events (the first carries the role, the last the
 * finish_reason, the others one word each), then the usage-only chunk that include_usage asks for,
 * then `data: [DONE]`: dataChunks + 2 body chunks, one event each.
 */
export function sseAnswer(dataChunks: number, promptTokens = 250): Answer {
  const words = TEXT.split(" ");
  const event = (choices: object[], u: object | null) =>
    Buffer.from(`data: ${JSON.stringify({ id: ID, object: "chat.completion.chunk", created: CREATED, model: MODEL, service_tier: "default", system_fingerprint: FINGERPRINT, choices, usage: u })}\n\n`);
  const choice = (delta: object, finish: string | null) => ({ index: 0, delta, logprobs: null, finish_reason: finish });
  const chunks: Buffer[] = [event([choice({ role: "assistant", content: "", refusal: null }, null)], null)];
  for (let i = 1; i < dataChunks - 1; i++) chunks.push(event([choice({ content: `${i === 1 ? "" : " "}${words[(i - 1) % words.length]}` }, null)], null));
  chunks.push(event([choice({}, "stop")], null));
  chunks.push(event([], usage(promptTokens, dataChunks - 2)));
  chunks.push(Buffer.from("data: [DONE]\n\n"));
  return { contentType: "text/event-stream", chunks };
}
