// Cross-checks a policy against an Envoy bootstrap (envoy.yaml), so the two cannot silently drift:
// every chain cluster the policy routes to exists with its targets at the right priorities and runs
// the upstream phase, every policy route has its Envoy route, the router phase is on the listener,
// and the routing headers the policy sets are the ones Envoy routes on. A bootstrap rendered by
// `render-envoy` passes by construction. (Strict schema validation of envoy.yaml against Envoy's
// protos lives in the test suite.)
import { parse } from "yaml";
import { CACHE_WAIT_MARGIN_MS } from "../cache/response-cache";
import { METADATA_NAMESPACE, PASSTHROUGH_ROUTE, PHASE_METADATA_KEY, TARGET_ATTRIBUTE } from "../phases/gateway-headers";
import type { CompiledPolicy } from "../policy/compile";
import { envoyDuration, parseDuration } from "../policy/duration";
import { arr, CODEC_TYPE, extProcConfigs, HCM_NAME as HCM, obj, phaseOf, UPSTREAM_OPTIONS, type Obj } from "./bootstrap-shape";

/** Streams per gRPC connection below the reset burst (1000) Node's HTTP/2 server tolerates. */
export const MAX_STREAMS_PER_CONNECTION = 900;

export interface CheckReport {
  errors: string[];
  warnings: string[];
}

export function parseEnvoyYaml(text: string): Obj {
  return obj(parse(text, { maxAliasCount: -1 }));
}

function namespaces(extProc: Obj, which: "forwarding_namespaces" | "receiving_namespaces"): unknown[] {
  return arr(obj(obj(obj(extProc).metadata_options)[which]).untyped);
}

export function checkPolicyAgainstEnvoy(policy: CompiledPolicy, bootstrap: Obj, maxBodyBytes: number): CheckReport {
  const errors: string[] = [];
  const warnings: string[] = [];
  const resources = obj(bootstrap.static_resources);
  const clusters = new Map<string, Obj>(arr(resources.clusters).map((c) => [String(obj(c).name), obj(c)]));

  // --- listener: router phase and the cluster_header route ---------------------------------------
  const hcms = arr(resources.listeners).flatMap((l) =>
    arr(obj(l).filter_chains).flatMap((fc) => arr(obj(fc).filters).filter((f) => obj(f).name === HCM).map((f) => ({ listener: obj(l), hcm: obj(obj(f).typed_config) }))),
  );
  if (hcms.length === 0) errors.push("no listener with an HTTP connection manager");
  let routesOnHeader = false;
  const routedNames = new Set<string>();
  const grpcClusters = new Set<string>();
  for (const { listener, hcm } of hcms) {
    const name = String(listener.name);
    const routers = extProcConfigs(arr(hcm.http_filters)).filter((c) => (phaseOf(c) ?? "router") === "router");
    if (routers.length !== 1) {
      errors.push(`listener ${name}: expected one ext_proc filter with ${PHASE_METADATA_KEY}: router, found ${routers.length}`);
      continue;
    }
    const router = routers[0]!;
    grpcClusters.add(String(obj(obj(router.grpc_service).envoy_grpc).cluster_name));
    const mode = obj(router.processing_mode);
    if (mode.request_body_mode !== "BUFFERED") errors.push(`listener ${name}: router phase needs processing_mode.request_body_mode: BUFFERED`);
    if (mode.request_header_mode === "SKIP") errors.push(`listener ${name}: router phase needs request headers (request_header_mode SEND)`);
    if (mode.response_header_mode !== "SEND" || router.allow_mode_override !== true) {
      errors.push(`listener ${name}: router phase needs processing_mode.response_header_mode: SEND and allow_mode_override: true (it reads usage to settle quotas and cost, and hides x-llm-router-target where a route says so)`);
    }
    const longestWait = Math.max(0, ...policy.routes.map((r) => r.cache?.coalesceWaitMs ?? 0));
    if (longestWait > 0) {
      const max = typeof router.max_message_timeout === "string" ? (parseDuration(router.max_message_timeout) ?? 0) : 0;
      const needed = longestWait + CACHE_WAIT_MARGIN_MS;
      if (max < needed) {
        errors.push(`listener ${name}: a route's cache waits up to ${longestWait / 1000}s for identical requests (cache.coalesceWait); set the router phase's max_message_timeout to at least ${envoyDuration(needed)} so that Envoy grants the wait instead of answering 504`);
      }
    }
    if (router.failure_mode_allow === true) errors.push(`listener ${name}: failure_mode_allow: true lets unprocessed requests (and client routing headers) through; set it false`);
    if (obj(router.mutation_rules).allow_envoy !== true) {
      warnings.push(`listener ${name}: without mutation_rules.allow_envoy on the router phase, Envoy ignores the x-envoy-max-retries it sets to keep retries away from chain targets that cannot take a request`);
    }
    if (!namespaces(router, "receiving_namespaces").includes(METADATA_NAMESPACE)) {
      errors.push(`listener ${name}: router phase must list "${METADATA_NAMESPACE}" in metadata_options.receiving_namespaces.untyped (retries need the routing context)`);
    }
    const limit = Number(listener.per_connection_buffer_limit_bytes ?? 1024 * 1024);
    if (limit < maxBodyBytes) warnings.push(`listener ${name}: per_connection_buffer_limit_bytes ${limit} is below --max-body-bytes ${maxBodyBytes}; Envoy answers 413 first for bodies in between`);
    if (limit > maxBodyBytes) warnings.push(`listener ${name}: per_connection_buffer_limit_bytes ${limit} exceeds --max-body-bytes ${maxBodyBytes}; larger bodies get the router's 413`);
    for (const vh of arr(obj(hcm.route_config).virtual_hosts)) {
      if (obj(vh).include_request_attempt_count !== true) warnings.push(`listener ${name}: virtual host ${String(obj(vh).name)} lacks include_request_attempt_count: true (no attempt number in x-llm-router-attempt)`);
      for (const r of arr(obj(vh).routes)) {
        const header = obj(obj(r).route).cluster_header;
        if (header === undefined) continue;
        for (const m of arr(obj(obj(r).match).headers)) {
          const exact = obj(m).name === policy.routeHeader ? (obj(obj(m).string_match).exact ?? obj(m).exact_match) : undefined;
          if (typeof exact === "string") routedNames.add(exact);
        }
        if (header === policy.clusterHeader) routesOnHeader = true;
        else errors.push(`listener ${name}: a route uses cluster_header "${String(header)}" but the policy sets "${policy.clusterHeader}" (gateway.clusterHeader)`);
      }
    }
  }
  if (hcms.length > 0 && !routesOnHeader) errors.push(`no route uses cluster_header: ${policy.clusterHeader}`);

  const needed = [...policy.routes.map((r) => r.name), ...(policy.passthrough.length > 0 ? [PASSTHROUGH_ROUTE] : [])];
  for (const r of needed) {
    if (!routedNames.has(r)) errors.push(`route ${r}: no Envoy route with cluster_header ${policy.clusterHeader} matches ${policy.routeHeader}: ${r} (render envoy.yaml again: llm-router render-envoy)`);
  }

  // --- clusters: every chain cluster has its targets at the right priorities and the upstream phase
  for (const [name, compiled] of policy.clusters) {
    const cluster = clusters.get(name);
    if (!cluster) {
      errors.push(`cluster "${name}" (targets ${compiled.order.map((t) => t.id).join(" -> ")}) is not defined in envoy.yaml (render it again: llm-router render-envoy)`);
      continue;
    }
    const groups = arr(obj(cluster.load_assignment).endpoints);
    compiled.order.forEach((target, priority) => {
      const group = groups.find((g) => Number(obj(g).priority ?? 0) === priority);
      const named = arr(obj(group).lb_endpoints).map((e) => obj(obj(obj(obj(e).metadata).filter_metadata)[METADATA_NAMESPACE]).target);
      if (named.length === 0 || named.some((t) => t !== target.id)) {
        errors.push(`cluster ${name}: priority ${priority} must be target ${target.id} (endpoint metadata ${METADATA_NAMESPACE}.target), found ${named.length === 0 ? "none" : named.map(String).join(", ")}`);
      }
    });
    const opts = obj(obj(cluster.typed_extension_protocol_options)[UPSTREAM_OPTIONS]);
    const filters = arr(opts.http_filters);
    const upstream = extProcConfigs(filters).filter((c) => phaseOf(c) === "upstream");
    if (upstream.length !== 1) {
      errors.push(`cluster ${name}: needs exactly one upstream ext_proc filter with ${PHASE_METADATA_KEY}: upstream in ${UPSTREAM_OPTIONS}.http_filters`);
      continue;
    }
    const up = upstream[0]!;
    grpcClusters.add(String(obj(obj(up.grpc_service).envoy_grpc).cluster_name));
    if (obj(filters[filters.length - 1]).typed_config === undefined || obj(obj(filters[filters.length - 1]).typed_config)["@type"] !== CODEC_TYPE) {
      errors.push(`cluster ${name}: the last upstream HTTP filter must be envoy.filters.http.upstream_codec`);
    }
    const mode = obj(up.processing_mode);
    if (mode.request_body_mode !== "BUFFERED") errors.push(`cluster ${name}: upstream phase needs request_body_mode: BUFFERED (it rewrites the model)`);
    if (mode.response_header_mode !== "SEND") warnings.push(`cluster ${name}: upstream phase without response_header_mode: SEND cannot observe targets (no cooldowns, latency, target response headers)`);
    if (up.failure_mode_allow === true) errors.push(`cluster ${name}: upstream phase must not set failure_mode_allow: true (credentials would not be set)`);
    if (mode.response_header_mode !== "SEND" || up.allow_mode_override !== true) {
      // Gemini and Bedrock only ever get translated requests; elsewhere only a client of the other API is.
      const message = `cluster ${name}: upstream phase needs response_header_mode: SEND and allow_mode_override: true to translate answers between APIs`;
      if (compiled.order.some((t) => t.provider.adapter.operations.size === 0)) errors.push(message);
      else warnings.push(message);
    }
    if (!namespaces(up, "forwarding_namespaces").includes(METADATA_NAMESPACE)) {
      errors.push(`cluster ${name}: upstream phase must list "${METADATA_NAMESPACE}" in metadata_options.forwarding_namespaces.untyped`);
    }
    if (compiled.order.length > 1 && !arr(up.request_attributes).includes(TARGET_ATTRIBUTE)) {
      errors.push(`cluster ${name}: upstream phase must list request_attributes ${TARGET_ATTRIBUTE} (it tells each attempt which chain target it reached)`);
    }
  }
  for (const g of grpcClusters) {
    const cluster = clusters.get(g);
    if (cluster === undefined) {
      errors.push(`ext_proc gRPC cluster "${g}" is not defined`);
      continue;
    }
    // Envoy resets every ext_proc stream it closes; Node's HTTP/2 server tolerates a burst of 1000
    // resets per connection (then 33/s) before it drops the connection with every stream on it.
    const common = obj(obj(obj(cluster.typed_extension_protocol_options)[UPSTREAM_OPTIONS]).common_http_protocol_options);
    const max = Number(common.max_requests_per_connection ?? 0);
    if (!(max > 0 && max <= MAX_STREAMS_PER_CONNECTION)) {
      errors.push(`ext_proc gRPC cluster "${g}": set ${UPSTREAM_OPTIONS}.common_http_protocol_options.max_requests_per_connection to at most ${MAX_STREAMS_PER_CONNECTION} (500 recommended): Node's HTTP/2 server drops a connection after ~1000 stream resets, and Envoy resets every ext_proc stream it closes`);
    }
  }
  return { errors, warnings };
}
