// Case counts for the property-based fuzz suites (test/fuzz-*.test.ts). Each suite plans at least
// FUZZ_PLAN[suite] generated cases at FUZZ_SCALE=1; together the plans are at least FUZZ_MIN_CASES,
// and each suite's last test checks that its properties ran what they planned (counted as they run,
// not assumed). FUZZ_SCALE (env, default 1) multiplies every count: 0.1 for a quick local run, 10
// for a nightly one. FUZZ_SEED pins fast-check's seed to replay a failure (a failing property also
// prints its seed and path).
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { it } from "node:test";
import type fc from "fast-check";

/** The promise of the production-readiness issue: at least this many generated cases per CI run. */
export const FUZZ_MIN_CASES = 100_000;

/** Cases each suite plans at least, at FUZZ_SCALE=1. */
export const FUZZ_PLAN = {
  body: 33_300,
  sse: 26_000,
  headers: 14_000,
  policy: 9_000,
  translate: 24_000,
  stream: 600,
} as const;

export type FuzzArea = keyof typeof FUZZ_PLAN;

/** No single generated case may take this long: a case that does is a hang in the making (super-linear work). */
export const SLOW_CASE_MS = 2_000;

function envNumber(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

export const FUZZ_SCALE = envNumber("FUZZ_SCALE") ?? 1;
const FUZZ_SEED = envNumber("FUZZ_SEED");

/** One suite's tally: what its properties plan and what they actually ran. */
export class FuzzSuite {
  #planned = 0;
  #scaled = 0;
  #executed = 0;
  #slowestMs = 0;
  readonly #start = performance.now();

  constructor(readonly area: FuzzArea) {}

  /**
   * fast-check parameters for a property of `base` cases at scale 1. Call it once per property: the
   * base counts towards the suite's plan.
   */
  params<T>(base: number, extra: fc.Parameters<T> = {}): fc.Parameters<T> {
    const numRuns = Math.max(1, Math.round(base * FUZZ_SCALE));
    this.#planned += base;
    this.#scaled += numRuns;
    // The failing assertion's message goes into the report: node:test prints no error cause.
    return { includeErrorInReport: true, ...extra, numRuns, ...(FUZZ_SEED === undefined ? {} : { seed: FUZZ_SEED }) };
  }

  /** Counts one executed case and times it. */
  tick(ms: number): void {
    this.#executed++;
    if (ms > this.#slowestMs) this.#slowestMs = ms;
  }

  /** A synchronous predicate that counts its executions and fails a case slower than SLOW_CASE_MS. */
  counted<A extends unknown[]>(predicate: (...args: A) => boolean | void): (...args: A) => boolean | void {
    return (...args: A) => {
      const t0 = performance.now();
      const r = predicate(...args);
      const ms = performance.now() - t0;
      this.tick(ms);
      assert.ok(ms < SLOW_CASE_MS, `one case took ${ms.toFixed(0)} ms`);
      return r;
    };
  }

  /** The asynchronous form of counted(). */
  countedAsync<A extends unknown[]>(predicate: (...args: A) => Promise<boolean | void>, slowMs = SLOW_CASE_MS): (...args: A) => Promise<boolean | void> {
    return async (...args: A) => {
      const t0 = performance.now();
      const r = await predicate(...args);
      const ms = performance.now() - t0;
      this.tick(ms);
      assert.ok(ms < slowMs, `one case took ${ms.toFixed(0)} ms`);
      return r;
    };
  }

  /** The suite's last test: it ran its plan, and the plans together keep the promise. */
  summary(): void {
    it(`ran at least its planned ${FUZZ_PLAN[this.area].toLocaleString("en")} cases x FUZZ_SCALE ${FUZZ_SCALE} (all suites: ${totalPlanned().toLocaleString("en")})`, (t) => {
      assert.ok(totalPlanned() >= FUZZ_MIN_CASES, `the fuzz suites plan ${totalPlanned()} cases, fewer than ${FUZZ_MIN_CASES}`);
      // A floor, not an exact count: suites that run per translation pair grow with the registry.
      assert.ok(this.#planned >= FUZZ_PLAN[this.area], `the suite's properties plan ${this.#planned} cases, fewer than FUZZ_PLAN.${this.area}`);
      assert.ok(this.#executed >= this.#scaled, `executed ${this.#executed} of ${this.#scaled} cases`);
      const seconds = (performance.now() - this.#start) / 1000;
      t.diagnostic(`fuzz ${this.area}: ${this.#executed} cases (planned ${this.#planned} x ${FUZZ_SCALE}) in ${seconds.toFixed(1)} s, slowest case ${this.#slowestMs.toFixed(0)} ms`);
    });
  }
}

export function totalPlanned(): number {
  return Object.values(FUZZ_PLAN).reduce((a, b) => a + b, 0);
}
