// Gateway API keys: clients send them the way their SDK does (OpenAI SDKs: Authorization: Bearer;
// Anthropic SDKs: x-api-key). The policy stores only SHA-256 digests.
import { hash } from "node:crypto";
import { GatewayError } from "../api/errors";
import type { RequestHeaders } from "../api/request-headers";
import type { CompiledConsumer, CompiledPolicy } from "../policy/compile";

export const ANONYMOUS: CompiledConsumer = {
  id: "anonymous",
  team: undefined,
  labels: {},
  allowRoutes: undefined,
  allowModels: undefined,
};

/** A single header value larger than this is refused before any hashing (431). */
export const MAX_CREDENTIAL_HEADER_BYTES = 8192;

export function presentedKey(headers: RequestHeaders): string | undefined {
  for (const name of ["authorization", "x-api-key"]) {
    if (headers.isRepeated(name)) throw new GatewayError("duplicate_header", `Send \`${name}\` once.`);
    const v = headers.get(name);
    if (v !== undefined && v.length > MAX_CREDENTIAL_HEADER_BYTES) throw new GatewayError("header_too_large", `\`${name}\` is too large.`);
  }
  const auth = headers.get("authorization");
  let bearer: string | undefined;
  if (auth !== undefined) {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth);
    if (!m) throw new GatewayError("invalid_api_key", "The Authorization header must be `Bearer <key>`.");
    bearer = m[1];
  }
  const xApiKey = headers.get("x-api-key")?.trim();
  if (bearer !== undefined && xApiKey !== undefined && xApiKey !== "" && xApiKey !== bearer) throw new GatewayError("ambiguous_api_key");
  return bearer ?? (xApiKey === "" ? undefined : xApiKey);
}

export function authenticate(headers: RequestHeaders, policy: CompiledPolicy): CompiledConsumer {
  const key = presentedKey(headers);
  if (key === undefined) {
    if (!policy.requireApiKey) return ANONYMOUS;
    throw new GatewayError("missing_api_key");
  }
  const consumer = policy.consumerForKeyDigest(hash("sha256", key, "buffer"));
  if (consumer === undefined) {
    if (!policy.requireApiKey) return ANONYMOUS;
    throw new GatewayError("invalid_api_key");
  }
  return consumer;
}
