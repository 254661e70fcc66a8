// envoy.filters.http.router: route (re)matching, cluster lookup, and the attempt loop with retries.
// Every attempt runs the cluster's upstream HTTP filters on the SAME request header map - the
// downstream one (source/common/router/upstream_request.cc hands parent_.downstreamHeaders() to the
// upstream filter chain) - so a header an upstream filter set or removed in attempt 1 is still
// set/removed in attempt 2. Each attempt gets a fresh copy of the (downstream-filtered) body.
// What the router does once per request, in decodeHeaders, before the first attempt (router.cc):
// timeouts from the route and the x-envoy-upstream-rq-(per-try-)timeout-ms headers, auto SNI/SAN
// names, x-envoy-attempt-count 1, then the retry state (which consumes the retry headers).
import { setTimeout as sleep } from "node:timers/promises";
import type { ClusterModel, EndpointModel } from "./bootstrap";
import type { RetryPolicyModel, RouteActionModel, VirtualHostModel } from "./bootstrap-routes";
import { AttemptTimers, type TimerName } from "./attempt-timers";
import type { ExtProcFilter, RequestState, ResponseState } from "./ext-proc-filter";
import type { HeaderMap } from "./header-map";
import { HostSelector } from "./host-selection";
import { type LocalReply, localReply } from "./local-reply";
import { type AttemptRecord, type HarnessEnv, type RequestContext, createExtProcFilter } from "./request-context";
import { type AttemptFailure, parseUnsigned, rateLimitedBackoffMs, retryBackoff, retryStateFor, shouldRetry } from "./retry";
import { matchRoute } from "./router";
import { type AutoTlsNames, autoTlsNames, resolveTransportSocket } from "./transport-socket";
import { type UpstreamTarget, sendUpstream, wireHeaders } from "./upstream-http";

export type RouterResult = { type: "response"; response: ResponseState } | { type: "local_reply"; reply: LocalReply };

type RouteAction = Extract<RouteActionModel, { type: "route" }>;

type AttemptOutcome =
  | { kind: "response"; response: ResponseState; status: number }
  | { kind: "connect_failure" | "reset"; error: string }
  | { kind: "timeout"; timer: TimerName }
  | { kind: "stall"; reason: string };

interface Timeouts {
  /** Route timeout over all attempts (0 = none); only reported, never armed. */
  globalMs: number;
  perTryMs?: number;
  perTryIdleMs?: number;
}

/** Everything fixed for the request before the first attempt. */
interface RequestPlan {
  action: RouteAction;
  virtualHost: VirtualHostModel;
  cluster: ClusterModel;
  routeName: string;
  policy: RetryPolicyModel | undefined;
  timeouts: Timeouts;
  autoTls: AutoTlsNames;
}

function targetOf(url: string): UpstreamTarget {
  const u = new URL(url);
  if (u.protocol !== "http:") throw new Error(`endpoint override ${url}: only http:// is modelled`);
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port || 80) };
}

function resetReply(kind: "connect_failure" | "reset", retried: boolean): LocalReply {
  const reason = kind === "connect_failure" ? "connection failure" : "connection termination";
  const prefix = retried ? "retried and the latest reset reason" : "reset reason";
  const details = kind === "connect_failure" ? "connection_failure" : "connection_termination";
  return localReply(503, `upstream connect error or disconnect/reset before headers. ${prefix}: ${reason}`, `upstream_reset_before_response_started{${details}}`);
}

/** Router::Filter::onUpstreamTimeoutAbort with the default 504 timeout response code. */
function timeoutReply(timer: TimerName): LocalReply {
  return localReply(504, "upstream request timeout", `upstream_${timer}`);
}

/** What the client gets when an attempt hangs: whichever timeout Envoy would fire first. */
function stallReply(timeouts: Timeouts, idleTimeoutMs: number | undefined): { reply: LocalReply; waitMs: number | undefined; failure?: AttemptFailure } {
  const perTry = timeouts.perTryMs ?? timeouts.perTryIdleMs;
  if (perTry !== undefined) {
    const timer: TimerName = timeouts.perTryMs !== undefined ? "per_try_timeout" : "per_try_idle_timeout";
    return { reply: timeoutReply(timer), waitMs: perTry, failure: { kind: "per_try_timeout", timer } };
  }
  if (timeouts.globalMs > 0) return { reply: localReply(504, "upstream request timeout", "upstream_response_timeout"), waitMs: timeouts.globalMs };
  return { reply: localReply(504, "stream timeout", "stream_idle_timeout"), waitMs: idleTimeoutMs };
}

/**
 * FilterUtility::finalTimeout: x-envoy-upstream-rq-timeout-ms and -per-try-timeout-ms replace the
 * route's values and are removed; a per-try timeout not below a non-zero route timeout is dropped.
 */
function finalTimeouts(action: RouteAction, headers: HeaderMap): Timeouts {
  const out: Timeouts = { globalMs: action.timeoutMs };
  const globalHeader = parseUnsigned(headers.get("x-envoy-upstream-rq-timeout-ms"));
  if (globalHeader !== undefined) out.globalMs = globalHeader;
  headers.remove("x-envoy-upstream-rq-timeout-ms");
  let perTry = action.retryPolicy?.perTryTimeoutMs;
  const perTryHeader = parseUnsigned(headers.get("x-envoy-upstream-rq-per-try-timeout-ms"));
  if (perTryHeader !== undefined) perTry = perTryHeader;
  headers.remove("x-envoy-upstream-rq-per-try-timeout-ms");
  if (perTry !== undefined && perTry > 0 && !(out.globalMs > 0 && perTry >= out.globalMs)) out.perTryMs = perTry;
  const idle = action.retryPolicy?.perTryIdleTimeoutMs;
  if (idle !== undefined) out.perTryIdleMs = idle;
  return out;
}

export class RouterFilter {
  constructor(
    private readonly env: HarnessEnv,
    private readonly ctx: RequestContext,
  ) {}

  async run(headers: HeaderMap, body: Buffer): Promise<RouterResult> {
    const ctx = this.ctx;
    // A cleared route cache is refilled when the router asks for the route, with today's headers.
    if (ctx.route === undefined && ctx.routeCleared) ctx.route = matchRoute(this.env.bootstrap.listener.hcm.routeConfig, headers);
    const decision = ctx.route;
    if (decision === undefined) return { type: "local_reply", reply: localReply(404, "", "route_not_found") };
    const action = decision.route.action;
    if (action.type === "direct_response") {
      return { type: "local_reply", reply: localReply(action.status, action.body, "direct_response") };
    }
    const cluster = decision.clusterName === undefined ? undefined : this.env.bootstrap.clusters.get(decision.clusterName);
    if (cluster === undefined) return { type: "local_reply", reply: localReply(action.clusterNotFoundCode, "", "cluster_not_found") };
    const timeouts = finalTimeouts(action, headers);
    const plan: RequestPlan = {
      action,
      virtualHost: decision.virtualHost,
      cluster,
      routeName: decision.route.name,
      timeouts,
      autoTls: autoTlsNames(cluster, headers),
      policy: retryStateFor(action.retryPolicy, headers, ctx.notes),
    };
    if (timeouts.perTryMs === undefined && action.retryPolicy?.perTryTimeoutMs !== undefined) {
      ctx.notes.push(`router: per_try_timeout ${action.retryPolicy.perTryTimeoutMs} ms ignored: not below the route timeout ${timeouts.globalMs} ms`);
    }
    if (plan.autoTls.sni !== undefined && new Set(cluster.endpoints.map((e) => e.hostname)).size > 1) {
      ctx.notes.push(`router: auto_sni uses "${plan.autoTls.sni}" (the request's host) for every endpoint of cluster ${cluster.name}, whatever its hostname`);
    }
    return this.attempts(plan, headers, body);
  }

  private async attempts(plan: RequestPlan, headers: HeaderMap, body: Buffer): Promise<RouterResult> {
    const { policy, virtualHost } = plan;
    const selector = new HostSelector(plan.cluster.endpoints, policy);
    let retriesLeft = policy?.numRetries ?? 0;
    let exponentialRetries = 0;
    let stalledMs = 0;
    let backoff: { modelledMs: number; kind: "exponential" | "rate_limited" } | undefined;
    let timeoutRetry = false;
    // Router::Filter::modify_headers_: on every response the router hands on, proxied or local.
    const attemptCountHeader = (attempt: number): Array<[string, string]> =>
      virtualHost.includeAttemptCountInResponse ? [["x-envoy-attempt-count", String(attempt)]] : [];
    const giveUp = (attempt: number, reply: LocalReply): RouterResult => ({
      type: "local_reply",
      reply: { ...reply, routerHeaders: attemptCountHeader(attempt) },
    });
    /** Whether a retry is granted (RetryStateImpl::shouldRetry), and its back-off. */
    const retryGranted = (failure: AttemptFailure, response?: HeaderMap): boolean => {
      if (!shouldRetry(policy, failure) || policy === undefined || retriesLeft === 0) return false;
      retriesLeft--;
      timeoutRetry = failure.kind === "per_try_timeout";
      const rateLimited = response === undefined ? undefined : rateLimitedBackoffMs(policy, response, Date.now());
      if (rateLimited !== undefined) backoff = { modelledMs: rateLimited, kind: "rate_limited" };
      else backoff = { modelledMs: retryBackoff(policy, ++exponentialRetries, Infinity).modelledMs, kind: "exponential" };
      return true;
    };

    for (let attempt = 1; ; attempt++) {
      const waited = backoff;
      backoff = undefined;
      if (waited !== undefined) await sleep(Math.min(waited.modelledMs, this.env.retryBackoffCapMs));
      // Router::Filter::decodeHeaders (attempt 1) and doRetry (later attempts).
      if (virtualHost.includeRequestAttemptCount) headers.set("x-envoy-attempt-count", String(attempt));
      if (attempt > 1 && virtualHost.includeIsTimeoutRetryHeader) headers.set("x-envoy-is-timeout-retry", String(timeoutRetry));
      const index = selector.next();
      const record = this.newRecord(plan, index, headers);
      if (waited !== undefined) {
        record.backoffMs = waited.modelledMs;
        record.backoff = waited.kind;
      }
      const outcome = await this.attempt(plan, attempt, index, record, headers, body);
      if (outcome.kind === "response") {
        const failure: AttemptFailure = { kind: "status", status: outcome.status };
        if (outcome.response.headers.has("x-envoy-ratelimited")) failure.envoyRateLimited = true;
        if (shouldRetry(policy, failure)) record.failure = failure;
        if (retryGranted(failure, outcome.response.headers)) continue;
        for (const [name, value] of attemptCountHeader(attempt)) outcome.response.headers.set(name, value);
        return { type: "response", response: outcome.response };
      }
      if (outcome.kind === "stall") {
        const stall = stallReply(plan.timeouts, plan.action.idleTimeoutMs);
        stalledMs += stall.waitMs ?? 0;
        const waitedText = stall.waitMs === undefined ? "with no timeout configured (forever)" : `${stalledMs} ms in total`;
        this.ctx.stalled = `${outcome.reason}; Envoy would wait ${waitedText}`;
        if (stall.failure !== undefined) record.failure = stall.failure;
        if (stall.failure !== undefined && retryGranted(stall.failure)) continue;
        return giveUp(attempt, stall.reply);
      }
      if (outcome.kind === "timeout") {
        const failure: AttemptFailure = { kind: "per_try_timeout", timer: outcome.timer };
        record.failure = failure;
        if (retryGranted(failure)) continue;
        return giveUp(attempt, timeoutReply(outcome.timer));
      }
      const failure: AttemptFailure = { kind: outcome.kind };
      record.failure = failure;
      if (retryGranted(failure)) continue;
      return giveUp(attempt, resetReply(outcome.kind, attempt > 1));
    }
  }

  private newRecord(plan: RequestPlan, index: number | undefined, headers: HeaderMap): AttemptRecord {
    const endpoint = index === undefined ? undefined : plan.cluster.endpoints[index];
    const record: AttemptRecord = { cluster: plan.cluster.name, requestHeaders: {}, path: headers.get(":path") ?? "/", body: Buffer.alloc(0) };
    if (endpoint !== undefined) {
      record.endpointHostname = endpoint.hostname;
      record.priority = endpoint.priority;
      record.hostMetadata = endpoint.filterMetadata;
    }
    record.transportSocket = resolveTransportSocket(plan.cluster, endpoint, plan.autoTls);
    this.ctx.attempts.push(record);
    return record;
  }

  /** clusterEndpoints for the cluster, else hostEndpoints for the endpoint's hostname. */
  private overrideUrl(cluster: ClusterModel, index: number | undefined, endpoint: EndpointModel | undefined): string | undefined {
    const byCluster = this.env.clusterEndpoints.get(cluster.name);
    if (byCluster !== undefined) return byCluster[index ?? 0] ?? byCluster[0];
    if (endpoint === undefined || index === undefined) return undefined;
    const byHost = this.env.hostEndpoints.get(endpoint.hostname.toLowerCase());
    if (byHost === undefined) return undefined;
    const nth = cluster.endpoints.slice(0, index).filter((e) => e.hostname.toLowerCase() === endpoint.hostname.toLowerCase()).length;
    return byHost[nth] ?? byHost[0];
  }

  private async attempt(
    plan: RequestPlan,
    attempt: number,
    index: number | undefined,
    record: AttemptRecord,
    headers: HeaderMap,
    body: Buffer,
  ): Promise<AttemptOutcome> {
    const { cluster, action } = plan;
    const endpoint = index === undefined ? undefined : cluster.endpoints[index];
    // auto_host_rewrite writes the endpoint's hostname into the shared (downstream) header map.
    if (action.autoHostRewrite && endpoint !== undefined && endpoint.hostname !== "") headers.setPseudo(":authority", endpoint.hostname);
    const state: RequestState = { headers, body: Buffer.from(body) };
    record.body = state.body;
    const responseRef: { headers?: HeaderMap } = {};
    const filters: ExtProcFilter[] = [];
    for (const f of cluster.upstreamFilters) {
      if (f.kind !== "ext_proc") continue;
      filters.push(
        createExtProcFilter(this.env, this.ctx, {
          role: "upstream",
          name: f.name,
          config: f.config,
          cluster: cluster.name,
          attempt,
          bufferLimitBytes: cluster.bufferLimitBytes,
          facts: () => ({
            requestHeaders: headers,
            ...(responseRef.headers === undefined ? {} : { responseHeaders: responseRef.headers }),
            routeName: plan.routeName,
            clusterName: cluster.name,
            ...(endpoint === undefined ? {} : { upstreamHostMetadata: endpoint.filterMetadata }),
          }),
        }),
      );
    }
    const timers = new AttemptTimers(plan.timeouts.perTryMs, plan.timeouts.perTryIdleMs);
    const timedOut = (timer: TimerName): AttemptOutcome => {
      record.error = `${timer}: no response headers in time; the upstream request was reset`;
      for (const filter of filters) filter.abort(`attempt reset by ${timer}`);
      return { kind: "timeout", timer };
    };
    try {
      for (const filter of filters) {
        const out = await timers.race(filter.decode(state));
        if ("fired" in out) return timedOut(out.fired);
        if (out.value.type === "stall") {
          record.error = `stalled: ${out.value.reason}`;
          return { kind: "stall", reason: out.value.reason };
        }
      }
      const request = {
        method: headers.get(":method") ?? "GET",
        path: headers.get(":path") ?? "/",
        authority: headers.get(":authority") ?? "",
        headers,
        body: state.body,
      };
      record.path = request.path;
      record.body = state.body;
      record.requestHeaders = wireHeaders(request);
      const declared = headers.get("content-length");
      if (declared !== undefined && Number(declared) !== state.body.length) {
        // The harness always sends the right length; Envoy's codec would send the header as-is.
        this.ctx.notes.push(`attempt ${attempt}: content-length header ${declared} but the body has ${state.body.length} bytes (Envoy would send the header unchanged)`);
      }
      const url = this.overrideUrl(cluster, index, endpoint);
      if (url === undefined) {
        record.error = `connect_failure: no endpoint override for ${endpoint?.hostname || `cluster ${cluster.name}`}`;
        return { kind: "connect_failure", error: record.error };
      }
      record.endpoint = url;
      const sent = await timers.race(sendUpstream(targetOf(url), request, { signal: timers.signal, onHeaders: () => timers.stop() }));
      if ("fired" in sent) return timedOut(sent.fired);
      const upstream = sent.value;
      if (upstream.kind !== "response") {
        record.error = `${upstream.kind}: ${upstream.error}`;
        return { kind: upstream.kind, error: upstream.error };
      }
      const response: ResponseState = {
        headers: upstream.headers,
        chunks: upstream.chunks,
        complete: upstream.complete,
        chunked: upstream.chunked,
      };
      responseRef.headers = response.headers;
      record.status = Number(upstream.headers.get(":status"));
      if (!upstream.complete) record.error = "reset: connection closed before the end of the response body";
      // Response path of the upstream filters (reverse order), before the router sees the headers.
      for (const filter of [...filters].reverse()) {
        const out = await filter.encode(response);
        if (out.type === "stall") return { kind: "stall", reason: out.reason };
      }
      return { kind: "response", response, status: Number(response.headers.get(":status")) };
    } finally {
      timers.stop();
      // The attempt's upstream request is destroyed (a retry, or the response is complete).
      for (const filter of filters) filter.close();
    }
  }
}
