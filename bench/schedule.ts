// Open-loop load at a fixed rate: request i is due at start + i / rate, computed from the start, and
// starts then whether or not earlier ones have finished (as independent clients would). Its latency
// is taken from when it was due, not from when the driver got round to starting it: a driver that
// waited for replies before sending more would leave out exactly the waits a slow server causes
// (coordinated omission, as wrk2 and HdrHistogram describe it). How late the driver itself started
// each request is kept apart ("start lag"), so that a driver that cannot keep its own schedule is
// seen as such. Arrivals are evenly spaced (no Poisson burstiness).
//
// Requests in flight are capped: past the cap a due request is not started and counts as dropped,
// so that a server slower than the rate ends the run saturated instead of growing a queue without
// bound in both processes.
import { performance } from "node:perf_hooks";

export interface RateRun {
  perSecond: number;
  /** Requests due in this first part run but are not recorded (the server warms up at the rate). */
  warmupMs: number;
  /** The measured window, after the warm-up. */
  durationMs: number;
  maxInFlight: number;
  /** After the last due request, how long to wait for those still in flight (then counted as failed). */
  drainTimeoutMs: number;
}

export interface RateResult {
  offered: number;
  /** Requests due in the measured window. */
  scheduled: number;
  /** Of those: answered (latencies), failed (rejected, or still in flight after the drain), not started (dropped). */
  latencies: number[];
  failed: number;
  dropped: number;
  /** The first few failures' messages. */
  errors: string[];
  /** Requests (warm-up ones included) finished within the measured window, per second of it. */
  achieved: number;
  /** Requests finished from the window's start until the run drained: what the server's CPU over that time served. */
  servedSinceWindow: number;
  /** How late the driver started measured requests, ms (sorted ascending). */
  startLag: Float64Array;
}

export interface RateHooks<T> {
  /** Called once when the first measured request is due, before it starts. */
  onWindowStart?: () => void;
  /** Called as each request settles (warm-up ones too): its index, ms from due to settled, and its value or error. */
  onSettled?: (i: number, latencyMs: number, outcome: { value: T } | { error: unknown }) => void;
}

const MAX_ERRORS = 5;

/** Nearest-rank percentile of an ascending array (as measure.ts's percentile). */
export function sortedPercentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/** Runs `fire(i)` on the schedule of `run`; resolves once every started request settled (or the drain timed out). */
export function runAtRate<T>(run: RateRun, fire: (i: number) => Promise<T>, hooks: RateHooks<T> = {}): Promise<RateResult> {
  const interval = 1000 / run.perSecond;
  const firstMeasured = Math.ceil(run.warmupMs / interval);
  const total = firstMeasured + Math.max(1, Math.round(run.durationMs / interval));
  const measured = total - firstMeasured;
  const out: RateResult = {
    offered: run.perSecond,
    scheduled: measured,
    latencies: [],
    failed: 0,
    dropped: 0,
    errors: [],
    achieved: 0,
    servedSinceWindow: 0,
    startLag: new Float64Array(measured),
  };
  const t0 = performance.now();
  const windowStart = t0 + firstMeasured * interval;
  const windowEnd = windowStart + measured * interval;
  let inWindow = 0;
  let next = 0;
  let inFlight = 0;
  let lags = 0;
  const settledFlags = new Uint8Array(total);
  return new Promise((resolve) => {
    let drainTimer: NodeJS.Timeout | undefined;
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      if (drainTimer !== undefined) clearTimeout(drainTimer);
      out.achieved = inWindow / ((windowEnd - windowStart) / 1000);
      out.startLag = out.startLag.subarray(0, lags).sort();
      resolve(out);
    };
    const settle = (i: number, due: number, outcome: { value: T } | { error: unknown }) => {
      if (finished || settledFlags[i] === 1) return;
      settledFlags[i] = 1;
      inFlight--;
      const now = performance.now();
      if (now >= windowStart) out.servedSinceWindow++;
      if (now >= windowStart && now <= windowEnd) inWindow++;
      if (i >= firstMeasured) {
        if ("value" in outcome) out.latencies.push(now - due);
        else {
          out.failed++;
          const { error } = outcome;
          if (out.errors.length < MAX_ERRORS) out.errors.push(error instanceof Error ? error.message : String(error));
        }
      }
      hooks.onSettled?.(i, now - due, outcome);
      if (next >= total && inFlight === 0) done();
    };
    const tick = () => {
      const now = performance.now();
      while (next < total && t0 + next * interval <= now) {
        const i = next++;
        const due = t0 + i * interval;
        if (i === firstMeasured) hooks.onWindowStart?.();
        if (inFlight >= run.maxInFlight) {
          settledFlags[i] = 1;
          if (i >= firstMeasured) out.dropped++;
          continue;
        }
        if (i >= firstMeasured) out.startLag[lags++] = now - due;
        inFlight++;
        let p: Promise<T>;
        try {
          p = fire(i);
        } catch (err) {
          p = Promise.reject(err);
        }
        p.then(
          (value) => settle(i, due, { value }),
          (error: unknown) => settle(i, due, { error }),
        );
      }
      if (next < total) {
        setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
        return;
      }
      if (inFlight === 0) {
        done();
        return;
      }
      drainTimer = setTimeout(() => {
        // Whatever measured is still in flight failed; settlements after this change nothing.
        for (let i = firstMeasured; i < total; i++) if (settledFlags[i] === 0) out.failed++;
        if (out.errors.length < MAX_ERRORS) out.errors.push(`no answer within ${run.drainTimeoutMs} ms of the last start`);
        done();
      }, run.drainTimeoutMs);
    };
    tick();
  });
}
