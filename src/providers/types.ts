// One adapter per provider type (see registry.ts). An adapter knows which client APIs the provider
// serves natively and how one attempt's request must look for it: path, auth headers, model.
import type { Operation } from "../api/operations";
import type { ProviderConfig } from "../policy/schema";
import type { Secret } from "../policy/secret";

export interface AttemptTarget {
  /** Upstream model name. */
  model: string;
  /** Azure deployment (defaults to model). */
  deployment: string | undefined;
}

export interface AttemptInput<P extends ProviderConfig = ProviderConfig> {
  provider: P;
  credential: Secret | undefined;
  target: AttemptTarget;
  /** undefined for passthrough requests (non-LLM paths forwarded as they are). */
  operation: Operation | undefined;
  /** The client's original path and query (from the signed routing context). */
  originalPathname: string;
  originalQuery: string;
  /** Client headers that adapters may forward (e.g. the client's anthropic-version). */
  clientAnthropicVersion: string | undefined;
  clientAnthropicBeta: string | undefined;
}

export interface AttemptRewrite {
  path: string;
  /** Headers this provider needs, set with overwrite semantics. */
  setHeaders: Array<[string, string]>;
}

export interface ProviderAdapter<P extends ProviderConfig = ProviderConfig> {
  readonly type: P["type"];
  /** Client APIs this provider serves without translation. */
  readonly operations: ReadonlySet<Operation>;
  rewrite(input: AttemptInput<P>): AttemptRewrite;
}

/**
 * Every header that carries a credential or a provider-specific setting. Each attempt removes all
 * of them before setting its own, because Envoy hands retries the header map the previous attempt
 * rewrote (one map per request, shared by all upstream attempts).
 */
export const PROVIDER_HEADERS = [
  "authorization",
  "proxy-authorization",
  "x-api-key",
  "api-key",
  "x-goog-api-key",
  "anthropic-version",
  "anthropic-beta",
  "anthropic-dangerous-direct-browser-access",
  "openai-organization",
  "openai-project",
  "cookie",
] as const;
