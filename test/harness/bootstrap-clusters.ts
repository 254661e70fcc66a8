// static_resources.clusters -> typed model: endpoints with priorities and metadata, transport sockets
// (matches and default), HttpProtocolOptions (upstream filters, auto SNI/SAN).
// https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/cluster.proto
// Keys read only to be accepted (outlier_detection, common_lb_config, lb_policy, health_checks,
// circuit_breakers, dns_*, auto_config / explicit_http_config...) do not change what the harness does;
// the harness header comment lists them under NOT MODELLED.
import { type HttpFilterModel, parseHttpFilter } from "./bootstrap-filters";
import {
  BootstrapError,
  arr,
  isObject,
  obj,
  optBool,
  optNum,
  optObj,
  optStr,
  rejectUnmodelled,
  str,
} from "./yaml-access";

export interface EndpointModel {
  /** `endpoint.hostname` (what auto_host_rewrite writes into :authority), possibly "". */
  hostname: string;
  address: string;
  port: number;
  priority: number;
  /** `lb_endpoints[].metadata.filter_metadata`: namespace -> plain JSON object. */
  filterMetadata: Record<string, unknown>;
  /** The locality's `metadata.filter_metadata` (consulted for transport socket matches). */
  localityMetadata: Record<string, unknown>;
}

export interface TransportSocketModel {
  /** The transport socket's `name`, e.g. envoy.transport_sockets.tls. */
  name: string;
  tls: boolean;
  /** UpstreamTlsContext.sni ("" = none). */
  sni: string;
  /** Exact DNS names from validation_context.match_typed_subject_alt_names. */
  subjectAltNames: string[];
}

export interface TransportSocketMatchModel {
  name: string;
  /** Struct compared with the endpoint's `envoy.transport_socket_match` metadata. */
  match: Record<string, unknown>;
  socket: TransportSocketModel;
}

export interface UpstreamHttpProtocolOptionsModel {
  autoSni: boolean;
  autoSanValidation: boolean;
  overrideAutoSniHeader?: string;
}

export interface ClusterModel {
  name: string;
  /** Ordered by priority, then by position. */
  endpoints: EndpointModel[];
  /** From typed_extension_protocol_options HttpProtocolOptions.http_filters (upstream filters). */
  upstreamFilters: HttpFilterModel[];
  bufferLimitBytes: number;
  transportSocketMatches: TransportSocketMatchModel[];
  /** The cluster's own transport_socket; absent = plaintext (raw_buffer). */
  transportSocket?: TransportSocketModel;
  upstreamHttpProtocolOptions: UpstreamHttpProtocolOptionsModel;
  /** HttpProtocolOptions.common_http_protocol_options.max_requests_per_connection (unset: unlimited). */
  maxRequestsPerConnection: number | undefined;
}

export const PROTOCOL_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
export const DEFAULT_BUFFER_LIMIT = 1024 * 1024;
const TLS_SOCKET = "envoy.transport_sockets.tls";
const TLS_TYPE = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

function filterMetadataOf(raw: unknown, path: string): Record<string, unknown> {
  const metadata = optObj(raw, path) ?? {};
  return optObj(metadata["filter_metadata"], `${path}.filter_metadata`) ?? {};
}

function parseEndpoints(raw: unknown, path: string): EndpointModel[] {
  const la = optObj(raw, path);
  if (la === undefined) return [];
  const out: EndpointModel[] = [];
  arr(la["endpoints"], `${path}.endpoints`).forEach((localityRaw, i) => {
    const lp = `${path}.endpoints[${i}]`;
    const locality = obj(localityRaw, lp);
    const priority = optNum(locality["priority"], `${lp}.priority`) ?? 0;
    const localityMetadata = filterMetadataOf(locality["metadata"], `${lp}.metadata`);
    arr(locality["lb_endpoints"], `${lp}.lb_endpoints`).forEach((lbRaw, j) => {
      const ep = `${lp}.lb_endpoints[${j}]`;
      const lb = obj(lbRaw, ep);
      const endpoint = obj(lb["endpoint"], `${ep}.endpoint`);
      const address = obj(endpoint["address"], `${ep}.endpoint.address`);
      const socket = optObj(address["socket_address"], `${ep}.endpoint.address.socket_address`);
      const pipe = optObj(address["pipe"], `${ep}.endpoint.address.pipe`);
      out.push({
        hostname: optStr(endpoint["hostname"], `${ep}.endpoint.hostname`) ?? "",
        address: socket !== undefined ? str(socket["address"], `${ep}.socket_address.address`) : `unix:${str(pipe?.["path"], `${ep}.pipe.path`)}`,
        port: socket !== undefined ? (optNum(socket["port_value"], `${ep}.socket_address.port_value`) ?? 0) : 0,
        priority,
        filterMetadata: filterMetadataOf(lb["metadata"], `${ep}.metadata`),
        localityMetadata,
      });
    });
  });
  // Stable sort: lower priority number first (priority 0 is the preferred group).
  return out.map((e, i) => ({ e, i })).sort((a, b) => a.e.priority - b.e.priority || a.i - b.i).map((x) => x.e);
}

/** config.core.v3.TransportSocket; only TLS contexts are looked into (SNI and SAN matchers). */
function parseTransportSocket(raw: unknown, path: string): TransportSocketModel {
  const ts = obj(raw, path);
  const name = str(ts["name"], `${path}.name`);
  const tc = optObj(ts["typed_config"], `${path}.typed_config`) ?? {};
  const type = (optStr(tc["@type"], `${path}.typed_config.@type`) ?? "").replace("type.googleapis.com/", "");
  const tls = type === TLS_TYPE || (type === "" && name === TLS_SOCKET);
  const common = optObj(tc["common_tls_context"], `${path}.typed_config.common_tls_context`) ?? {};
  const validation = optObj(common["validation_context"], `${path}.typed_config.common_tls_context.validation_context`) ?? {};
  const sanPath = `${path}.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names`;
  const subjectAltNames = arr(validation["match_typed_subject_alt_names"], sanPath).flatMap((m, i) => {
    const matcher = optObj(obj(m, `${sanPath}[${i}]`)["matcher"], `${sanPath}[${i}].matcher`) ?? {};
    const exact = optStr(matcher["exact"], `${sanPath}[${i}].matcher.exact`);
    return exact === undefined ? [] : [exact];
  });
  return { name, tls, sni: tls ? (optStr(tc["sni"], `${path}.typed_config.sni`) ?? "") : "", subjectAltNames };
}

function parseProtocolOptions(c: Record<string, unknown>, path: string): { filters: HttpFilterModel[]; upstream: UpstreamHttpProtocolOptionsModel; maxRequests: number | undefined } {
  const options = optObj(c["typed_extension_protocol_options"], `${path}.typed_extension_protocol_options`) ?? {};
  const hp = `${path}.typed_extension_protocol_options.${PROTOCOL_OPTIONS_KEY}`;
  const httpOptions = optObj(options[PROTOCOL_OPTIONS_KEY], hp) ?? {};
  const fp = `${hp}.http_filters`;
  const filters = arr(httpOptions["http_filters"], fp).map((f, i) => parseHttpFilter(f, `${fp}[${i}]`));
  if (filters.length > 0 && filters[filters.length - 1]?.kind !== "upstream_codec") {
    throw new BootstrapError(fp, "must end with envoy.filters.http.upstream_codec");
  }
  const up = optObj(httpOptions["upstream_http_protocol_options"], `${hp}.upstream_http_protocol_options`) ?? {};
  const upstream: UpstreamHttpProtocolOptionsModel = {
    autoSni: optBool(up["auto_sni"], `${hp}.upstream_http_protocol_options.auto_sni`) ?? false,
    autoSanValidation: optBool(up["auto_san_validation"], `${hp}.upstream_http_protocol_options.auto_san_validation`) ?? false,
  };
  const override = optStr(up["override_auto_sni_header"], `${hp}.upstream_http_protocol_options.override_auto_sni_header`);
  if (override !== undefined && override !== "") upstream.overrideAutoSniHeader = override.toLowerCase();
  const common = optObj(httpOptions["common_http_protocol_options"], `${hp}.common_http_protocol_options`) ?? {};
  const maxRequests = optNum(common["max_requests_per_connection"], `${hp}.common_http_protocol_options.max_requests_per_connection`);
  return { filters, upstream, maxRequests };
}

export function parseCluster(raw: unknown, path: string): ClusterModel {
  const c = obj(raw, path);
  rejectUnmodelled(c, ["cluster_type"], path); // aggregate clusters are not modelled
  const protocol = parseProtocolOptions(c, path);
  const cluster: ClusterModel = {
    name: str(c["name"], `${path}.name`),
    endpoints: parseEndpoints(c["load_assignment"], `${path}.load_assignment`),
    upstreamFilters: protocol.filters,
    bufferLimitBytes: optNum(c["per_connection_buffer_limit_bytes"], `${path}.per_connection_buffer_limit_bytes`) ?? DEFAULT_BUFFER_LIMIT,
    transportSocketMatches: arr(c["transport_socket_matches"], `${path}.transport_socket_matches`).map((m, i) => {
      const mp = `${path}.transport_socket_matches[${i}]`;
      const match = obj(m, mp);
      return {
        name: str(match["name"], `${mp}.name`),
        match: optObj(match["match"], `${mp}.match`) ?? {},
        socket: parseTransportSocket(match["transport_socket"], `${mp}.transport_socket`),
      };
    }),
    upstreamHttpProtocolOptions: protocol.upstream,
    maxRequestsPerConnection: protocol.maxRequests,
  };
  if (c["transport_socket"] !== undefined) cluster.transportSocket = parseTransportSocket(c["transport_socket"], `${path}.transport_socket`);
  return cluster;
}

/** Protobuf Value equality on plain JSON values (Struct, list, string, number, bool, null). */
export function valuesEqual(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => valuesEqual(v, b[i]));
  }
  if (isObject(a) || isObject(b)) {
    if (!isObject(a) || !isObject(b)) return false;
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && valuesEqual(a[k], b[k]));
  }
  return a === b || (a == null && b == null);
}
