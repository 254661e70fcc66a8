// Router retry decisions (route.retry_policy), after Envoy's RetryStateImpl:
// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter#x-envoy-retry-on
import type { RetryPolicyModel } from "./bootstrap-routes";

export type AttemptFailure =
  | { kind: "status"; status: number }
  /** Connection refused / no endpoint: what `connect-failure` covers. */
  | { kind: "connect_failure" }
  /** Disconnect or reset before response headers. */
  | { kind: "reset" }
  /** per_try_timeout / per_try_idle_timeout fired. */
  | { kind: "per_try_timeout" };

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
      const s = failure.status;
      if (on.has("5xx") && s >= 500 && s <= 599) return true;
      if (on.has("gateway-error") && (s === 502 || s === 503 || s === 504)) return true;
      if (on.has("retriable-4xx") && s === 409) return true;
      return on.has("retriable-status-codes") && policy.retriableStatusCodes.includes(s);
    }
  }
}

/**
 * Envoy's back-off for retry `n` (1-based) is jittered exponential: up to base * 2^(n-1), capped
 * at max_interval. The harness uses the un-jittered upper bound, but sleeps at most `capMs`
 * (default 20 ms) so tests stay fast; `modelledMs` is what Envoy could wait.
 */
export function retryBackoff(policy: RetryPolicyModel, n: number, capMs: number): { modelledMs: number; sleepMs: number } {
  const modelledMs = Math.min(policy.baseIntervalMs * 2 ** (n - 1), policy.maxIntervalMs);
  return { modelledMs, sleepMs: Math.min(modelledMs, capMs) };
}
