// A translation turns one client API (OpenAI chat completions, Anthropic messages...) into a
// provider's native API for one attempt, and the provider's answer back into the client's API:
// whole JSON bodies, streams chunk by chunk, and error bodies. It runs in the upstream phase, so
// each attempt of a fallback chain is translated for the provider that receives it.
//
// Everything here is pure (no clock, no I/O) and, on the response side, never throws: a provider
// answer that cannot be read becomes an error in the client's format, never a crashed stream.
import type { Operation } from "../api/operations";
import type { JsonObject } from "../api/request-body";
import type { ProviderType } from "../policy/schema";

/** What the translation needs to know about the attempt's target. */
export interface TranslationTarget {
  /** The provider's model name (target.model). */
  model: string;
  /**
   * Output token limit to send when the client gave none and the provider requires one
   * (Anthropic's max_tokens): the target's maxOutputTokens, else a default.
   */
  defaultMaxTokens: number;
  /** Unix ms now (OpenAI's `created`); translations read no clock themselves. */
  nowMs: number;
  /**
   * The provider type that gets the attempt, where one API has dialects: OpenAI itself takes
   * max_completion_tokens (its reasoning models refuse max_tokens), other OpenAI-style servers
   * max_tokens. Absent: an OpenAI-compatible server.
   */
  provider?: ProviderType;
  /** false: the provider refuses `stream_options` (the policy's `streamUsage: false`). */
  streamUsage?: boolean;
}

export interface TranslatedRequest {
  /** The provider's request body, serialised. */
  body: Buffer;
  /** The client asked for a stream. */
  stream: boolean;
  /**
   * Client fields dropped because the provider has no equivalent and dropping them is harmless
   * (README "Translation" lists which); the upstream phase logs them as a warning.
   */
  dropped: string[];
  /** Facts the response side needs (e.g. whether to end an OpenAI stream with a usage chunk). */
  meta: TranslationMeta;
}

export interface TranslationMeta {
  /** The client's model name, to echo where the client API expects one and the provider sends none. */
  clientModel: string;
  /** Unix seconds for OpenAI's `created` field. */
  created: number;
  /** OpenAI clients: stream_options.include_usage was set (the stream ends with a usage chunk). */
  includeUsage: boolean;
  /** Anything else a pair needs between request and response (kept opaque to the phase). */
  extra?: Record<string, unknown>;
}

/** One attempt's response translation. Streams keep state, so it is made fresh per attempt. */
export interface ResponseTranslator {
  /** The status the client gets for a provider status (e.g. Anthropic 529 -> 503 for OpenAI clients). */
  status(providerStatus: number): number;
  /** The content-type the client gets for a 2xx answer (text/event-stream for streams). */
  contentType(stream: boolean): string;
  /**
   * One chunk of a 2xx streamed body, in arbitrary byte boundaries: returns the client-format bytes
   * ready so far (possibly empty). `end` flushes: a stream the provider ended without its terminal
   * event is ended as it is, without one (the router phase then reports it truncated).
   */
  streamChunk(chunk: Buffer, end: boolean): Buffer;
  /**
   * A whole 2xx non-streamed body. `header` reads the provider's response headers (Bedrock's
   * InvokeModel reports a Cohere embedding's token count only in one).
   */
  json(body: Buffer, header?: (name: string) => string | undefined): Buffer;
  /**
   * A whole non-2xx body (any content, possibly not JSON) as the client's error JSON.
   * `header` reads the provider's response headers (Bedrock names its error type in one).
   */
  error(providerStatus: number, body: Buffer, header: (name: string) => string | undefined): Buffer;
}

export interface Translation {
  /** The client operation this translation accepts. */
  readonly from: Operation;
  /**
   * The operation whose path the provider adapter builds for the attempt (e.g. chat.completions for
   * an Anthropic client on an OpenAI target; Gemini and Bedrock adapters map it to their own paths).
   */
  readonly to: Operation;
  /**
   * Why this request cannot be expressed for the provider (a client-safe sentence naming the field),
   * or undefined when it can. The router phase skips such targets and answers 400 when no target of
   * the route can take the request. Must be cheap: it runs for every chain target while routing.
   * `model` is the target's model (target.model): some providers serve a client API differently per
   * model family (Bedrock embeddings: Titan takes one text per call, Cohere a batch).
   */
  check(body: JsonObject, model: string): string | undefined;
  /** The provider's request. Only called when check() returned undefined. */
  request(body: JsonObject, target: TranslationTarget): TranslatedRequest;
  /** A fresh response translator for one attempt of this request. */
  response(meta: TranslationMeta, stream: boolean): ResponseTranslator;
}
