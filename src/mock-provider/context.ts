// What a mock endpoint handler gets, plus JSON and provider-shaped error responses.
import type { ServerResponse } from "node:http";
import type { SseWriter } from "./sse";

export interface MockContext {
  readonly method: string;
  readonly url: URL;
  readonly body: Buffer;
  /** UTF-8 decoded length of the body: the basis of the deterministic input token count. */
  readonly bodyChars: number;
  /** The parsed JSON body, or undefined when the body is not JSON. */
  readonly json: unknown;
  readonly res: ServerResponse;
  readonly streamChunks: number | undefined;
  /** Per-server request counter, used to build unique deterministic ids. */
  readonly seq: number;
  /**
   * Starts a streamed response (honours a queued dropNextStream / truncateNextStream): SSE by
   * default, or binary frames under another content-type (Bedrock's application/vnd.amazon.eventstream).
   */
  openStream(contentType?: string): SseWriter;
}

export type MockHandler = (ctx: MockContext) => Promise<void> | void;

/** Whose error body shape to use: OpenAI (and Azure), Anthropic, Gemini or Bedrock. */
export type ErrorStyle = "openai" | "anthropic" | "gemini" | "bedrock";

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const payload = Buffer.from(JSON.stringify(body));
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(payload.length),
    ...headers,
  });
  res.end(payload);
}

// https://platform.openai.com/docs/guides/error-codes ; https://docs.anthropic.com/en/api/errors
const ANTHROPIC_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  500: "api_error",
  529: "overloaded_error",
};

function openAiType(status: number): string {
  if (status === 429) return "rate_limit_exceeded";
  if (status === 401) return "authentication_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

// https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes
const GEMINI_STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_Errors
const BEDROCK_TYPES: Record<number, string> = {
  400: "ValidationException",
  403: "AccessDeniedException",
  404: "ResourceNotFoundException",
  408: "ModelTimeoutException",
  424: "ModelErrorException",
  429: "ThrottlingException",
  500: "InternalServerException",
  503: "ServiceUnavailableException",
};

/** Bedrock names the error in a header (x-amzn-errortype); the body only has the message. */
export function bedrockErrorType(status: number): string {
  return BEDROCK_TYPES[status] ?? (status >= 500 ? "InternalServerException" : "ValidationException");
}

export function errorBody(style: ErrorStyle, status: number, message: string): unknown {
  if (style === "gemini") return { error: { code: status, message, status: GEMINI_STATUS[status] ?? (status >= 500 ? "INTERNAL" : "INVALID_ARGUMENT") } };
  if (style === "bedrock") return { message };
  if (style === "anthropic") {
    return { type: "error", error: { type: ANTHROPIC_TYPES[status] ?? "api_error", message } };
  }
  const type = openAiType(status);
  return { error: { message, type, param: null, code: status === 429 ? "rate_limit_exceeded" : null } };
}

export function sendError(res: ServerResponse, style: ErrorStyle, status: number, message: string): void {
  sendJson(res, status, errorBody(style, status, message), errorHeaders(style, status));
}

/** Headers a provider puts on its error responses (Bedrock's error type). */
export function errorHeaders(style: ErrorStyle, status: number): Record<string, string> {
  return style === "bedrock" ? { "x-amzn-errortype": `${bedrockErrorType(status)}:http://internal.amazon.com/coral/com.amazon.bedrock/` } : {};
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
