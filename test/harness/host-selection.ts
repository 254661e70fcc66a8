// Which endpoint of a cluster each attempt goes to. Every host is taken as healthy, so the priority
// load puts everything on the lowest priority that has endpoints (Envoy's priority levels:
// https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/priority),
// and within a priority the first eligible endpoint is used (no load-balancing policy is modelled).
// Retry plugins (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/http/http_connection_management#retry-plugin-configuration):
// - envoy.retry_priorities.previous_priorities (https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto): once `update_frequency` attempts have been made,
//   and then every `update_frequency` attempts, the priorities of all attempted hosts are excluded
//   from the priority load; when that would exclude every priority, the original load is used.
// - envoy.retry_host_predicates.previous_hosts: a host already attempted is rejected and selection
//   is retried (host_selection_retry_max_attempts times); the harness picks the first host not yet
//   attempted in the chosen priority, or the first host when all were attempted.
import type { EndpointModel } from "./bootstrap";
import type { RetryPolicyModel } from "./bootstrap-routes";

const PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts";
const PREVIOUS_PRIORITIES = "envoy.retry_priorities.previous_priorities";

export class HostSelector {
  private readonly attempted: number[] = [];
  private excluded = new Set<number>();

  constructor(
    private readonly endpoints: readonly EndpointModel[],
    private readonly policy: RetryPolicyModel | undefined,
  ) {}

  /** The index (into the cluster's endpoints) for the next attempt; undefined when there are none. */
  next(): number | undefined {
    if (this.endpoints.length === 0) return undefined;
    const priorityOf = (i: number): number => this.endpoints[i]?.priority ?? 0;
    const all = this.endpoints.map((_, i) => i);
    let candidates = all;
    if (this.policy?.retryPriority === PREVIOUS_PRIORITIES && this.attempted.length > 0) {
      const frequency = this.policy.priorityUpdateFrequency;
      if (this.attempted.length < frequency) this.excluded = new Set();
      else if (this.attempted.length % frequency === 0) this.excluded = new Set(this.attempted.map(priorityOf));
      const remaining = all.filter((i) => !this.excluded.has(priorityOf(i)));
      if (remaining.length > 0) candidates = remaining;
      else this.excluded = new Set();
    }
    const best = Math.min(...candidates.map(priorityOf));
    candidates = candidates.filter((i) => priorityOf(i) === best);
    if (this.policy?.retryHostPredicates.includes(PREVIOUS_HOSTS)) {
      const fresh = candidates.filter((i) => !this.attempted.includes(i));
      if (fresh.length > 0) candidates = fresh;
    }
    const chosen = candidates[0];
    if (chosen !== undefined) this.attempted.push(chosen);
    return chosen;
  }
}
