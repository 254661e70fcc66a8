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
  /** Starts an SSE response (honours a queued dropNextStream). */
  openStream(): SseWriter;
}

export type MockHandler = (ctx: MockContext) => Promise<void> | void;

/** Whose error body shape to use: OpenAI (and Azure) or Anthropic. */
export type ErrorStyle = "openai" | "anthropic";

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

export function errorBody(style: ErrorStyle, status: number, message: string): unknown {
  if (style === "anthropic") {
    return { type: "error", error: { type: ANTHROPIC_TYPES[status] ?? "api_error", message } };
  }
  const type = openAiType(status);
  return { error: { message, type, param: null, code: status === 429 ? "rate_limit_exceeded" : null } };
}

export function sendError(res: ServerResponse, style: ErrorStyle, status: number, message: string): void {
  sendJson(res, status, errorBody(style, status, message));
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
