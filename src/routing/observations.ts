// What this replica has seen of each target: attempts in flight, latency, failures and cooldowns.
// The upstream phase feeds it (one ext_proc stream per attempt: start, response headers, end) and
// the router phase reads it when it ranks and filters a route's chain.
//
// No correctness depends on it (the signed context carries every decision between the phases, and
// Envoy's retries walk the chain whatever a replica believes), so a replica that has seen nothing
// simply routes in chain order. With Redis, replicas also share what they see
// (shared-observations.ts): failures are counted across replicas, cooldowns reach every replica,
// and the other replicas' in-flight counts and latencies are merged into stats(). That exchange is
// asynchronous: stats() never waits for Redis, and without it each replica decides from its own view.
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

/** What the other replicas have seen of one target (their sum or sample-weighted average). */
export interface SharedTargetView {
  latencyMs: number | undefined;
  samples: number;
  inFlight: number;
}

/** One target of this replica's snapshot, as published: [latency ms or null, samples, in flight]. */
export type LocalSnapshot = Record<string, [number | null, number, number]>;

/** Where this replica reports failures and cooldowns for the other replicas (shared-observations.ts). */
export interface ObservationSink {
  failed(targetId: string, at: number, settings: CooldownSettings): void;
  cooledUntil(targetId: string, until: number): void;
}

/**
 * Caps how much one side's sample count weighs when local and shared latencies are merged, so a
 * long-lived replica does not outvote the others' recent view forever.
 */
export const LATENCY_WEIGHT_CAP = 50;

export function mergeLatency(a: number | undefined, aSamples: number, b: number | undefined, bSamples: number): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const wa = Math.min(aSamples, LATENCY_WEIGHT_CAP);
  const wb = Math.min(bSamples, LATENCY_WEIGHT_CAP);
  return wa + wb === 0 ? a : (a * wa + b * wb) / (wa + wb);
}

export class TargetObservations {
  readonly #entries = new Map<string, Entry>();
  /** The other replicas' view, replaced wholesale by each exchange with Redis. */
  #others: ReadonlyMap<string, SharedTargetView> = new Map();
  /** Cooldowns any replica entered (unix ms), kept until they end even if Redis goes away. */
  readonly #sharedCooldowns = new Map<string, number>();
  #sink: ObservationSink | undefined;

  constructor(
    private readonly settings: () => CooldownSettings,
    private readonly now: () => number = Date.now,
  ) {}

  stats(targetId: string): TargetStats {
    const e = this.#entries.get(targetId);
    const o = this.#others.get(targetId);
    const now = this.now();
    let until = e?.cooldownUntil;
    const shared = this.#sharedCooldowns.get(targetId);
    if (shared !== undefined && (until === undefined || shared > until)) until = shared;
    return {
      latencyMs: mergeLatency(e?.latencyMs, e?.samples ?? 0, o?.latencyMs, o?.samples ?? 0),
      samples: (e?.samples ?? 0) + (o?.samples ?? 0),
      inFlight: (e?.inFlight ?? 0) + (o?.inFlight ?? 0),
      cooldownUntil: until !== undefined && until > now ? until : undefined,
      lastFailureAt: e?.lastFailureAt,
    };
  }

  /** Reports this replica's failures and cooldowns to `sink` from now on. */
  share(sink: ObservationSink | undefined): void {
    this.#sink = sink;
  }

  /** The other replicas' in-flight counts and latencies (empty: none known, e.g. Redis is away). */
  setOthers(view: ReadonlyMap<string, SharedTargetView>): void {
    this.#others = view;
  }

  /**
   * A cooldown some replica entered (read from Redis). Returns whether it is news here: the target
   * was not cooling down on this replica's own account or from an earlier exchange.
   */
  sharedCooldown(targetId: string, until: number): boolean {
    const now = this.now();
    if (!(until > now)) return false;
    const known = Math.max(this.#sharedCooldowns.get(targetId) ?? 0, this.#entries.get(targetId)?.cooldownUntil ?? 0);
    if (until > (this.#sharedCooldowns.get(targetId) ?? 0)) this.#sharedCooldowns.set(targetId, until);
    return known <= now;
  }

  /** This replica's own view per target, for the other replicas (called once per exchange, which is also when ended shared cooldowns are forgotten). */
  snapshot(): LocalSnapshot {
    const out: LocalSnapshot = {};
    for (const [id, e] of this.#entries) {
      if (e.samples === 0 && e.inFlight === 0) continue;
      out[id] = [e.latencyMs ?? null, e.samples, e.inFlight];
    }
    for (const [id, until] of this.#sharedCooldowns) if (until <= this.now()) this.#sharedCooldowns.delete(id);
    return out;
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
      const effect = this.#coolUntil(e, now + Math.min(o.retryAfterMs, s.maxRetryAfterMs));
      this.#sink?.cooledUntil(targetId, e.cooldownUntil!);
      return effect;
    }
    // Counted here and, with a sink, across replicas too: whichever reaches the threshold first
    // starts the cooldown (the shared count only ever starts it sooner).
    this.#sink?.failed(targetId, now, s);
    const effect = this.#failed(e, now, s);
    if (effect.cooldownEntered && effect.cooldownUntil !== undefined) this.#sink?.cooledUntil(targetId, effect.cooldownUntil);
    return effect;
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
