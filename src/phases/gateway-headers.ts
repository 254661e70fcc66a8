// Headers the gateway owns. Clients can never set them: the router phase removes every one a client
// sent, and the upstream phase removes them all before a request leaves for a provider.

/** Signed routing context from the router phase to the upstream phase. */
export const CONTEXT_HEADER = "x-llm-router-ctx";
/** Dynamic-metadata namespace carrying the same context (survives header rewrites across retries). */
export const METADATA_NAMESPACE = "llm_router";
export const METADATA_CONTEXT_KEY = "ctx";
/** Every header with this prefix is gateway-owned. */
export const GATEWAY_HEADER_PREFIX = "x-llm-router-";
/** Response headers naming the target that answered and the attempt number (per-route switch). */
export const TARGET_RESPONSE_HEADER = "x-llm-router-target";
export const ATTEMPT_RESPONSE_HEADER = "x-llm-router-attempt";
/** Response header: hit, miss or bypass on routes with a cache. */
export const CACHE_HEADER = "x-llm-cache";
/** Route-header value of passthrough requests (route names cannot start with "_"). */
export const PASSTHROUGH_ROUTE = "__passthrough";
/** request_attributes expression giving the target this attempt's endpoint serves. */
export const TARGET_ATTRIBUTE = `xds.upstream_host_metadata.filter_metadata['${METADATA_NAMESPACE}']['target']`;
/** Envoy's attempt counter on upstream requests (virtual host include_request_attempt_count). */
export const ATTEMPT_COUNT_HEADER = "x-envoy-attempt-count";

/** An attempt number as a header carries it (Envoy's count, or ours relayed): a positive integer, else undefined. */
export function attemptNumber(value: string | undefined): number | undefined {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}
/** Request header that caps this request's retries (router-phase filter needs mutation_rules.allow_envoy). */
export const MAX_RETRIES_HEADER = "x-envoy-max-retries";
/** gRPC initial metadata that tells the service which phase a stream belongs to. */
export const PHASE_METADATA_KEY = "x-llm-router-phase";

/** The routing headers a policy names (they may be outside the x-llm-router- prefix). */
export interface RoutingHeaderNames {
  clusterHeader: string;
  routeHeader: string;
}

export function isGatewayHeader(name: string, policy: RoutingHeaderNames): boolean {
  return name.startsWith(GATEWAY_HEADER_PREFIX) || name === policy.clusterHeader || name === policy.routeHeader;
}

/** Gateway-owned headers present in a request (prefix match plus the configured routing headers). */
export function gatewayHeadersIn(names: Iterable<string>, policy: RoutingHeaderNames): string[] {
  const out: string[] = [];
  for (const n of names) if (isGatewayHeader(n, policy)) out.push(n);
  return out;
}
