// envoy.filters.http.router: route (re)matching, cluster lookup, and the attempt loop with retries.
// Every attempt runs the cluster's upstream HTTP filters on the SAME request header map - the
// downstream one (source/common/router/upstream_request.cc hands parent_.downstreamHeaders() to the
// upstream filter chain) - so a header an upstream filter set or removed in attempt 1 is still
// set/removed in attempt 2. Each attempt gets a fresh copy of the (downstream-filtered) body.
import { setTimeout as sleep } from "node:timers/promises";
import type { ClusterModel, EndpointModel } from "./bootstrap";
import type { RetryPolicyModel, RouteActionModel } from "./bootstrap-routes";
import type { ExtProcFilter, RequestState, ResponseState } from "./ext-proc-filter";
import type { HeaderMap } from "./header-map";
import { type LocalReply, localReply } from "./local-reply";
import { type AttemptRecord, type HarnessEnv, type RequestContext, createExtProcFilter } from "./request-context";
import { type AttemptFailure, retryBackoff, shouldRetry } from "./retry";
import { matchRoute } from "./router";
import { type UpstreamTarget, sendUpstream, wireHeaders } from "./upstream-http";

export type RouterResult = { type: "response"; response: ResponseState } | { type: "local_reply"; reply: LocalReply };

type RouteAction = Extract<RouteActionModel, { type: "route" }>;

type AttemptOutcome =
  | { kind: "response"; response: ResponseState; status: number }
  | { kind: "connect_failure" | "reset"; error: string }
  | { kind: "stall"; reason: string };

const PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts";
const PREVIOUS_PRIORITIES = "envoy.retry_priorities.previous_priorities";

/** First endpoint of the best priority, skipping what retry_priority / retry_host_predicate exclude. */
function pickEndpoint(endpoints: readonly EndpointModel[], policy: RetryPolicyModel | undefined, triedHosts: Set<number>, triedPriorities: Set<number>): number | undefined {
  let candidates = endpoints.map((_, i) => i);
  if (candidates.length === 0) return undefined;
  const priorityOf = (i: number): number => endpoints[i]?.priority ?? 0;
  if (policy?.retryPriority === PREVIOUS_PRIORITIES) {
    const remaining = candidates.filter((i) => !triedPriorities.has(priorityOf(i)));
    if (remaining.length > 0) candidates = remaining; // all tried: Envoy starts over
  }
  const best = Math.min(...candidates.map(priorityOf));
  candidates = candidates.filter((i) => priorityOf(i) === best);
  if (policy?.retryHostPredicates.includes(PREVIOUS_HOSTS)) {
    const fresh = candidates.filter((i) => !triedHosts.has(i));
    if (fresh.length > 0) candidates = fresh;
  }
  return candidates[0];
}

function targetOf(url: string): UpstreamTarget {
  const u = new URL(url);
  if (u.protocol !== "http:") throw new Error(`cluster endpoint override ${url}: only http:// is modelled`);
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port || 80) };
}

function resetReply(kind: "connect_failure" | "reset", retried: boolean): LocalReply {
  const reason = kind === "connect_failure" ? "connection failure" : "connection termination";
  const prefix = retried ? "retried and the latest reset reason" : "reset reason";
  const details = kind === "connect_failure" ? "connection_failure" : "connection_termination";
  return localReply(503, `upstream connect error or disconnect/reset before headers. ${prefix}: ${reason}`, `upstream_reset_before_response_started{${details}}`);
}

/** What the client gets when an attempt hangs: whichever timeout Envoy would fire first. */
function stallReply(action: RouteAction): { reply: LocalReply; waitMs: number | undefined; failure?: AttemptFailure } {
  const p = action.retryPolicy;
  const perTry = p?.perTryTimeoutMs ?? p?.perTryIdleTimeoutMs;
  if (perTry !== undefined) {
    const details = p?.perTryTimeoutMs !== undefined ? "upstream_per_try_timeout" : "upstream_per_try_idle_timeout";
    return { reply: localReply(504, "upstream request timeout", details), waitMs: perTry, failure: { kind: "per_try_timeout" } };
  }
  if (action.timeoutMs > 0) return { reply: localReply(504, "upstream request timeout", "upstream_response_timeout"), waitMs: action.timeoutMs };
  return { reply: localReply(504, "stream timeout", "stream_idle_timeout"), waitMs: action.idleTimeoutMs };
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
    return this.attempts(action, cluster, decision.route.name, headers, body);
  }

  private async attempts(action: RouteAction, cluster: ClusterModel, routeName: string, headers: HeaderMap, body: Buffer): Promise<RouterResult> {
    const policy = action.retryPolicy;
    const maxAttempts = 1 + (policy?.numRetries ?? 0);
    const triedHosts = new Set<number>();
    const triedPriorities = new Set<number>();
    let stalledMs = 0;
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1 && policy !== undefined) await sleep(retryBackoff(policy, attempt - 1, this.env.retryBackoffCapMs).sleepMs);
      const index = pickEndpoint(cluster.endpoints, policy, triedHosts, triedPriorities);
      const endpoint = index === undefined ? undefined : cluster.endpoints[index];
      if (index !== undefined && endpoint !== undefined) {
        triedHosts.add(index);
        triedPriorities.add(endpoint.priority);
      }
      const outcome = await this.attempt(action, cluster, routeName, attempt, index, endpoint, headers, body);
      const canRetry = attempt < maxAttempts;
      if (outcome.kind === "response") {
        if (canRetry && shouldRetry(policy, { kind: "status", status: outcome.status })) continue;
        return { type: "response", response: outcome.response };
      }
      if (outcome.kind === "stall") {
        const stall = stallReply(action);
        stalledMs += stall.waitMs ?? 0;
        const waited = stall.waitMs === undefined ? "with no timeout configured (forever)" : `${stalledMs} ms in total`;
        this.ctx.stalled = `${outcome.reason}; Envoy would wait ${waited}`;
        if (canRetry && stall.failure !== undefined && shouldRetry(policy, stall.failure)) continue;
        return { type: "local_reply", reply: stall.reply };
      }
      if (canRetry && shouldRetry(policy, { kind: outcome.kind })) continue;
      return { type: "local_reply", reply: resetReply(outcome.kind, attempt > 1) };
    }
  }

  private async attempt(
    action: RouteAction,
    cluster: ClusterModel,
    routeName: string,
    attempt: number,
    index: number | undefined,
    endpoint: EndpointModel | undefined,
    headers: HeaderMap,
    body: Buffer,
  ): Promise<AttemptOutcome> {
    // auto_host_rewrite writes the endpoint's hostname into the shared (downstream) header map.
    if (action.autoHostRewrite && endpoint !== undefined && endpoint.hostname !== "") headers.setPseudo(":authority", endpoint.hostname);
    const state: RequestState = { headers, body: Buffer.from(body) };
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
            routeName,
            clusterName: cluster.name,
            ...(endpoint === undefined ? {} : { upstreamHostMetadata: endpoint.filterMetadata }),
          }),
        }),
      );
    }
    const record: AttemptRecord = { cluster: cluster.name, requestHeaders: {}, path: headers.get(":path") ?? "/", body: state.body };
    this.ctx.attempts.push(record);
    try {
      for (const filter of filters) {
        const out = await filter.decode(state);
        if (out.type === "stall") {
          record.error = `stalled: ${out.reason}`;
          return { kind: "stall", reason: out.reason };
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
      const urls = this.env.clusterEndpoints.get(cluster.name);
      const url = urls === undefined ? undefined : (urls[index ?? 0] ?? urls[0]);
      if (url === undefined) {
        record.error = "connect_failure: no endpoint override for this cluster";
        return { kind: "connect_failure", error: record.error };
      }
      record.endpoint = url;
      const upstream = await sendUpstream(targetOf(url), request);
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
      record.status = Number(upstream.headers.get(":status"));
      if (!upstream.complete) record.error = "reset: connection closed before the end of the response body";
      // Response path of the upstream filters (reverse order), before the router sees the headers.
      for (const filter of [...filters].reverse()) {
        const out = await filter.encode(response);
        if (out.type === "stall") return { kind: "stall", reason: out.reason };
      }
      return { kind: "response", response, status: Number(response.headers.get(":status")) };
    } finally {
      // The attempt's upstream request is destroyed (a retry, or the response is complete).
      for (const filter of filters) filter.close();
    }
  }
}
