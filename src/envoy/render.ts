// render-envoy: the policy is the single source of truth for the parts of envoy.yaml that must
// agree with it. From a hand-written base bootstrap (admin, listener, router phase, the llm_router
// gRPC cluster) it generates:
// - one Envoy route per policy route, matched on the route header the router phase sets, carrying
//   that route's retry policy;
// - one cluster per chain order (see CompiledCluster): the chain's targets are its endpoints at
//   priorities 0..n-1, each with metadata naming its target and picking its TLS settings, so that
//   Envoy's previous_priorities retry moves to the next target and the upstream phase learns which
//   target an attempt reached from the endpoint's metadata.
// Comments in the base survive (the yaml Document API edits it in place).
import { isMap, isSeq, parseDocument, type Node, type YAMLMap, type YAMLSeq } from "yaml";
import { envoyDuration } from "../policy/duration";
import type { CompiledCluster, CompiledPolicy, CompiledRetry, CompiledTarget, ProviderOrigin } from "../policy/compile";
import { METADATA_NAMESPACE, PASSTHROUGH_ROUTE, PHASE_METADATA_KEY, TARGET_ATTRIBUTE } from "../phases/gateway-headers";
import { arr, CODEC_TYPE, EXT_PROC_TYPE, extProcConfigs, HCM_NAME, obj, phaseOf, UPSTREAM_OPTIONS, type Obj } from "./bootstrap-shape";

/** Endpoint metadata namespace Envoy matches transport_socket_matches against. */
export const SOCKET_MATCH_NAMESPACE = "envoy.transport_socket_match";
const PREVIOUS_PRIORITIES = "envoy.retry_priorities.previous_priorities";
const PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts";
const UPSTREAM_FILTERS_ANCHOR = "llm_router_upstream_filters";

export class RenderError extends Error {
  override name = "RenderError";
}

export interface RenderInputs {
  /** Shown in the generated file's header. */
  policyFile: string;
  baseFile: string;
}

/** Where the router-phase HCM lives in the base, as a YAML path. */
interface BaseFacts {
  hcmPath: Array<string | number>;
  bufferLimitBytes: number;
  grpcService: Obj;
  messageTimeout: string;
}

export function renderEnvoy(policy: CompiledPolicy, baseText: string, inputs: RenderInputs): string {
  const doc = parseDocument(baseText);
  if (doc.errors.length > 0) throw new RenderError(`${inputs.baseFile}: ${doc.errors[0]?.message ?? "invalid YAML"}`);
  const base = obj(doc.toJS({ maxAliasCount: -1 }));
  const facts = baseFacts(base, inputs.baseFile);

  // Routes: generated ones first; the base's own (e.g. a final 404) keep matching after them.
  const vhPath = [...facts.hcmPath, "typed_config", "route_config", "virtual_hosts", 0];
  if (!isMap(doc.getIn(vhPath, true))) throw new RenderError(`${inputs.baseFile}: the HTTP connection manager needs an inline route_config with one virtual host`);
  // The upstream phase reads x-envoy-attempt-count to report the attempt number.
  doc.setIn([...vhPath, "include_request_attempt_count"], true);
  const routesPath = [...vhPath, "routes"];
  let routes = doc.getIn(routesPath, true);
  if (!isSeq(routes)) {
    doc.setIn(routesPath, doc.createNode([]));
    routes = doc.getIn(routesPath, true);
  }
  const generatedRoutes = [
    ...policy.routes.map((r) => envoyRoute(policy, r.name, r.retry)),
    ...(policy.passthrough.length > 0 ? [envoyRoute(policy, PASSTHROUGH_ROUTE, passthroughRetry())] : []),
  ].map((r) => doc.createNode(r) as Node);
  const first = generatedRoutes[0];
  if (first !== undefined) first.commentBefore = ` Generated from ${inputs.policyFile}: one route per policy route, selected by ${policy.routeHeader}.`;
  (routes as YAMLSeq).items.unshift(...generatedRoutes);

  // Clusters.
  const clustersNode = doc.getIn(["static_resources", "clusters"], true);
  if (!isSeq(clustersNode)) throw new RenderError(`${inputs.baseFile}: static_resources.clusters must list at least the ext_proc service's cluster`);
  const existing = new Set(arr(obj(base.static_resources).clusters).map((c) => String(obj(c).name)));
  let filtersNode: Node | undefined;
  const names = [...policy.clusters.keys()].sort();
  names.forEach((name, k) => {
    if (existing.has(name)) throw new RenderError(`${inputs.baseFile}: cluster "${name}" is generated from the policy; remove it from the base`);
    const cluster = policy.clusters.get(name)!;
    const node = doc.createNode(envoyCluster(policy, cluster, facts)) as YAMLMap;
    // All generated clusters share one upstream filter list: written once, then aliased.
    const filtersPath = ["typed_extension_protocol_options", UPSTREAM_OPTIONS, "http_filters"];
    if (filtersNode === undefined) {
      filtersNode = doc.createNode(upstreamFilters(facts)) as Node;
      filtersNode.anchor = UPSTREAM_FILTERS_ANCHOR;
      filtersNode.commentBefore = " The upstream phase, once per attempt (retries included), then the codec.";
    } else {
      node.setIn(filtersPath, doc.createAlias(filtersNode as never));
      (clustersNode as YAMLSeq).items.push(node);
      return;
    }
    node.setIn(filtersPath, filtersNode);
    if (k === 0) node.commentBefore = ` Generated from ${inputs.policyFile}: one cluster per chain order (targets at priorities 0..n-1).`;
    (clustersNode as YAMLSeq).items.push(node);
  });

  const header = [
    ` GENERATED by \`llm-router render-envoy --policy ${inputs.policyFile} --base ${inputs.baseFile}\`.`,
    " Do not edit: change the policy or the base and render again (a test keeps this file equal to the render).",
  ];
  doc.commentBefore = doc.commentBefore ? [...header, "", doc.commentBefore].join("\n") : header.join("\n");
  return doc.toString({ lineWidth: 0 });
}

function baseFacts(base: Obj, file: string): BaseFacts {
  const listeners = arr(obj(base.static_resources).listeners);
  for (const [li, l] of listeners.entries()) {
    for (const [ci, fc] of arr(obj(l).filter_chains).entries()) {
      for (const [fi, f] of arr(obj(fc).filters).entries()) {
        if (obj(f).name !== HCM_NAME) continue;
        const hcm = obj(obj(f).typed_config);
        const router = extProcConfigs(arr(hcm.http_filters)).find((c) => phaseOf(c) !== "upstream");
        if (router === undefined) throw new RenderError(`${file}: the HTTP connection manager has no router-phase ext_proc filter`);
        const grpc = obj(router.grpc_service);
        if (obj(grpc.envoy_grpc).cluster_name === undefined) throw new RenderError(`${file}: the router-phase ext_proc filter needs grpc_service.envoy_grpc.cluster_name`);
        return {
          hcmPath: ["static_resources", "listeners", li, "filter_chains", ci, "filters", fi],
          bufferLimitBytes: Number(obj(l).per_connection_buffer_limit_bytes ?? 1024 * 1024),
          grpcService: grpc,
          messageTimeout: typeof router.message_timeout === "string" ? router.message_timeout : "2s",
        };
      }
    }
  }
  throw new RenderError(`${file}: no listener with an HTTP connection manager`);
}

function passthroughRetry(): CompiledRetry {
  // Passthrough calls (GET /v1/models) are cheap and idempotent: one retry on connection trouble.
  return {
    retries: 1,
    statusCodes: [],
    conditions: ["connect-failure", "refused-stream", "reset"],
    perTryTimeoutMs: 30_000,
    perTryIdleTimeoutMs: 30_000,
    backoffBaseMs: 250,
    backoffMaxMs: 2000,
    honorRetryAfter: false,
    retryAfterMaxMs: 0,
  };
}

function envoyRoute(policy: CompiledPolicy, name: string, retry: CompiledRetry): Obj {
  return {
    name,
    match: { prefix: "/", headers: [{ name: policy.routeHeader, string_match: { exact: name } }] },
    route: {
      cluster_header: policy.clusterHeader,
      cluster_not_found_response_code: "SERVICE_UNAVAILABLE",
      // The default 15 s route timeout spans all retries and would cut long generations; silence
      // is bounded by idle timeouts instead.
      timeout: "0s",
      idle_timeout: "600s",
      // Host header from each endpoint's hostname, per attempt (the chain crosses providers).
      auto_host_rewrite: true,
      retry_policy: envoyRetryPolicy(retry),
    },
  };
}

export function envoyRetryPolicy(retry: CompiledRetry): Obj {
  const retryOn = [...retry.conditions];
  if (retry.statusCodes.length > 0) retryOn.push("retriable-status-codes");
  const policy: Obj = { retry_on: retryOn.join(",") };
  if (retry.statusCodes.length > 0) policy.retriable_status_codes = [...retry.statusCodes];
  policy.num_retries = retry.retries;
  if (retry.perTryTimeoutMs !== undefined) policy.per_try_timeout = envoyDuration(retry.perTryTimeoutMs);
  policy.per_try_idle_timeout = envoyDuration(retry.perTryIdleTimeoutMs);
  policy.retry_back_off = { base_interval: envoyDuration(retry.backoffBaseMs), max_interval: envoyDuration(retry.backoffMaxMs) };
  if (retry.honorRetryAfter) {
    policy.rate_limited_retry_back_off = {
      reset_headers: [{ name: "retry-after", format: "SECONDS" }],
      max_interval: envoyDuration(retry.retryAfterMaxMs),
    };
  }
  // Each retry goes to a priority (= chain target) not tried yet, and never to the same host.
  policy.retry_priority = {
    name: PREVIOUS_PRIORITIES,
    typed_config: { "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig", update_frequency: 1 },
  };
  policy.retry_host_predicate = [{ name: PREVIOUS_HOSTS, typed_config: { "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate" } }];
  policy.host_selection_retry_max_attempts = 3;
  return policy;
}

function upstreamFilters(facts: BaseFacts): Obj[] {
  const grpc: Obj = { ...facts.grpcService, initial_metadata: [{ key: PHASE_METADATA_KEY, value: "upstream" }] };
  return [
    {
      name: "envoy.filters.http.ext_proc",
      typed_config: {
        "@type": EXT_PROC_TYPE,
        grpc_service: grpc,
        // Credentials would not be set; never let an attempt through unprocessed.
        failure_mode_allow: false,
        processing_mode: {
          request_header_mode: "SEND",
          request_body_mode: "BUFFERED",
          // Response headers: which target answered, observations for cooldowns and strategies.
          response_header_mode: "SEND",
          // Bodies of answers are sent only for translated attempts (mode_override on their headers).
          response_body_mode: "NONE",
          request_trailer_mode: "SKIP",
          response_trailer_mode: "SKIP",
        },
        allow_mode_override: true,
        message_timeout: facts.messageTimeout,
        // The cluster and the target of this attempt's endpoint (set before upstream filters run:
        // UpstreamRequest's constructor stores the chosen host in the stream info).
        request_attributes: ["xds.cluster_name", TARGET_ATTRIBUTE],
        // The upstream filter chain shares the request header map across attempts, so the context
        // header an earlier attempt stripped is gone; the dynamic-metadata copy is not.
        metadata_options: { forwarding_namespaces: { untyped: [METADATA_NAMESPACE] } },
      },
    },
    { name: "envoy.filters.http.upstream_codec", typed_config: { "@type": CODEC_TYPE } },
  ];
}

function envoyCluster(policy: CompiledPolicy, cluster: CompiledCluster, facts: BaseFacts): Obj {
  const origins = new Map<string, ProviderOrigin>();
  for (const t of cluster.order) origins.set(t.provider.origin.key, t.provider.origin);
  const allTls = [...origins.values()].every((o) => o.tls);
  const caFile = policy.document.gateway.caFile;
  const options: Obj = {
    "@type": `type.googleapis.com/${UPSTREAM_OPTIONS}`,
    common_http_protocol_options: { idle_timeout: "300s" },
  };
  // HTTP/2 through ALPN needs every transport socket to support ALPN; a plaintext endpoint in the
  // cluster means HTTP/1.1 for all of them.
  if (allTls) options.auto_config = { http2_protocol_options: { connection_keepalive: { interval: "30s", timeout: "10s" } } };
  else options.explicit_http_config = { http_protocol_options: {} };
  const out: Obj = {
    name: cluster.name,
    type: "STRICT_DNS",
    dns_lookup_family: "V4_PREFERRED",
    connect_timeout: envoyDuration(Math.max(...cluster.order.map((t) => t.provider.connectTimeoutMs))),
    per_connection_buffer_limit_bytes: facts.bufferLimitBytes,
    typed_extension_protocol_options: { [UPSTREAM_OPTIONS]: options },
    // A chain target that keeps failing is ejected and its priority's load spills to the next.
    outlier_detection: { consecutive_5xx: 5, interval: "10s", base_ejection_time: "30s", max_ejection_percent: 100 },
    load_assignment: {
      cluster_name: cluster.name,
      endpoints: cluster.order.map((t, priority) => endpointGroup(t, priority)),
    },
  };
  const list = [...origins.values()];
  if (list.length === 1) {
    if (list[0]!.tls) out.transport_socket = tlsSocket(list[0]!, caFile, allTls);
  } else {
    if (allTls) out.transport_socket = tlsSocket(list[0]!, caFile, true);
    out.transport_socket_matches = list.map((o) => ({
      name: o.key,
      match: { origin: o.key },
      transport_socket: o.tls ? tlsSocket(o, caFile, allTls) : rawSocket(),
    }));
  }
  return out;
}

function endpointGroup(target: CompiledTarget, priority: number): Obj {
  const o = target.provider.origin;
  return {
    priority,
    lb_endpoints: [
      {
        endpoint: { hostname: o.host, address: { socket_address: { address: o.host, port_value: o.port } } },
        metadata: { filter_metadata: { [METADATA_NAMESPACE]: { target: target.id }, [SOCKET_MATCH_NAMESPACE]: { origin: o.key } } },
      },
    ],
  };
}

const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]+)$/i;

function tlsSocket(origin: ProviderOrigin, caFile: string, alpnH2: boolean): Obj {
  const isIp = IP.test(origin.host);
  const tls: Obj = { "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext" };
  if (!isIp) tls.sni = origin.host;
  tls.common_tls_context = {
    alpn_protocols: alpnH2 ? ["h2", "http/1.1"] : ["http/1.1"],
    validation_context: {
      trusted_ca: { filename: caFile },
      match_typed_subject_alt_names: [{ san_type: isIp ? "IP_ADDRESS" : "DNS", matcher: { exact: origin.host } }],
    },
  };
  return { name: "envoy.transport_sockets.tls", typed_config: tls };
}

function rawSocket(): Obj {
  return { name: "envoy.transport_sockets.raw_buffer", typed_config: { "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer" } };
}
