/*
 * EnvoyHarness: an Envoy stand-in for end-to-end tests (no Envoy binary can run here). It reads a
 * real Envoy bootstrap (envoy/envoy.yaml) and plays Envoy's documented part towards the ext_proc
 * service - speaking Envoy's OWN ext_proc protos - and towards the provider endpoints.
 * Behaviours were taken from Envoy's API docs and from its sources (ext_proc.cc, processor_state.cc,
 * mutation_utils.cc, mutation_rules.cc, router.cc, upstream_request.cc, retry_state_impl.cc,
 * reset_header_parser.cc, previous_priorities.cc), Envoy 1.31-1.36.
 *
 * MODELLED
 * - Bootstrap: first listener's http_connection_manager; per_connection_buffer_limit_bytes;
 *   inline route_config; http_filters (ext_proc, router); clusters' load_assignment (endpoint
 *   hostname, priority, lb_endpoints[].metadata.filter_metadata with any namespaces, locality
 *   metadata), transport_socket / transport_socket_matches (TLS sni and exact SAN matchers), and
 *   typed_extension_protocol_options HttpProtocolOptions (upstream http_filters: ext_proc,
 *   upstream_codec; upstream_http_protocol_options auto_sni / auto_san_validation /
 *   override_auto_sni_header). YAML anchors and merge keys resolved. Unmodelled keys that would
 *   change behaviour are rejected by path; keys that only tune what is not modelled (see below) are
 *   accepted and ignored.
 * - HCM: header map with :authority (from Host, else "localhost"; no `host` entry), :path, :method,
 *   :scheme "http"; lowercase names; hop-by-hop and client x-envoy-* headers stripped;
 *   x-forwarded-proto; x-request-id (uuid) when absent and generate_request_id; content-length from
 *   the body; headers_with_underscores_action; max_headers_count / max_request_headers_kb -> 431;
 *   response: server header, x-request-id with always_set_request_id_in_response.
 * - Route cache: the route (and a cluster_header's cluster) is matched once, before the filters
 *   run, and re-matched only after clear_route_cache. Matching: virtual host domains (exact,
 *   *suffix, prefix*, *), prefix / path / safe_regex, header matchers (exact_match, prefix_match,
 *   suffix_match, present_match, string_match, invert_match). Actions: cluster, cluster_header
 *   (missing/unknown -> cluster_not_found_response_code), direct_response; no route -> 404.
 * - ext_proc (downstream and upstream, one Process stream per filter instance, upstream: one per
 *   attempt): initial_metadata as call metadata; processing_mode incl. mode_override with
 *   allow_mode_override; header values sent only as raw_value; end_of_stream flags; STREAMED
 *   (one message per chunk, pipelined; chunked responses end with an empty end_of_stream message),
 *   BUFFERED (413 over the listener buffer limit), BUFFERED_PARTIAL; request_attributes /
 *   response_attributes (see attributes.ts; upstream filters get the attempt's response code and
 *   endpoint metadata) on the first message of each direction; metadata_context from
 *   forwarding_namespaces on every message; dynamic_metadata kept only for receiving_namespaces;
 *   message_timeout (+ override_message_timeout within max_message_timeout); failure_mode_allow;
 *   observability_mode; disable_immediate_response; route_cache_action / disable_clear_route_cache;
 *   mutation_rules; CONTINUE_AND_REPLACE; content-length rules.
 *   Failure semantics as in Envoy, see ext-proc-session.ts - NOTE two places where Envoy fails OPEN:
 *   a spurious (wrong-kind) response and a clean server close (status OK) let the request continue
 *   unprocessed, whatever failure_mode_allow says.
 * - Header mutations: routing headers (host, :authority, :scheme, :method) and x-envoy-* set
 *   attempts silently ignored unless allow_all_routing / allow_envoy, pseudo-headers/host never
 *   removable (all counted in rejectedMutations); value + raw_value both set -> 500; append_action
 *   honoured; APPEND_IF_EXISTS_OR_ADD with `append` unset or true APPENDS (newer Envoy, on purpose);
 *   mutations in a body reply apply only while Envoy still holds the headers (BUFFERED /
 *   BUFFERED_PARTIAL with headers sent); clear_route_cache only downstream, only with a
 *   header_mutation, only on request headers / BUFFERED(_PARTIAL) request body replies.
 * - Upstream ext_proc: Envoy ignores its local replies (immediate_response, 500s, 504s; stat
 *   send_immediate_resp_upstream_ignored, Envoy 1.31-1.35 - envoyproxy/envoy#41231 proposes to
 *   allow them) - the attempt hangs; the harness reports `stalled` and answers with the timeout
 *   Envoy would eventually fire, without waiting for it (per-try timeouts are retried like resets).
 *   Its response-header mutations (e.g. retry-after) are what the router's retry decision and
 *   rate-limited back-off read, and what the client gets from the final attempt.
 * - Router, once per request (decodeHeaders): x-envoy-upstream-rq-timeout-ms and
 *   x-envoy-upstream-rq-per-try-timeout-ms (consumed; a per-try timeout not below a non-zero route
 *   timeout is dropped); auto_sni / auto_san_validation names from the request's host as it reaches
 *   the router (used by EVERY attempt, overriding the TLS sni - see transport-socket.ts); the retry
 *   state: retry_policy merged with x-envoy-retry-on / x-envoy-retriable-status-codes, and
 *   x-envoy-max-retries overriding num_retries (only a downstream filter with allow_envoy can set
 *   them; the router removes them and the other retry headers).
 * - Router, per attempt: retry_on connect-failure, refused-stream, reset, 5xx, gateway-error,
 *   retriable-4xx, retriable-status-codes, envoy-ratelimited (x-envoy-ratelimited responses);
 *   num_retries default 1; exponential back-off base/max interval (upper bound of Envoy's jitter);
 *   rate_limited_retry_back_off (reset_headers SECONDS / UNIX_TIMESTAMP, over-max values skipped,
 *   lower bound of the jitter; retry.ts); real sleeps capped at retryBackoffCapMs = 20 ms, modelled
 *   value in AttemptRecord.backoffMs; host selection by priority with retry_priority
 *   previous_priorities (update_frequency) and retry_host_predicate previous_hosts
 *   (host-selection.ts); per_try_timeout and per_try_idle_timeout as REAL timers, armed when the
 *   attempt starts and stopped at the upstream response headers (Envoy keeps per_try_timeout until
 *   the response is complete and re-arms per_try_idle_timeout on every response frame): expiry
 *   resets the upstream request and the upstream ext_proc streams, is retried like a reset, else
 *   504 "upstream request timeout" (upstream_per_try_timeout / upstream_per_try_idle_timeout);
 *   x-envoy-attempt-count set on the shared request header map before each attempt's upstream
 *   filters (include_request_attempt_count) and on the response / router local reply
 *   (include_attempt_count_in_response); x-envoy-is-timeout-retry on retries
 *   (include_is_timeout_retry_header); the transport socket (match entry, SNI, SANs) each attempt
 *   would use, recorded only; all attempts share ONE request header map (upstream filter changes
 *   persist into later attempts), each gets a fresh copy of the filtered body; auto_host_rewrite
 *   from the endpoint hostname; HTTP/1.1 upstream via node:http with a correct content-length to
 *   the clusterEndpoints / hostEndpoints override (none: connect failure); connection refused /
 *   reset before headers; a reset mid-body reaches the client as a truncated response with
 *   `reset: true`. The client sees the last attempt.
 * - Response path: upstream filters (reverse order) then downstream ext_proc filters (reverse order);
 *   local replies pass through the downstream filters that had already run.
 *
 * NOT MODELLED
 * - TLS itself (the harness always speaks plain HTTP; sockets are only recorded), ALPN, HTTP/2,
 *   auto_config / explicit_http_config protocol choice, connection pooling, keep-alive, health
 *   checks, outlier_detection (accepted; no host is ever ejected, so retries follow the priority
 *   plugins only), common_lb_config / lb_policy (the first eligible endpoint of a priority is used;
 *   host_selection_retry_max_attempts is read but reselection always finds a fresh host when one
 *   exists), overprovisioning / health-based priority spill-over, DNS, circuit breakers, cluster
 *   without endpoints answering "no healthy upstream" (the harness reports a connect failure).
 * - Route timeout and idle_timeout timers (only reported for stalls); per-try timers after the
 *   response headers; hedging (hedge_policy is rejected); x-envoy-expected-rq-timeout-ms and
 *   x-envoy-upstream-service-time; request trailers and response trailers (HTTP/1.1 has none here),
 *   FULL_DUPLEX_STREAMED, per-route ext_proc overrides, forward_rules, typed metadata, RDS, any HTTP
 *   filter but ext_proc/router.
 * - A retried attempt's response body still goes through its upstream filters (Envoy resets the
 *   attempt right after its headers, so a STREAMED response body would never reach them).
 * - Envoy's comma-joining of appended values for its "inline" headers (the harness always adds a
 *   separate entry), other x-envoy-* response headers, access logs, stats.
 * - Buffer limits of upstream filter chains and of the retry buffer.
 * - Request bodies arrive as one chunk (real clients may split them).
 */
import type { Server } from "node:http";
import type { AttributeFacts } from "./attributes";
import { type Bootstrap, loadBootstrap } from "./bootstrap";
import { ExtProcChannels, type ExtProcRecord } from "./ext-proc-client";
import type { ExtProcFilter, RequestState, ResponseState } from "./ext-proc-filter";
import type { DynamicMetadata } from "./ext-proc-session";
import { type HarnessRequest, finalizeResponseHeaders, prepareRequest } from "./hcm";
import type { HeaderMap, HeaderRecord } from "./header-map";
import { startListener } from "./listener";
import { type LocalReply, localReplyHeaders } from "./local-reply";
import { type RejectedMutation, applyHeaderMutation } from "./mutations";
import { type AttemptRecord, type HarnessEnv, type RequestContext, createExtProcFilter, newRequestContext } from "./request-context";
import { RouterFilter, type RouterResult } from "./router-filter";
import { type RouteDecision, matchRoute } from "./router";
import { BootstrapError } from "./yaml-access";

export type { HarnessRequest } from "./hcm";
export type { AttemptRecord, AttemptTransportSocket } from "./request-context";
export type { AttemptFailure } from "./retry";
export type { ExtProcRecord } from "./ext-proc-client";
export type { RejectedMutation } from "./mutations";

export interface EnvoyHarnessOptions {
  /** Path of the Envoy bootstrap YAML. */
  envoyYaml: string;
  /** host:port of the ext_proc service: one for every ext_proc gRPC cluster, or per cluster name. */
  extProcAddress: string | Readonly<Record<string, string>>;
  /**
   * Cluster name -> http:// URL (or one URL per endpoint, in priority order). Takes precedence over
   * hostEndpoints for that cluster.
   */
  clusterEndpoints?: Readonly<Record<string, string | readonly string[]>>;
  /**
   * Endpoint `hostname` -> http:// URL, for every cluster with an endpoint of that hostname (a list:
   * the k-th such endpoint of a cluster gets the k-th URL). An endpoint with neither override is a
   * connect failure.
   */
  hostEndpoints?: Readonly<Record<string, string | readonly string[]>>;
  /** Cap on real retry back-off sleeps (default 20 ms). */
  retryBackoffCapMs?: number;
}

export interface HarnessResponse {
  status: number;
  /** Response headers as the client gets them (lowercase; repeated headers as arrays). */
  headers: HeaderRecord;
  body: Buffer;
  json(): unknown;
  text(): string;
  attempts: AttemptRecord[];
  /** One entry per ext_proc stream, with the raw messages sent and received. */
  extProc: ExtProcRecord[];
  /** Envoy's response code details when Envoy answered itself (local reply). */
  localReplyReason?: string;
  /** Header mutations Envoy ignored (or refused) under the mutation rules. */
  rejectedMutations: RejectedMutation[];
  /** The request's dynamic metadata at the end (namespace -> fields). */
  dynamicMetadata: DynamicMetadata;
  /** Things Envoy accepts silently that a test may want to know about. */
  notes: string[];
  /** The route used by the router (after any clear_route_cache), if one matched. */
  route?: { name: string; virtualHost: string; cluster?: string };
  /** Set when Envoy would have left the request hanging (see ext-proc-session.ts). */
  stalled?: string;
  /** The downstream stream would be reset after this (truncated) body. */
  reset?: boolean;
}

/** Envoy applies ImmediateResponse headers with permissive rules (ImmediateMutationChecker). */
const IMMEDIATE_RULES = { allowAllRouting: true, allowEnvoy: true, disallowSystem: false, disallowAll: false, disallowIsError: false };

export class EnvoyHarness {
  private listener: Server | undefined;

  private constructor(private readonly env: HarnessEnv) {}

  static async start(opts: EnvoyHarnessOptions): Promise<EnvoyHarness> {
    const bootstrap = loadBootstrap(opts.envoyYaml);
    const addressFor = (cluster: string): string => {
      const address = typeof opts.extProcAddress === "string" ? opts.extProcAddress : opts.extProcAddress[cluster];
      if (address === undefined) throw new Error(`no extProcAddress for ext_proc cluster "${cluster}"`);
      return address;
    };
    validateGrpcClusters(bootstrap, addressFor);
    // The ext_proc cluster's max_requests_per_connection decides when its connection is renewed.
    const maxStreams = new Map<string, number>();
    for (const c of bootstrap.clusters.values()) {
      if (c.maxRequestsPerConnection === undefined) continue;
      try {
        maxStreams.set(addressFor(c.name), c.maxRequestsPerConnection);
      } catch {
        // not an ext_proc cluster
      }
    }
    const endpoints = new Map<string, readonly string[]>();
    for (const [name, value] of Object.entries(opts.clusterEndpoints ?? {})) {
      if (!bootstrap.clusters.has(name)) throw new Error(`clusterEndpoints: no cluster "${name}" in ${opts.envoyYaml}`);
      endpoints.set(name, typeof value === "string" ? [value] : value);
    }
    const hostnames = new Set([...bootstrap.clusters.values()].flatMap((c) => c.endpoints.map((e) => e.hostname.toLowerCase())));
    const hosts = new Map<string, readonly string[]>();
    for (const [hostname, value] of Object.entries(opts.hostEndpoints ?? {})) {
      const key = hostname.toLowerCase();
      if (!hostnames.has(key)) throw new Error(`hostEndpoints: no endpoint with hostname "${hostname}" in ${opts.envoyYaml}`);
      hosts.set(key, typeof value === "string" ? [value] : value);
    }
    return new EnvoyHarness({
      bootstrap,
      channels: new ExtProcChannels((address) => maxStreams.get(address)),
      extProcAddress: addressFor,
      clusterEndpoints: endpoints,
      hostEndpoints: hosts,
      retryBackoffCapMs: opts.retryBackoffCapMs ?? 20,
    });
  }

  get bootstrap(): Bootstrap {
    return this.env.bootstrap;
  }

  async request(req: HarnessRequest): Promise<HarnessResponse> {
    const ctx = newRequestContext();
    try {
      return await this.process(req, ctx);
    } finally {
      for (const filter of ctx.filters) filter.close();
    }
  }

  /** Serves the harness over real HTTP on 127.0.0.1; returns the base URL. */
  async listen(port = 0): Promise<string> {
    if (this.listener !== undefined) throw new Error("EnvoyHarness is already listening");
    const { server, url } = await startListener((req) => this.request(req), port);
    this.listener = server;
    return url;
  }

  async close(): Promise<void> {
    const server = this.listener;
    this.listener = undefined;
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    this.env.channels.closeAll();
  }

  private async process(req: HarnessRequest, ctx: RequestContext): Promise<HarnessResponse> {
    const hcm = this.env.bootstrap.listener.hcm;
    const prepared = prepareRequest(hcm, req);
    if (!prepared.ok) return this.respond(ctx, undefined, this.localResponse(prepared.reply, ctx), prepared.reply.details);
    const state: RequestState = { headers: prepared.headers, body: prepared.body };
    // The HCM resolves (and caches) the route before the first filter runs.
    ctx.route = matchRoute(hcm.routeConfig, state.headers);
    const decoders: ExtProcFilter[] = [];
    // Response headers, once there are some (for response attributes of the downstream filters).
    const responseRef: { headers?: HeaderMap } = {};
    let result: RouterResult | undefined;
    for (const f of hcm.httpFilters) {
      if (f.kind === "router") {
        result = await new RouterFilter(this.env, ctx).run(state.headers, state.body);
        break;
      }
      if (f.kind !== "ext_proc") continue;
      const filter = createExtProcFilter(this.env, ctx, {
        role: "downstream",
        name: f.name,
        config: f.config,
        bufferLimitBytes: this.env.bootstrap.listener.bufferLimitBytes,
        facts: () => this.downstreamFacts(ctx, state.headers, responseRef.headers),
      });
      decoders.push(filter);
      const out = await filter.decode(state);
      if (out.type === "local_reply") {
        result = { type: "local_reply", reply: out.reply };
        break;
      }
      if (out.type === "continue" && out.clearRouteCache) {
        ctx.route = undefined;
        ctx.routeCleared = true;
      }
    }
    if (result === undefined) throw new Error("http_filters did not reach the router");
    let details = result.type === "local_reply" ? result.reply.details : undefined;
    let response = result.type === "local_reply" ? this.localResponse(result.reply, ctx) : result.response;
    responseRef.headers = response.headers;
    for (const filter of [...decoders].reverse()) {
      const out = await filter.encode(response);
      if (out.type === "local_reply") {
        // A local reply while encoding goes straight to the client.
        response = this.localResponse(out.reply, ctx);
        details = out.reply.details;
        break;
      }
    }
    return this.respond(ctx, state.headers, response, details);
  }

  private downstreamFacts(ctx: RequestContext, headers: HeaderMap, responseHeaders: HeaderMap | undefined): AttributeFacts {
    // Someone asking for the route after clear_route_cache makes Envoy match again.
    if (ctx.route === undefined && ctx.routeCleared) ctx.route = matchRoute(this.env.bootstrap.listener.hcm.routeConfig, headers);
    const route: RouteDecision | undefined = ctx.route;
    const cluster = route?.clusterName;
    return {
      requestHeaders: headers,
      ...(responseHeaders === undefined ? {} : { responseHeaders }),
      ...(route === undefined ? {} : { routeName: route.route.name }),
      // xds.cluster_name is only known when the routed cluster exists.
      ...(cluster !== undefined && this.env.bootstrap.clusters.has(cluster) ? { clusterName: cluster } : {}),
    };
  }

  private localResponse(reply: LocalReply, ctx: RequestContext): ResponseState {
    const headers = localReplyHeaders(reply, (h) => {
      applyHeaderMutation(h, reply.headerMutation, {
        rules: IMMEDIATE_RULES,
        replacingMessage: false,
        maxHeadersCount: this.env.bootstrap.listener.hcm.maxHeadersCount,
        maxHeadersKb: this.env.bootstrap.listener.hcm.maxRequestHeadersKb,
        onRejected: (op, header, reason) => ctx.rejectedMutations.push({ filter: "immediate_response", op, header, reason }),
        onNote: (note) => ctx.notes.push(`immediate_response: ${note}`),
      });
    });
    return { headers, chunks: [reply.body], complete: true, chunked: false };
  }

  private respond(ctx: RequestContext, requestHeaders: HeaderMap | undefined, response: ResponseState, details: string | undefined): HarnessResponse {
    finalizeResponseHeaders(this.env.bootstrap.listener.hcm, response.headers, requestHeaders);
    const body = Buffer.concat(response.chunks);
    const out: HarnessResponse = {
      status: Number(response.headers.get(":status")),
      headers: response.headers.toRecord(),
      body,
      json: () => JSON.parse(body.toString("utf8")) as unknown,
      text: () => body.toString("utf8"),
      attempts: ctx.attempts,
      extProc: ctx.extProc,
      rejectedMutations: ctx.rejectedMutations,
      dynamicMetadata: ctx.dynamicMetadata,
      notes: ctx.notes,
    };
    if (details !== undefined) out.localReplyReason = details;
    if (ctx.stalled !== undefined) out.stalled = ctx.stalled;
    if (!response.complete) out.reset = true;
    const route = ctx.route;
    if (route !== undefined) {
      out.route = { name: route.route.name, virtualHost: route.virtualHost.name };
      if (route.clusterName !== undefined) out.route.cluster = route.clusterName;
    }
    return out;
  }
}

/** Envoy refuses a config whose ext_proc names a cluster it does not have. */
function validateGrpcClusters(bootstrap: Bootstrap, addressFor: (cluster: string) => string): void {
  const filters = [
    ...bootstrap.listener.hcm.httpFilters,
    ...[...bootstrap.clusters.values()].flatMap((c) => c.upstreamFilters),
  ];
  for (const f of filters) {
    if (f.kind !== "ext_proc") continue;
    if (!bootstrap.clusters.has(f.config.grpcCluster)) {
      throw new BootstrapError(f.name, `ext_proc grpc cluster "${f.config.grpcCluster}" is not defined`);
    }
    addressFor(f.config.grpcCluster);
  }
}
