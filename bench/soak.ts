// `npm run soak`: the service under mixed traffic for SOAK_MINUTES (default 10) at half its
// capacity, open loop (bench/schedule.ts), checking that nothing fails and that its memory stays
// flat. The traffic (bench/soak-mix.ts): JSON and 200-chunk streamed answers, a consumer whose
// quota refuses a known share with 429, attempts failing with 503 that Envoy retries on the next
// target (fallbacks), and a cached route with repeated prompts (hits and misses), quotas and cache
// in Redis (REDIS_URL, else redis://127.0.0.1:6379; a key prefix per run, deleted at the end).
//
// Capacity: the same mix closed loop (32 in flight) on a first service child for
// SOAK_CAPACITY_SECONDS (default 10) after a 3 s warm-up, its consumer ci never refused (a
// conservative figure: refusals are cheap); SOAK_CAPACITY=<req/s> gives it, SOAK_RATE=<req/s> the
// soak's rate directly. The soak then runs on a fresh child, started with --expose-gc: every few
// seconds (at most 5 s, 30 samples at least) the driver asks it over IPC for its RSS and heapUsed
// right after a full GC, so that heapUsed is live data rather than wherever the young generation's
// sawtooth happened to be. Memory after the warm-up (the first minute, or the first 20 % of a
// shorter run) must stay within 10 % of its mean, for RSS and for the heap.
//
// Writes bench/results/soak.md and soak-memory.png; exits non-zero when a check fails.
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { writeChartPng, type Chart } from "./chart";
import { ServerChild, type MemorySample } from "./child";
import { EnvoyLikeClient } from "./envoy-client";
import { fmt, percentile } from "./measure";
import { chainOrders, SOAK_LIMIT_RULE, soakPolicy } from "./policy";
import { BenchRedis } from "./redis";
import { runAtRate, sortedPercentile, type RateResult } from "./schedule";
import { CACHED_PROMPTS, FAILED_ATTEMPT_STATUS, FALLBACK_EVERY, KINDS, MIX, share, SoakTraffic, type Kind, type Result, type Sent } from "./soak-mix";

const envNumber = (name: string): number | undefined => {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && Number.isFinite(v) && v > 0 ? v : undefined;
};

const MINUTES = envNumber("SOAK_MINUTES") ?? 10;
const RUN_MS = MINUTES * 60_000;
/** Memory before this is warm-up: the first minute, at most a fifth of the run. */
const WARMUP_MS = Math.min(60_000, 0.2 * RUN_MS);
const SAMPLE_MS = Math.min(5000, RUN_MS / 30);
const MEMORY_TOLERANCE = 0.1;
/**
 * ci's rule admits this share of what ci sends, once its burst is spent. The token bucket starts
 * full (a minute's worth), so refusals start only when ci has sent that much more than the refill:
 * after 20 s at a quarter (60 s at a half, too late for a one-minute check).
 */
const LIMITED_ADMITTED_SHARE = 0.25;
const CAPACITY_CONCURRENCY = 32;
const CAPACITY_WARMUP_MS = 3000;
const CAPACITY_MS = 1000 * (envNumber("SOAK_CAPACITY_SECONDS") ?? 10);
/** A request not answered by then fails (its streams are cancelled). */
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_IN_FLIGHT = 1000;
/** The soak kept its rate when at least this share of it was answered within the run. */
const KEPT_UP_SHARE = 0.95;
/** Rows of the over-time table. */
const INTERVALS = 10;
const RESULTS_DIR = path.resolve(__dirname, "../../bench/results");
const MiB = 2 ** 20;

interface Tally {
  requests: number;
  results: Record<Result, number>;
  fallbacks: number;
  waited: number;
  failed: number;
  latencies: number[];
}

const newTally = (): Tally => ({ requests: 0, results: { ok: 0, refused: 0, hit: 0, miss: 0 }, fallbacks: 0, waited: 0, failed: 0, latencies: [] });

function count(t: Tally, latencyMs: number, sent: Sent | undefined): void {
  t.requests++;
  if (sent === undefined) {
    t.failed++;
    return;
  }
  t.latencies.push(latencyMs);
  t.results[sent.result]++;
  if (sent.fallback) t.fallbacks++;
  if (sent.waited) t.waited++;
}

function merged(tallies: Iterable<Tally>): Tally {
  const out = newTally();
  for (const t of tallies) {
    out.requests += t.requests;
    out.fallbacks += t.fallbacks;
    out.waited += t.waited;
    out.failed += t.failed;
    for (const r of Object.keys(out.results) as Result[]) out.results[r] += t.results[r];
    for (const l of t.latencies) out.latencies.push(l);
  }
  return out;
}

const redisArgs = (redis: BenchRedis) => ["--redis-url", redis.url, "--redis-prefix", redis.prefix];

/** Requests/s of the mix, closed loop, on a child of its own (see the top of this file). */
async function measureCapacity(redis: BenchRedis, chains: Map<string, string[]>): Promise<number> {
  const child = new ServerChild("capacity", "server-service.js", ["--soak-limited-rpm", String(1_000_000_000), ...redisArgs(redis)]);
  let client: EnvoyLikeClient | undefined;
  try {
    client = new EnvoyLikeClient(`127.0.0.1:${await child.port}`);
    const traffic = new SoakTraffic(chains);
    const from = performance.now() + CAPACITY_WARMUP_MS;
    const until = from + CAPACITY_MS;
    let next = 0;
    let done = 0;
    const worker = async (c: EnvoyLikeClient) => {
      while (performance.now() < until) {
        await traffic.send(c, next++);
        const t = performance.now();
        if (t >= from && t <= until) done++;
      }
    };
    await Promise.all(Array.from({ length: CAPACITY_CONCURRENCY }, () => worker(client!)));
    return done / (CAPACITY_MS / 1000);
  } finally {
    client?.close();
    await child.stop();
  }
}

interface Sample {
  /** ms since the soak started. */
  t: number;
  m: MemorySample;
}

interface Soak {
  rate: number;
  limitedRpm: number;
  r: RateResult;
  byKind: Map<Kind, Tally>;
  intervals: Tally[];
  samples: Sample[];
  cpuUsPerRequest: number;
  failures: Map<string, number>;
}

async function soak(redis: BenchRedis, chains: Map<string, string[]>, rate: number): Promise<Soak> {
  const limitedRpm = Math.max(1, Math.round(60 * rate * share("limited") * LIMITED_ADMITTED_SHARE));
  const child = new ServerChild("soak", "server-service.js", ["--soak-limited-rpm", String(limitedRpm), ...redisArgs(redis)], ["--expose-gc"]);
  let client: EnvoyLikeClient | undefined;
  try {
    client = new EnvoyLikeClient(`127.0.0.1:${await child.port}`);
    const traffic = new SoakTraffic(chains);
    const byKind = new Map<Kind, Tally>(KINDS.map((k) => [k, newTally()]));
    const intervals = Array.from({ length: INTERVALS }, newTally);
    const failures = new Map<string, number>();
    const total = Math.max(1, Math.round(RUN_MS / (1000 / rate)));
    const samples: Sample[] = [];
    const t0 = performance.now();
    const sample = async () => {
      const m = await child.memory(true);
      samples.push({ t: performance.now() - t0, m });
    };
    await sample();
    const sampler = setInterval(() => void sample().catch(() => undefined), SAMPLE_MS);
    const progress = setInterval(() => {
      const all = merged(byKind.values());
      const last = samples[samples.length - 1]?.m;
      console.error(
        `  soak ${fmt((performance.now() - t0) / 60_000, 1)} min: ${all.requests} requests, ${all.failed} failed, ${all.results.refused} 429, ${all.fallbacks} fallbacks, ${all.results.hit} hits; RSS ${fmt((last?.rss ?? NaN) / MiB, 1)} MiB, heap ${fmt((last?.heapUsed ?? NaN) / MiB, 1)} MiB`,
      );
    }, Math.max(10_000, RUN_MS / 10));
    const cpu0 = await child.cpu();
    const c = client;
    let r: RateResult;
    try {
      r = await runAtRate(
        { perSecond: rate, warmupMs: 0, durationMs: RUN_MS, maxInFlight: MAX_IN_FLIGHT, drainTimeoutMs: REQUEST_TIMEOUT_MS + 5000 },
        (i) => traffic.send(c, i, AbortSignal.timeout(REQUEST_TIMEOUT_MS)),
        {
          onSettled: (i, latencyMs, outcome) => {
            const sent = "value" in outcome ? outcome.value : undefined;
            count(byKind.get(traffic.kindOf(i))!, latencyMs, sent);
            count(intervals[Math.min(INTERVALS - 1, Math.floor((i * INTERVALS) / total))]!, latencyMs, sent);
            if ("error" in outcome) {
              const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
              failures.set(message, (failures.get(message) ?? 0) + 1);
            }
          },
        },
      );
    } finally {
      clearInterval(sampler);
      clearInterval(progress);
    }
    const cpuUs = (await child.cpu()) - cpu0;
    await sample();
    return { rate, limitedRpm, r, byKind, intervals, samples, cpuUsPerRequest: cpuUs / Math.max(1, r.servedSinceWindow), failures };
  } finally {
    client?.close();
    await child.stop();
  }
}

interface MemoryStats {
  mean: number;
  min: number;
  max: number;
  /** Largest distance from the mean, as a share of it. */
  deviation: number;
  /** Least-squares slope, bytes per minute. */
  trend: number;
  samples: number;
}

function memoryStats(samples: Sample[], of: (m: MemorySample) => number): MemoryStats | undefined {
  const post = samples.filter((s) => s.t >= WARMUP_MS);
  if (post.length < 3) return undefined;
  const ys = post.map((s) => of(s.m));
  const xs = post.map((s) => s.t / 60_000);
  const mean = ys.reduce((a, b) => a + b, 0) / ys.length;
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sxy = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - mean), 0);
  const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return {
    mean,
    min: Math.min(...ys),
    max: Math.max(...ys),
    deviation: Math.max(...ys.map((y) => Math.abs(y - mean))) / mean,
    trend: sxx > 0 ? sxy / sxx : 0,
    samples: ys.length,
  };
}

const MEMORY_SERIES: Array<{ name: string; of: (m: MemorySample) => number }> = [
  { name: "RSS", of: (m) => m.rss },
  { name: "heap used (after GC)", of: (m) => m.heapUsed },
];

function tallyCells(t: Tally): string {
  return `${t.requests} | ${t.results.refused} | ${t.fallbacks} | ${t.results.hit} | ${t.results.miss} | ${t.failed} | ${fmt(percentile(t.latencies, 50), 2)} | ${fmt(percentile(t.latencies, 99), 2)}`;
}

interface Verdict {
  pass: boolean;
  text: string;
}

/**
 * The share of ci's requests its rule refuses over the run: a bucket of `rpm` tokens, full at the
 * start and refilled at rpm per minute, against ci sending at a steady rate.
 */
function expectedRefusedShare(rpm: number, rate: number): number {
  const sent = rate * share("limited") * (RUN_MS / 1000);
  return Math.max(0, 1 - (rpm + (rpm * RUN_MS) / 60_000) / sent);
}

function report(s: Soak, capacity: Capacity, redis: BenchRedis, print: (line?: string) => void): Verdict[] {
  const cpus = os.cpus();
  const all = merged(s.byKind.values());
  const limited = s.byKind.get("limited")!;
  const gcRan = s.samples.every((x) => x.m.gcRan);
  print("# llm-router soak");
  print();
  print(`- date: ${new Date().toISOString()}`);
  print(`- node ${process.version}, ${os.platform()} ${os.release()} ${os.arch()}; cpu: ${cpus[0]?.model.trim() ?? "unknown"}, ${cpus.length} cores, ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM`);
  const capacityText = capacity.rate === undefined ? capacity.how : `${fmt(capacity.rate, 0)} requests/s of the mix (${capacity.how}); half of it:`;
  print(`- capacity: ${capacityText} the soak ran at ${fmt(s.rate, 1)} requests/s, open loop, for ${fmt(MINUTES, 1)} min`);
  print(
    `- mix, per ${KINDS.reduce((n, k) => n + MIX[k], 0)} requests: ${MIX.json} JSON (1 KiB, model smart), ${MIX.stream} streams (200 chunks), ${MIX.limited} from consumer ci (rule ${SOAK_LIMIT_RULE}: ${s.limitedRpm} requests/min, a quarter of what ci sends), ${MIX.cached} on the cached route (${CACHED_PROMPTS} prompts in turn, answers kept 30 s); every ${FALLBACK_EVERY}th request on smart has its first attempt answered ${FAILED_ATTEMPT_STATUS} and is retried on the next target`,
  );
  print(`- quotas and the cache in Redis (${redis.url}, key prefix ${redis.prefix}, deleted at the end)`);
  print(
    `- memory: the service child's RSS and heapUsed every ${fmt(SAMPLE_MS / 1000, 1)} s over IPC, ${gcRan ? "each right after a full GC (--expose-gc)" : "WITHOUT a GC first (--expose-gc missing)"}; the first ${fmt(WARMUP_MS / 1000, 0)} s are warm-up`,
  );
  print(`- service CPU: ${fmt(s.cpuUsPerRequest, 0)} µs per request over the soak (the forced GCs included)`);
  print();
  print("Latency is from each request's scheduled start to its router stream's OK status, client side. A request fails on a gRPC error or an answer the driver cannot validate.");
  print();
  print("| Kind | Requests | 429 | Fallbacks | Cache hits | Cache misses | Failed | p50 ms | p99 ms |");
  print("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const k of KINDS) print(`| ${k} | ${tallyCells(s.byKind.get(k)!)} |`);
  print(`| all | ${tallyCells(all)} |`);
  print();
  print("Over time (memory: the last sample of each interval):");
  print();
  print("| Minutes | Requests | 429 | Fallbacks | Cache hits | Cache misses | Failed | p50 ms | p99 ms | RSS MiB | Heap used MiB |");
  print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  const step = MINUTES / INTERVALS;
  const digits = step >= 1 ? 0 : step >= 0.1 ? 1 : 2;
  s.intervals.forEach((t, n) => {
    const [a, b] = [n * step, (n + 1) * step];
    const last = [...s.samples].reverse().find((x) => x.t <= b * 60_000)?.m;
    print(`| ${fmt(a, digits)}-${fmt(b, digits)} | ${tallyCells(t)} | ${fmt((last?.rss ?? NaN) / MiB, 1)} | ${fmt((last?.heapUsed ?? NaN) / MiB, 1)} |`);
  });
  print();
  print(`Memory after the warm-up (${fmt(WARMUP_MS / 1000, 0)} s):`);
  print();
  print("| | Samples | Mean MiB | Min MiB | Max MiB | Max deviation from the mean | Trend MiB/min | Within 10 % |");
  print("|---|---:|---:|---:|---:|---:|---:|---|");
  const verdicts: Verdict[] = [];
  for (const { name, of } of MEMORY_SERIES) {
    const m = memoryStats(s.samples, of);
    if (m === undefined) {
      print(`| ${name} | too few samples | | | | | | FAIL |`);
      verdicts.push({ pass: false, text: `${name}: too few samples after the warm-up to judge` });
      continue;
    }
    const pass = m.deviation <= MEMORY_TOLERANCE;
    print(`| ${name} | ${m.samples} | ${fmt(m.mean / MiB, 1)} | ${fmt(m.min / MiB, 1)} | ${fmt(m.max / MiB, 1)} | ${fmt(100 * m.deviation, 1)} % | ${fmt(m.trend / MiB, 2)} | ${pass ? "PASS" : "FAIL"} |`);
    verdicts.push({ pass, text: `${name} flat within ${MEMORY_TOLERANCE * 100} % after the warm-up: at most ${fmt(100 * m.deviation, 1)} % from its mean of ${fmt(m.mean / MiB, 1)} MiB` });
  }
  const failed = s.r.failed;
  verdicts.unshift(
    { pass: failed === 0, text: `${failed} failed streams of ${s.r.scheduled - s.r.dropped} sent` },
    {
      pass: s.r.dropped === 0 && s.r.achieved >= KEPT_UP_SHARE * s.rate,
      text: `the service kept up: ${fmt(s.r.achieved, 1)} requests/s answered within the run of ${fmt(s.rate, 1)} sent (at least ${KEPT_UP_SHARE * 100} %), ${s.r.dropped} not sent (${MAX_IN_FLIGHT} in flight); the driver's start lag p99 ${fmt(sortedPercentile(s.r.startLag, 99), 2)} ms`,
    },
    {
      pass: all.results.refused > 0,
      text: `429s seen: ${all.results.refused} (${fmt((100 * limited.results.refused) / Math.max(1, limited.requests), 1)} % of ci's requests; the rule should refuse ${fmt(100 * expectedRefusedShare(s.limitedRpm, s.rate), 1)} % over the run: a full bucket of ${s.limitedRpm} at the start, then ${s.limitedRpm} a minute)`,
    },
    { pass: all.fallbacks > 0, text: `fallbacks seen: ${all.fallbacks}` },
    { pass: all.results.hit > 0, text: `cache hits seen: ${all.results.hit} (misses ${all.results.miss}, of which coalesced ${all.waited})` },
  );
  print();
  print("Checks:");
  print();
  for (const v of verdicts) print(`- ${v.pass ? "PASS" : "FAIL"}: ${v.text}`);
  if (s.failures.size > 0) {
    print();
    print("Failures (first 10 kinds):");
    print();
    for (const [message, n] of [...s.failures].slice(0, 10)) print(`- ${n} x ${message.replace(/\s+/g, " ").slice(0, 300)}`);
  }
  print();
  print("Chart: soak-memory.png (memory over time).");
  return verdicts;
}

function memoryChart(s: Soak): Chart {
  const at = (x: Sample) => x.t / 60_000;
  const mib = (f: (m: MemorySample) => number) => s.samples.map((x) => ({ x: at(x), y: f(x.m) / MiB }));
  const bands = MEMORY_SERIES.flatMap(({ of }, n) => {
    const m = memoryStats(s.samples, of);
    const color = n === 0 ? "rgba(31,119,180,0.12)" : "rgba(214,39,40,0.12)";
    return m === undefined ? [] : [{ y0: (m.mean * (1 - MEMORY_TOLERANCE)) / MiB, y1: (m.mean * (1 + MEMORY_TOLERANCE)) / MiB, color, x0: WARMUP_MS / 60_000 }];
  });
  return {
    title: "llm-router soak: service memory over time",
    subtitle: `${fmt(s.rate, 1)} requests/s of mixed traffic for ${fmt(MINUTES, 1)} min; sampled every ${fmt(SAMPLE_MS / 1000, 1)} s after a full GC`,
    panels: [
      {
        title: "service child process",
        x: { label: "minutes", min: 0, max: MINUTES },
        y: { label: "MiB", min: 0 },
        regions: [{ x0: 0, x1: WARMUP_MS / 60_000, color: "#eeeeee", label: "warm-up" }],
        bands,
        series: [
          { name: "RSS", color: "#1f77b4", markers: false, points: mib((m) => m.rss) },
          { name: "heap total", color: "#2ca02c", dashed: true, markers: false, points: mib((m) => m.heapTotal) },
          { name: "heap used (after GC)", color: "#d62728", markers: false, points: mib((m) => m.heapUsed) },
        ],
      },
    ],
    notes: ["Shaded bands: ±10 % around the post-warm-up mean of RSS (blue) and of heap used (red). Tables: bench/results/soak.md."],
  };
}

/** The mix's capacity, requests/s (undefined when SOAK_RATE gave the soak's rate), and where it comes from. */
interface Capacity {
  rate: number | undefined;
  how: string;
}

async function main(): Promise<void> {
  const redis = await BenchRedis.connect();
  if (typeof redis === "string") throw new Error(`the soak keeps quotas and the cache in Redis: ${redis}`);
  try {
    const chains = chainOrders(soakPolicy(1));
    const given = envNumber("SOAK_RATE");
    let capacity: Capacity;
    if (given !== undefined) capacity = { rate: undefined, how: "not measured (SOAK_RATE given);" };
    else {
      const known = envNumber("SOAK_CAPACITY");
      if (known !== undefined) capacity = { rate: known, how: "SOAK_CAPACITY given" };
      else {
        console.error(`measuring capacity: the mix, ${CAPACITY_CONCURRENCY} in flight, ${CAPACITY_MS / 1000} s after ${CAPACITY_WARMUP_MS / 1000} s warm-up`);
        capacity = { rate: await measureCapacity(redis, chains), how: `measured: closed loop, ${CAPACITY_CONCURRENCY} in flight, ${CAPACITY_MS / 1000} s, consumer ci never refused` };
        await redis.dropKeys();
      }
    }
    const rate = given ?? capacity.rate! / 2;
    console.error(`capacity ${fmt(capacity.rate ?? NaN, 0)} requests/s; soaking at ${fmt(rate, 1)} requests/s for ${MINUTES} min`);
    const result = await soak(redis, chains, rate);
    const lines: string[] = [];
    const verdicts = report(result, capacity, redis, (line = "") => {
      console.log(line);
      lines.push(line);
    });
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(path.join(RESULTS_DIR, "soak.md"), `${lines.join("\n")}\n`);
    writeChartPng(memoryChart(result), path.join(RESULTS_DIR, "soak-memory.png"));
    console.log();
    console.log(`written to ${path.relative(process.cwd(), path.join(RESULTS_DIR, "soak.md"))} and soak-memory.png`);
    if (verdicts.some((v) => !v.pass)) {
      console.log("SOAK FAILED");
      process.exitCode = 1;
    } else console.log("SOAK PASSED");
  } finally {
    await redis.dropKeys();
    redis.close();
  }
}

main().then(
  () => setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref(),
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 2000).unref();
  },
);
