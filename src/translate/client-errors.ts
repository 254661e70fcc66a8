// Provider errors as the client's error JSON. Each translation reads its provider's error shape
// (message, and a type when the provider has one) and renders it here, so every pair produces the
// same OpenAI or Anthropic error body for the same situation.
import type { ApiFormat } from "../api/operations";

/** Anthropic error.type for a status (https://docs.anthropic.com/en/api/errors). */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

/** OpenAI error.type for a status (https://platform.openai.com/docs/guides/error-codes). */
export function openAiErrorType(status: number): string {
  if (status === 429) return "rate_limit_error";
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

export interface ProviderErrorFacts {
  /** The client's status (already mapped, e.g. 529 -> 503). */
  status: number;
  /** The provider's message (client-safe: it is what the provider told the caller). */
  message: string;
  /** The provider's error code or type, when it names one (kept as OpenAI's `code`). */
  code?: string | undefined;
}

/** The client's error body for a provider error. */
export function clientErrorBody(format: ApiFormat, e: ProviderErrorFacts): Buffer {
  const payload =
    format === "anthropic"
      ? { type: "error", error: { type: anthropicErrorType(e.status), message: e.message } }
      : { error: { message: e.message, type: openAiErrorType(e.status), param: null, code: e.code ?? null } };
  return Buffer.from(JSON.stringify(payload));
}

/** The provider's error message from a body that may not be JSON at all (HTML from a proxy, empty). */
export function fallbackMessage(status: number, body: Buffer): string {
  const text = body.subarray(0, 512).toString("utf8").trim();
  return text === "" || text.startsWith("<") ? `The provider answered HTTP ${status}.` : `The provider answered HTTP ${status}: ${text}`;
}
