import { OPERATIONS, type Operation } from "../api/operations";

/**
 * The path of an OpenAI-style provider whose API lives under `basePath` (OpenAI: /v1; OpenRouter:
 * /api/v1; ...). LLM operations map to their suffix; passthrough paths swap the client's /v1 prefix.
 */
export function basePathRewrite(basePath: string, operation: Operation | undefined, pathname: string, query: string): string {
  const base = basePath.endsWith("/") ? basePath.slice(0, -1) : basePath;
  const clientPath = operation ? OPERATIONS[operation].path : pathname;
  const suffix = clientPath.startsWith("/v1/") || clientPath === "/v1" ? clientPath.slice(3) : clientPath;
  return `${base}${suffix}${query}`;
}
