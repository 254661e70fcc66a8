// The LLM APIs the router understands, keyed by request path. The operation decides the client's
// API format (which error JSON it expects) and which providers can serve it natively.

export type ApiFormat = "openai" | "anthropic";

export const OPERATIONS = {
  "chat.completions": { path: "/v1/chat/completions", format: "openai" },
  completions: { path: "/v1/completions", format: "openai" },
  embeddings: { path: "/v1/embeddings", format: "openai" },
  responses: { path: "/v1/responses", format: "openai" },
  messages: { path: "/v1/messages", format: "anthropic" },
} as const satisfies Record<string, { path: string; format: ApiFormat }>;

export type Operation = keyof typeof OPERATIONS;
export const OPERATION_NAMES = Object.keys(OPERATIONS) as Operation[];
export const OPERATION_PATHS = OPERATION_NAMES.map((op) => OPERATIONS[op].path);

const byPath = new Map<string, Operation>(OPERATION_NAMES.map((op) => [OPERATIONS[op].path, op]));

export interface ParsedPath {
  /** Path without query string, e.g. /v1/chat/completions. */
  pathname: string;
  /** Query string including the leading "?", or "". */
  query: string;
  operation: Operation | undefined;
}

export function parsePath(rawPath: string): ParsedPath {
  const q = rawPath.indexOf("?");
  const pathname = q === -1 ? rawPath : rawPath.slice(0, q);
  const query = q === -1 ? "" : rawPath.slice(q);
  // Trailing slashes are tolerated (some SDK base URLs end with one); nothing else is normalised,
  // so an odd path never matches a route it was not written for.
  const key = pathname.length > 1 && pathname.endsWith("/") ? pathname.slice(0, -1) : pathname;
  return { pathname, query, operation: byPath.get(key) };
}

/**
 * The API format a client speaks, for error replies. Anthropic's SDKs use /v1/messages (and
 * /v1/messages/count_tokens, /v1/complete); everything else gets OpenAI-shaped errors.
 */
export function formatForPath(pathname: string): ApiFormat {
  return pathname.startsWith("/v1/messages") || pathname === "/v1/complete" ? "anthropic" : "openai";
}
