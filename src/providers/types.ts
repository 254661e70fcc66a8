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
  /** The client asked for a stream (Gemini and Bedrock use another path for streams). */
  stream: boolean;
  /** Client headers that adapters may forward (e.g. the client's anthropic-version). */
  clientAnthropicVersion: string | undefined;
  clientAnthropicBeta: string | undefined;
}

export interface AttemptRewrite {
  path: string;
  /** Headers this provider needs, set with overwrite semantics. */
  setHeaders: Array<[string, string]>;
}

/** AWS credentials for SigV4 (Bedrock). */
export interface AwsCredentials {
  accessKeyId: Secret;
  secretAccessKey: Secret;
  sessionToken?: Secret | undefined;
}

export interface SignInput<P extends ProviderConfig = ProviderConfig> {
  provider: P;
  aws: AwsCredentials;
  /** The Host the provider sees (the endpoint's host, with a non-default port). */
  host: string;
  /** The request path as sent, query included (already percent-encoded once). */
  path: string;
  /** Headers that are part of the signature besides host (e.g. content-type), lowercase names. */
  headers: Array<[string, string]>;
  /** The final body, after translation. */
  body: Buffer;
  now: Date;
}

export interface ProviderAdapter<P extends ProviderConfig = ProviderConfig> {
  readonly type: P["type"];
  /** Client APIs this provider serves without translation. */
  readonly operations: ReadonlySet<Operation>;
  rewrite(input: AttemptInput<P>): AttemptRewrite;
  /**
   * Providers that sign each request over its final body (Bedrock SigV4): the headers to set, from
   * the upstream phase's reply to the body. Only called when the provider has AWS credentials.
   */
  sign?(input: SignInput<P>): Promise<Array<[string, string]>>;
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
  "x-amz-date",
  "x-amz-security-token",
  "x-amz-content-sha256",
] as const;
