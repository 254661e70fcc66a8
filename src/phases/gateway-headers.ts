// Headers the gateway owns. Clients can never set them: the router phase removes every one a client
// sent, and the upstream phase removes them all before a request leaves for a provider.

/** Signed routing context from the router phase to the upstream phase. */
export const CONTEXT_HEADER = "x-llm-router-ctx";
/** Dynamic-metadata namespace carrying the same context (survives header rewrites across retries). */
export const METADATA_NAMESPACE = "llm_router";
export const METADATA_CONTEXT_KEY = "ctx";
/** Every header with this prefix is gateway-owned. */
export const GATEWAY_HEADER_PREFIX = "x-llm-router-";
/** gRPC initial metadata that tells the service which phase a stream belongs to. */
export const PHASE_METADATA_KEY = "x-llm-router-phase";

export function isGatewayHeader(name: string, clusterHeader: string): boolean {
  return name === clusterHeader || name.startsWith(GATEWAY_HEADER_PREFIX);
}

/** Gateway-owned headers present in a request (prefix match plus the configured cluster header). */
export function gatewayHeadersIn(names: Iterable<string>, clusterHeader: string): string[] {
  const out: string[] = [];
  for (const n of names) if (isGatewayHeader(n, clusterHeader)) out.push(n);
  return out;
}
