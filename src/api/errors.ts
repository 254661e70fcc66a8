// The one error catalogue: every error the gateway itself answers with has a stable code, an HTTP
// status and a client-safe message, rendered in the caller's API format. README "Errors" lists
// them all (a test checks that every code is documented).
import type { ApiFormat, Operation } from "./operations";

interface ErrorSpec {
  status: number;
  /** OpenAI `error.type`. */
  openai: string;
  /** Anthropic `error.type`. */
  anthropic: string;
  message: string;
}

export const ERROR_CATALOGUE = {
  invalid_json: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "The request body is not valid JSON." },
  body_not_object: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "The request body must be a JSON object." },
  missing_body: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "This endpoint needs a JSON request body." },
  missing_model: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "The request body has no `model` field." },
  invalid_model: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "The `model` field must be a non-empty string." },
  model_not_found: { status: 404, openai: "invalid_request_error", anthropic: "not_found_error", message: "The model does not exist or is not served by this gateway." },
  path_not_supported: { status: 404, openai: "invalid_request_error", anthropic: "not_found_error", message: "This gateway does not serve this path." },
  method_not_allowed: { status: 405, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "This endpoint only accepts POST." },
  unsupported_media_type: { status: 415, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "The request body must be sent as application/json." },
  unsupported_content_encoding: { status: 415, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "Unsupported content-encoding; use gzip, deflate, br or none." },
  invalid_content_encoding: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "The request body could not be decoded with its content-encoding." },
  body_too_large: { status: 413, openai: "invalid_request_error", anthropic: "request_too_large", message: "The request body is larger than this gateway accepts." },
  duplicate_header: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "A header that must appear once was sent several times." },
  header_too_large: { status: 431, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "A request header is too large." },
  missing_api_key: { status: 401, openai: "invalid_request_error", anthropic: "authentication_error", message: "No API key was provided. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`." },
  invalid_api_key: { status: 401, openai: "invalid_request_error", anthropic: "authentication_error", message: "The API key is not valid for this gateway." },
  ambiguous_api_key: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "Two different API keys were sent (Authorization and x-api-key); send one." },
  model_not_allowed: { status: 403, openai: "invalid_request_error", anthropic: "permission_error", message: "This API key may not use this model." },
  route_not_allowed: { status: 403, openai: "invalid_request_error", anthropic: "permission_error", message: "This API key may not use this route." },
  context_length_exceeded: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "The request (prompt plus requested output) is longer than the context window of every model this route can use." },
  capability_not_supported: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "No model this route can use supports what the request needs." },
  api_not_supported_by_target: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "This model is not available through this API endpoint." },
  invalid_routing_context: { status: 403, openai: "invalid_request_error", anthropic: "permission_error", message: "The request did not pass the gateway's routing step." },
  rate_limit_exceeded: { status: 429, openai: "rate_limit_error", anthropic: "rate_limit_error", message: "A rate limit of this gateway was reached." },
  budget_exceeded: { status: 429, openai: "insufficient_quota", anthropic: "rate_limit_error", message: "A spending or token budget of this gateway is used up." },
  concurrency_limit_exceeded: { status: 429, openai: "rate_limit_error", anthropic: "rate_limit_error", message: "Too many requests of this key are in flight at once." },
  request_over_limit: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "This request alone is larger than a limit of this gateway allows; retrying will not help." },
  quota_store_unavailable: { status: 503, openai: "server_error", anthropic: "api_error", message: "The gateway cannot check quotas right now; retry shortly." },
  overloaded: { status: 503, openai: "server_error", anthropic: "overloaded_error", message: "The gateway is overloaded; retry after the seconds in retry-after." },
  target_unavailable: { status: 503, openai: "server_error", anthropic: "api_error", message: "The selected model target is no longer configured; retry the request." },
  gateway_misconfigured: { status: 500, openai: "server_error", anthropic: "api_error", message: "The gateway is misconfigured; the operator has been notified in its logs." },
  field_not_supported_by_target: { status: 400, openai: "invalid_request_error", anthropic: "invalid_request_error", message: "The request uses a field that no model this route can use supports." },
  upstream_response_invalid: { status: 502, openai: "server_error", anthropic: "api_error", message: "The provider's answer could not be read or translated into this API." },
  upstream_stream_truncated: { status: 502, openai: "server_error", anthropic: "api_error", message: "The provider's stream ended before the answer was complete; the output above is partial." },
  internal_error: { status: 500, openai: "server_error", anthropic: "api_error", message: "The gateway failed to process the request." },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** An error answered to the client. `detail` is client-safe extra text (never a secret). */
export class GatewayError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly detail?: string,
    /** Client-safe headers for the answer (retry-after, x-ratelimit-*). */
    readonly headers: ReadonlyArray<readonly [string, string]> = [],
  ) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = "GatewayError";
  }
  get status(): number {
    return ERROR_CATALOGUE[this.code].status;
  }
}

export interface RenderedError {
  status: number;
  body: Buffer;
  headers: Array<[string, string]>;
}

/** Renders an error as OpenAI `{"error":{message,type,code}}` or Anthropic `{"type":"error","error":{type,message}}`. */
export function renderError(error: GatewayError, format: ApiFormat): RenderedError {
  const spec: ErrorSpec = ERROR_CATALOGUE[error.code];
  const message = error.detail ? `${spec.message} ${error.detail}` : spec.message;
  const payload =
    format === "anthropic"
      ? { type: "error", error: { type: spec.anthropic, message } }
      : { error: { message, type: spec.openai, param: null, code: error.code } };
  return {
    status: spec.status,
    body: Buffer.from(JSON.stringify(payload)),
    headers: [["content-type", "application/json"], ["x-llm-router-error", error.code], ...error.headers.map(([k, v]): [string, string] => [k, v])],
  };
}

/**
 * An error as the last event of a stream whose 200 headers are already out, in the shape each API
 * streams its own errors: Anthropic's `error` event, the Responses API's `error` event, and for
 * chat and text completions a data chunk with an `error` object (what OpenAI's SDKs raise on).
 */
export function renderStreamError(error: GatewayError, operation: Operation): Buffer {
  const spec: ErrorSpec = ERROR_CATALOGUE[error.code];
  const message = error.detail ? `${spec.message} ${error.detail}` : spec.message;
  if (operation === "messages") return sseEvent("error", { type: "error", error: { type: spec.anthropic, message } });
  if (operation === "responses") return sseEvent("error", { type: "error", code: error.code, message, param: null });
  return sseEvent(undefined, { error: { message, type: spec.openai, param: null, code: error.code } });
}

/** One SSE event: an optional `event:` line, one `data:` line of JSON, and the blank line. */
export function sseEvent(event: string | undefined, data: unknown): Buffer {
  return Buffer.from(`${event === undefined ? "" : `event: ${event}\n`}data: ${JSON.stringify(data)}\n\n`);
}
