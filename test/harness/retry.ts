// Router retry decisions (route.retry_policy), after Envoy's RetryStateImpl:
// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter#x-envoy-retry-on
import { type RetryPolicyModel, parseRetryOn } from "./bootstrap-routes";
import type { HeaderMap } from "./header-map";

export type AttemptFailure =
  /** A response whose status the policy retries (`envoyRateLimited`: it carried x-envoy-ratelimited). */
  | { kind: "status"; status: number; envoyRateLimited?: boolean }
  /** Connection refused / no endpoint: what `connect-failure` covers. */
  | { kind: "connect_failure" }
  /** Disconnect or reset before response headers. */
  | { kind: "reset" }
  /** per_try_timeout / per_try_idle_timeout fired (Envoy resets the attempt: a local reset). */
  | { kind: "per_try_timeout"; timer?: "per_try_timeout" | "per_try_idle_timeout" };

export function shouldRetry(policy: RetryPolicyModel | undefined, failure: AttemptFailure): boolean {
  if (policy === undefined) return false;
  const on = policy.retryOn;
  // 5xx and gateway-error also cover resets and connect failures ("does not respond at all").
  const resetLike = on.has("5xx") || on.has("gateway-error") || on.has("reset");
  switch (failure.kind) {
    case "connect_failure":
      return on.has("connect-failure") || resetLike;
    case "reset":
    case "per_try_timeout":
      // refused-stream is an HTTP/2 REFUSED_STREAM reset, which an HTTP/1.1 upstream never sends.
      return resetLike;
    case "status": {
      // A response from an upstream Envoy's rate limiter is retried only under envoy-ratelimited.
      if (failure.envoyRateLimited === true) return on.has("envoy-ratelimited");
      const s = failure.status;
      if (on.has("5xx") && s >= 500 && s <= 599) return true;
      if (on.has("gateway-error") && (s === 502 || s === 503 || s === 504)) return true;
      if (on.has("retriable-4xx") && s === 409) return true;
      return on.has("retriable-status-codes") && policy.retriableStatusCodes.includes(s);
    }
  }
}

/**
 * Envoy's back-off for its `n`th exponential retry (1-based; rate-limited back-offs do not count)
 * is jittered: up to base * 2^(n-1), capped at max_interval. The harness uses the un-jittered upper
 * bound, but sleeps at most `capMs` (default 20 ms) so tests stay fast; `modelledMs` is what Envoy
 * could wait.
 */
export function retryBackoff(policy: RetryPolicyModel, n: number, capMs: number): { modelledMs: number; sleepMs: number } {
  const modelledMs = Math.min(policy.baseIntervalMs * 2 ** (n - 1), policy.maxIntervalMs);
  return { modelledMs, sleepMs: Math.min(modelledMs, capMs) };
}

/** absl::SimpleAtoi for unsigned values: optional surrounding whitespace, optional '+', digits. */
export function parseUnsigned(value: string | undefined): number | undefined {
  const m = value === undefined ? null : /^\s*\+?(\d+)\s*$/.exec(value);
  return m === null ? undefined : Number(m[1]);
}

/**
 * rate_limited_retry_back_off (RetryStateImpl::parseResetInterval): reset headers are tried in
 * order, only the first value of a header counts; SECONDS is a number of seconds, UNIX_TIMESTAMP
 * a time in seconds (one in the past does not parse). The first interval <= max_interval wins; a
 * longer one is discarded and the next header tried. Envoy uses it only when it is over 1 ms, with
 * jitter between the interval and 1.5x it; the harness models the lower bound.
 */
export function rateLimitedBackoffMs(policy: RetryPolicyModel, response: HeaderMap, nowMs: number): number | undefined {
  const config = policy.rateLimitedBackOff;
  if (config === undefined) return undefined;
  for (const header of config.resetHeaders) {
    const n = parseUnsigned(response.get(header.name));
    if (n === undefined) continue;
    let ms: number;
    if (header.format === "SECONDS") ms = n * 1000;
    else {
      const now = Math.floor(nowMs / 1000);
      if (n < now) continue;
      ms = (n - now) * 1000;
    }
    if (ms <= config.maxIntervalMs) return ms > 1 ? ms : undefined;
  }
  return undefined;
}

/** Retry headers the router consumes: RetryStateImpl::create removes them whatever happens. */
const CONSUMED_RETRY_HEADERS = [
  "x-envoy-retry-on",
  "x-envoy-retry-grpc-on",
  "x-envoy-max-retries",
  "x-envoy-hedge-on-per-try-timeout",
  "x-envoy-retriable-header-names",
  "x-envoy-retriable-status-codes",
  "x-envoy-upstream-rq-per-try-timeout-ms",
];

/**
 * The retry state of one request: the route's policy merged with the x-envoy-retry-on,
 * x-envoy-retriable-status-codes and x-envoy-max-retries request headers (which only a downstream
 * filter with mutation_rules.allow_envoy can set - the HCM strips clients' x-envoy-*), which are
 * then removed. x-envoy-max-retries takes precedence over num_retries, but only when some retry_on
 * condition is in effect.
 * https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter#x-envoy-max-retries
 */
export function retryStateFor(route: RetryPolicyModel | undefined, headers: HeaderMap, notes: string[]): RetryPolicyModel | undefined {
  const retryOnHeader = headers.get("x-envoy-retry-on");
  const codesHeader = headers.get("x-envoy-retriable-status-codes");
  const maxRetriesHeader = headers.get("x-envoy-max-retries");
  for (const name of CONSUMED_RETRY_HEADERS) headers.remove(name);
  if (route === undefined && retryOnHeader === undefined) return undefined;
  const base: RetryPolicyModel = route ?? {
    retryOn: new Set(),
    retriableStatusCodes: [],
    numRetries: 1,
    baseIntervalMs: 25,
    maxIntervalMs: 250,
    retryHostPredicates: [],
    priorityUpdateFrequency: 1,
    hostSelectionRetryMaxAttempts: 0,
  };
  const retryOn = new Set([...base.retryOn, ...parseRetryOn(retryOnHeader ?? "")]);
  const extraCodes = (codesHeader ?? "").split(",").flatMap((c) => {
    const n = parseUnsigned(c);
    return n === undefined ? [] : [n];
  });
  const policy: RetryPolicyModel = { ...base, retryOn, retriableStatusCodes: [...base.retriableStatusCodes, ...extraCodes] };
  const maxRetries = parseUnsigned(maxRetriesHeader);
  if (maxRetriesHeader !== undefined) {
    if (retryOn.size > 0 && maxRetries !== undefined) {
      policy.numRetries = maxRetries;
      notes.push(`router: x-envoy-max-retries ${maxRetries} overrides num_retries ${base.numRetries}`);
    } else notes.push(`router: x-envoy-max-retries "${maxRetriesHeader}" ignored`);
  }
  return retryOn.size > 0 ? policy : undefined;
}
