// Which transport socket an attempt's connection would use, and with which SNI / SAN checks.
// Nothing here changes how the harness connects (always plain HTTP to the override URL); it is
// recorded so tests can check the TLS settings Envoy would apply per endpoint.
// - transport_socket_matches (cluster.proto): the endpoint's `envoy.transport_socket_match`
//   filter metadata is compared with each entry's `match` in order; the first entry whose every
//   field is present and equal wins (an empty `match` matches any endpoint). Without a match the
//   locality's metadata is tried the same way, then the cluster's transport_socket, else plaintext.
// - auto_sni / auto_san_validation (UpstreamHttpProtocolOptions): the router takes the name from
//   the request's host (or override_auto_sni_header) ONCE, in decodeHeaders, before any endpoint is
//   chosen (router.cc); every attempt of the request - retries on other priorities included - uses
//   it, and it overrides the TLS context's `sni`. auto_host_rewrite is applied later, so the name
//   is the host the request had when it reached the router, not the endpoint's hostname.
import type { ClusterModel, EndpointModel, TransportSocketModel } from "./bootstrap";
import { valuesEqual } from "./bootstrap-clusters";
import type { HeaderMap } from "./header-map";
import { isObject } from "./yaml-access";

const MATCH_NAMESPACE = "envoy.transport_socket_match";
const RAW_BUFFER = "envoy.transport_sockets.raw_buffer";

export interface AttemptTransportSocket {
  /** The transport_socket_matches entry's name; else the cluster transport_socket's name; else raw_buffer. */
  name: string;
  /** The transport socket extension (envoy.transport_sockets.tls, ...raw_buffer). */
  socket: string;
  tls: boolean;
  /** SNI sent in the TLS ClientHello, if any. */
  sni?: string;
  /** Names the upstream certificate is checked against (exact SAN matchers or auto_san_validation). */
  subjectAltNames?: string[];
}

/** What auto_sni / auto_san_validation fixed for the whole request (undefined: not configured). */
export interface AutoTlsNames {
  sni?: string;
  san?: string;
}

function labelsMatch(match: Record<string, unknown>, metadata: Record<string, unknown>): boolean {
  const ns = metadata[MATCH_NAMESPACE];
  // Config::Metadata::metadataLabelMatch: without the namespace, only an empty match matches.
  if (!isObject(ns)) return Object.keys(match).length === 0;
  return Object.entries(match).every(([k, v]) => k in ns && valuesEqual(ns[k], v));
}

function hostOf(authority: string): { host: string; ip: boolean } {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(authority);
  if (v6 !== null) return { host: v6[1] ?? "", ip: true };
  const host = authority.replace(/:\d+$/, "");
  return { host, ip: /^\d{1,3}(\.\d{1,3}){3}$/.test(host) };
}

/** Router::Filter::decodeHeaders: the auto SNI / SAN names, read once per request. */
export function autoTlsNames(cluster: ClusterModel, headers: HeaderMap): AutoTlsNames {
  const o = cluster.upstreamHttpProtocolOptions;
  if (!o.autoSni && !o.autoSanValidation) return {};
  let value = headers.get(":authority") ?? "";
  if (o.overrideAutoSniHeader !== undefined) {
    const override = headers.getJoined(o.overrideAutoSniHeader);
    if (override !== undefined && override !== "") value = override;
  }
  const { host, ip } = hostOf(value);
  const out: AutoTlsNames = {};
  if (o.autoSni && !ip) out.sni = host;
  if (o.autoSanValidation) out.san = host;
  return out;
}

export function resolveTransportSocket(cluster: ClusterModel, endpoint: EndpointModel | undefined, auto: AutoTlsNames): AttemptTransportSocket {
  let name: string | undefined;
  let socket: TransportSocketModel | undefined;
  for (const metadata of endpoint === undefined ? [] : [endpoint.filterMetadata, endpoint.localityMetadata]) {
    const hit = cluster.transportSocketMatches.find((m) => labelsMatch(m.match, metadata));
    if (hit !== undefined) {
      name = hit.name;
      socket = hit.socket;
      break;
    }
  }
  if (socket === undefined && cluster.transportSocket !== undefined) {
    socket = cluster.transportSocket;
    name = socket.name;
  }
  if (socket === undefined || !socket.tls) {
    const socketName = socket?.name ?? RAW_BUFFER;
    return { name: name ?? socketName, socket: socketName, tls: false };
  }
  const out: AttemptTransportSocket = { name: name ?? socket.name, socket: socket.name, tls: true };
  const sni = auto.sni ?? socket.sni;
  if (sni !== "") out.sni = sni;
  const sans = auto.san !== undefined ? [auto.san] : socket.subjectAltNames;
  if (sans.length > 0) out.subjectAltNames = sans;
  return out;
}
