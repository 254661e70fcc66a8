// What this replica has seen of each target: attempts in flight, latency, failures and cooldowns.
// The upstream phase feeds it (one ext_proc stream per attempt: start, response headers, end) and
// the router phase reads it when it ranks and filters a route's chain.
//
// It is per replica on purpose: no correctness depends on it (the signed context carries every
// decision between the phases, and Envoy's retries walk the chain whatever a replica believes), so a
// replica that has seen nothing simply routes in chain order. Sharing observations between
// replicas through Redis is a later addition (see the README's "Cooldowns" section).
import type { CooldownSettings } from "../policy/compile";
import type { TargetStats } from "./strategy-types";

/** Weight of the newest latency sample in the moving average. */
const EWMA_ALPHA = 0.2;

/** Statuses that count as the target failing (not the request being wrong). */
export function isFailureStatus(status: number): boolean {
  return status === 429 || status === 529 || (status >= 500 && status <= 599);
}

interface Entry {
  latencyMs: number | undefined;
  samples: number;
  inFlight: number;
  /** Times (unix ms) of recent failures, oldest first, pruned to the window. */
  failures: number[];
  cooldownUntil: number | undefined;
  lastFailureAt: number | undefined;
}

export interface ResponseObservation {
  status: number;
  /** From the attempt's request headers to its response headers. */
  latencyMs: number;
  /** retry-after / retry-after-ms of a 429 or 503, in ms. */
  retryAfterMs: number | undefined;
}

/** What an observation changed, for logs and (later) metrics. */
export interface ObservationEffect {
  cooldownEntered: boolean;
  cooldownUntil: number | undefined;
}

const NONE: ObservationEffect = { cooldownEntered: false, cooldownUntil: undefined };

export class TargetObservations {
  readonly #entries = new Map<string, Entry>();

  constructor(
    private readonly settings: () => CooldownSettings,
    private readonly now: () => number = Date.now,
  ) {}

  stats(targetId: string): TargetStats {
    const e = this.#entries.get(targetId);
    if (e === undefined) return { latencyMs: undefined, samples: 0, inFlight: 0, cooldownUntil: undefined, lastFailureAt: undefined };
    const now = this.now();
    return {
      latencyMs: e.latencyMs,
      samples: e.samples,
      inFlight: e.inFlight,
      cooldownUntil: e.cooldownUntil !== undefined && e.cooldownUntil > now ? e.cooldownUntil : undefined,
      lastFailureAt: e.lastFailureAt,
    };
  }

  attemptStarted(targetId: string): void {
    this.#entry(targetId).inFlight++;
  }

  attemptEnded(targetId: string): void {
    const e = this.#entry(targetId);
    if (e.inFlight > 0) e.inFlight--;
  }

  responded(targetId: string, o: ResponseObservation): ObservationEffect {
    const e = this.#entry(targetId);
    if (!isFailureStatus(o.status)) {
      if (o.status < 400) {
        e.latencyMs = e.latencyMs === undefined ? o.latencyMs : e.latencyMs + EWMA_ALPHA * (o.latencyMs - e.latencyMs);
        e.samples++;
      }
      return NONE;
    }
    const now = this.now();
    const s = this.settings();
    if (o.status === 429 && o.retryAfterMs !== undefined && o.retryAfterMs > 0) {
      // The provider said how long: believe it (capped), without waiting for more failures.
      e.lastFailureAt = now;
      return this.#coolUntil(e, now + Math.min(o.retryAfterMs, s.maxRetryAfterMs));
    }
    return this.#failed(e, now, s);
  }

  #failed(e: Entry, now: number, s: CooldownSettings): ObservationEffect {
    e.lastFailureAt = now;
    const from = now - s.windowMs;
    let drop = 0;
    while (drop < e.failures.length && e.failures[drop]! <= from) drop++;
    if (drop > 0) e.failures.splice(0, drop);
    e.failures.push(now);
    if (e.failures.length < s.failures) return NONE;
    e.failures.length = 0;
    return this.#coolUntil(e, now + s.durationMs);
  }

  #coolUntil(e: Entry, until: number): ObservationEffect {
    const entered = e.cooldownUntil === undefined || e.cooldownUntil <= this.now();
    if (e.cooldownUntil === undefined || until > e.cooldownUntil) e.cooldownUntil = until;
    return { cooldownEntered: entered, cooldownUntil: e.cooldownUntil };
  }

  #entry(id: string): Entry {
    let e = this.#entries.get(id);
    if (e === undefined) {
      e = { latencyMs: undefined, samples: 0, inFlight: 0, failures: [], cooldownUntil: undefined, lastFailureAt: undefined };
      this.#entries.set(id, e);
    }
    return e;
  }
}

/** retry-after-ms (OpenAI, Azure) or retry-after in seconds; HTTP dates are ignored. */
export function retryAfterMs(header: (name: string) => string | undefined): number | undefined {
  const ms = header("retry-after-ms");
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const s = header("retry-after");
  if (s !== undefined && /^\d+(\.\d+)?$/.test(s.trim())) return Math.ceil(Number(s) * 1000);
  return undefined;
}
