// per_try_timeout and per_try_idle_timeout of one attempt, as real timers.
// Envoy arms both when the connection pool is ready and the whole request has reached the router
// (UpstreamRequest::setupPerTryTimeout); the pool is requested before the upstream HTTP filters
// run, so the harness arms them when the attempt starts. On expiry Envoy resets the upstream
// request. Envoy keeps per_try_timeout running until the response is complete and re-arms
// per_try_idle_timeout on every response frame; the harness stops both at the response headers.
// https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto#envoy-v3-api-field-config-route-v3-retrypolicy-per-try-idle-timeout

export type TimerName = "per_try_timeout" | "per_try_idle_timeout";

export type Raced<T> = { fired: TimerName } | { value: T };

export class AttemptTimers {
  /** Aborted when a timer fires: the attempt's upstream request is reset. */
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly handles: NodeJS.Timeout[] = [];
  private readonly fired: Promise<TimerName>;
  private firedName: TimerName | undefined;

  constructor(perTryMs: number | undefined, perTryIdleMs: number | undefined) {
    this.signal = this.controller.signal;
    this.fired = new Promise((resolve) => {
      const arm = (name: TimerName, ms: number | undefined): void => {
        if (ms === undefined) return;
        this.handles.push(
          setTimeout(() => {
            this.firedName = name;
            this.stop();
            resolve(name);
            this.controller.abort();
          }, ms),
        );
      };
      // Both fire at the same moment before response headers: per_try_timeout is checked first.
      arm("per_try_timeout", perTryMs);
      arm("per_try_idle_timeout", perTryIdleMs);
    });
  }

  get expired(): TimerName | undefined {
    return this.firedName;
  }

  stop(): void {
    for (const h of this.handles) clearTimeout(h);
    this.handles.length = 0;
  }

  /** Waits for `work` unless a timer fires first; the loser is left to settle on its own. */
  async race<T>(work: Promise<T>): Promise<Raced<T>> {
    work.catch(() => undefined);
    const out = await Promise.race([work.then((value): Raced<T> => ({ value })), this.fired.then((fired): Raced<T> => ({ fired }))]);
    const fired = this.firedName;
    return fired !== undefined ? { fired } : out;
  }
}
