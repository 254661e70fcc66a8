// HTTP filter entries (downstream http_filters and cluster upstream http_filters) -> typed model.
// https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/http/ext_proc/v3/ext_proc.proto
import {
  BootstrapError,
  arr,
  obj,
  optBool,
  optDurationMs,
  optObj,
  optStr,
  rejectUnmodelled,
  str,
  strList,
} from "./yaml-access";

export type HeaderSendMode = "SEND" | "SKIP";
export type BodySendMode = "NONE" | "STREAMED" | "BUFFERED" | "BUFFERED_PARTIAL";

export interface ProcessingModeModel {
  requestHeaderMode: HeaderSendMode;
  responseHeaderMode: HeaderSendMode;
  requestBodyMode: BodySendMode;
  responseBodyMode: BodySendMode;
  requestTrailerMode: HeaderSendMode;
  responseTrailerMode: HeaderSendMode;
}

/** config.common.mutation_rules.v3.HeaderMutationRules; every flag defaults to false. */
export interface MutationRulesModel {
  allowAllRouting: boolean;
  allowEnvoy: boolean;
  disallowSystem: boolean;
  disallowAll: boolean;
  disallowIsError: boolean;
  allowExpression?: RegExp;
  disallowExpression?: RegExp;
}

export interface ExtProcConfig {
  /** The gRPC cluster named by grpc_service.envoy_grpc.cluster_name. */
  grpcCluster: string;
  initialMetadata: Array<[string, string]>;
  failureModeAllow: boolean;
  processingMode: ProcessingModeModel;
  messageTimeoutMs: number;
  maxMessageTimeoutMs: number;
  requestAttributes: string[];
  responseAttributes: string[];
  mutationRules: MutationRulesModel;
  allowModeOverride: boolean;
  disableImmediateResponse: boolean;
  observabilityMode: boolean;
  routeCacheAction: "DEFAULT" | "CLEAR" | "RETAIN";
  forwardingNamespaces: string[];
  receivingNamespaces: string[];
}

export type HttpFilterModel =
  | { kind: "ext_proc"; name: string; config: ExtProcConfig }
  | { kind: "router"; name: string }
  | { kind: "upstream_codec"; name: string };

const TYPE_PREFIX = "type.googleapis.com/";
const EXT_PROC_TYPE = "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor";
const ROUTER_TYPE = "envoy.extensions.filters.http.router.v3.Router";
const UPSTREAM_CODEC_TYPE = "envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec";

function headerMode(value: unknown, path: string, dflt: HeaderSendMode): HeaderSendMode {
  const v = optStr(value, path) ?? "DEFAULT";
  if (v === "DEFAULT") return dflt;
  if (v === "SEND" || v === "SKIP") return v;
  throw new BootstrapError(path, `unknown header send mode "${v}"`);
}

function bodyMode(value: unknown, path: string): BodySendMode {
  const v = optStr(value, path) ?? "NONE";
  if (v === "NONE" || v === "STREAMED" || v === "BUFFERED" || v === "BUFFERED_PARTIAL") return v;
  // FULL_DUPLEX_STREAMED is newer than the API snapshot the project targets (Envoy 1.31).
  throw new BootstrapError(path, `body send mode "${v}" is not modelled`);
}

export function parseProcessingMode(raw: unknown, path: string): ProcessingModeModel {
  const pm = optObj(raw, path) ?? {};
  // Headers default to SEND, trailers to SKIP (processing_mode.proto: HeaderSendMode DEFAULT).
  return {
    requestHeaderMode: headerMode(pm["request_header_mode"], `${path}.request_header_mode`, "SEND"),
    responseHeaderMode: headerMode(pm["response_header_mode"], `${path}.response_header_mode`, "SEND"),
    requestBodyMode: bodyMode(pm["request_body_mode"], `${path}.request_body_mode`),
    responseBodyMode: bodyMode(pm["response_body_mode"], `${path}.response_body_mode`),
    requestTrailerMode: headerMode(pm["request_trailer_mode"], `${path}.request_trailer_mode`, "SKIP"),
    responseTrailerMode: headerMode(pm["response_trailer_mode"], `${path}.response_trailer_mode`, "SKIP"),
  };
}

function regexOf(raw: unknown, path: string): RegExp | undefined {
  const o = optObj(raw, path);
  if (o === undefined) return undefined;
  // RE2 and JS RegExp agree on the simple expressions used for header names.
  return new RegExp(`^(?:${str(o["regex"], `${path}.regex`)})$`);
}

function parseMutationRules(raw: unknown, path: string): MutationRulesModel {
  const r = optObj(raw, path) ?? {};
  const rules: MutationRulesModel = {
    allowAllRouting: optBool(r["allow_all_routing"], `${path}.allow_all_routing`) ?? false,
    allowEnvoy: optBool(r["allow_envoy"], `${path}.allow_envoy`) ?? false,
    disallowSystem: optBool(r["disallow_system"], `${path}.disallow_system`) ?? false,
    disallowAll: optBool(r["disallow_all"], `${path}.disallow_all`) ?? false,
    disallowIsError: optBool(r["disallow_is_error"], `${path}.disallow_is_error`) ?? false,
  };
  const allow = regexOf(r["allow_expression"], `${path}.allow_expression`);
  const disallow = regexOf(r["disallow_expression"], `${path}.disallow_expression`);
  if (allow !== undefined) rules.allowExpression = allow;
  if (disallow !== undefined) rules.disallowExpression = disallow;
  return rules;
}

function parseExtProc(tc: Record<string, unknown>, path: string): ExtProcConfig {
  rejectUnmodelled(tc, ["forward_rules", "send_body_without_waiting_for_header_response"], path);
  const grpc = obj(tc["grpc_service"], `${path}.grpc_service`);
  if (grpc["google_grpc"] !== undefined) {
    throw new BootstrapError(`${path}.grpc_service.google_grpc`, "is not modelled; use envoy_grpc");
  }
  const envoyGrpc = obj(grpc["envoy_grpc"], `${path}.grpc_service.envoy_grpc`);
  const initialMetadata = arr(grpc["initial_metadata"], `${path}.grpc_service.initial_metadata`).map(
    (h, i): [string, string] => {
      const hv = obj(h, `${path}.grpc_service.initial_metadata[${i}]`);
      return [str(hv["key"], `${path}.grpc_service.initial_metadata[${i}].key`), optStr(hv["value"], `${path}.value`) ?? ""];
    },
  );
  const md = optObj(tc["metadata_options"], `${path}.metadata_options`) ?? {};
  const fwd = optObj(md["forwarding_namespaces"], `${path}.metadata_options.forwarding_namespaces`) ?? {};
  const rcv = optObj(md["receiving_namespaces"], `${path}.metadata_options.receiving_namespaces`) ?? {};
  const disableClear = optBool(tc["disable_clear_route_cache"], `${path}.disable_clear_route_cache`) ?? false;
  const action = optStr(tc["route_cache_action"], `${path}.route_cache_action`) ?? "DEFAULT";
  if (action !== "DEFAULT" && action !== "CLEAR" && action !== "RETAIN") {
    throw new BootstrapError(`${path}.route_cache_action`, `unknown value "${action}"`);
  }
  if (disableClear && action !== "DEFAULT") {
    // Envoy rejects this combination at config load (ext_proc.cc FilterConfig constructor).
    throw new BootstrapError(path, "disable_clear_route_cache and route_cache_action cannot both be set");
  }
  return {
    grpcCluster: str(envoyGrpc["cluster_name"], `${path}.grpc_service.envoy_grpc.cluster_name`),
    initialMetadata,
    failureModeAllow: optBool(tc["failure_mode_allow"], `${path}.failure_mode_allow`) ?? false,
    processingMode: parseProcessingMode(tc["processing_mode"], `${path}.processing_mode`),
    messageTimeoutMs: optDurationMs(tc["message_timeout"], `${path}.message_timeout`) ?? 200,
    maxMessageTimeoutMs: optDurationMs(tc["max_message_timeout"], `${path}.max_message_timeout`) ?? 0,
    requestAttributes: strList(tc["request_attributes"], `${path}.request_attributes`),
    responseAttributes: strList(tc["response_attributes"], `${path}.response_attributes`),
    mutationRules: parseMutationRules(tc["mutation_rules"], `${path}.mutation_rules`),
    allowModeOverride: optBool(tc["allow_mode_override"], `${path}.allow_mode_override`) ?? false,
    disableImmediateResponse: optBool(tc["disable_immediate_response"], `${path}.disable_immediate_response`) ?? false,
    observabilityMode: optBool(tc["observability_mode"], `${path}.observability_mode`) ?? false,
    routeCacheAction: disableClear ? "RETAIN" : action,
    forwardingNamespaces: strList(fwd["untyped"], `${path}.metadata_options.forwarding_namespaces.untyped`),
    receivingNamespaces: strList(rcv["untyped"], `${path}.metadata_options.receiving_namespaces.untyped`),
  };
}

export function parseHttpFilter(raw: unknown, path: string): HttpFilterModel {
  const f = obj(raw, path);
  const name = str(f["name"], `${path}.name`);
  const tc = optObj(f["typed_config"], `${path}.typed_config`) ?? {};
  const type = (optStr(tc["@type"], `${path}.typed_config.@type`) ?? "").replace(TYPE_PREFIX, "");
  if (type === EXT_PROC_TYPE || (type === "" && name === "envoy.filters.http.ext_proc")) {
    return { kind: "ext_proc", name, config: parseExtProc(tc, `${path}.typed_config`) };
  }
  if (type === ROUTER_TYPE || (type === "" && name === "envoy.filters.http.router")) return { kind: "router", name };
  if (type === UPSTREAM_CODEC_TYPE || (type === "" && name === "envoy.filters.http.upstream_codec")) {
    return { kind: "upstream_codec", name };
  }
  throw new BootstrapError(path, `HTTP filter "${name}" (${type || "no @type"}) is not modelled by the test harness`);
}
