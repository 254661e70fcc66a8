// The open-loop section of `npm run bench`: the service and the do-nothing server at fixed request
// rates (bench/schedule.ts: arrivals on a schedule, latency from each request's due time), per
// workload and rate: achieved rate, p50/p99/p99.9 of the whole ext_proc exchange, the service's
// added latency over the do-nothing server at the same percentile, server CPU per request (the
// child's process.cpuUsage over IPC), and whether the server kept up. A markdown table and a chart
// of latency against rate (bench/results/open-loop.md, latency-vs-rate.png).
//
// Percentiles are exact (nearest rank over every measured request): a run keeps at most rate x
// duration latencies (20,000 numbers at 2,000/s for 10 s), so sorting arrays costs nothing worth a
// histogram library and loses no precision in the tail.
import type { Chart, Panel, Series } from "./chart";
import type { Flow, RequestCase } from "./envoy-client";
import { fmt, percentile, type Server } from "./measure";
import { runAtRate, sortedPercentile, type RateResult, type RateRun } from "./schedule";

/** What the schedule drives: one request of the workload, and the server's CPU so far. */
export interface RateTarget {
  fire(): Promise<unknown>;
  /** The server's CPU time so far (all its processes), µs. */
  cpuUs(): Promise<number>;
}

export interface OpenLoopWorkload {
  name: string;
  /** Offered rates, requests/s, ascending. */
  rates: number[];
  /** Sets up the clients for this workload (the do-nothing server's routing template). */
  before: () => void;
  targets: Record<ServerRole, RateTarget>;
}

/** A workload on the bench's server children, through the Envoy-like client. */
export function childTargets(servers: Record<ServerRole, Server>, flow: Flow, c: RequestCase): Record<ServerRole, RateTarget> {
  const target = (server: Server): RateTarget => ({ fire: () => server.client.request(flow, c), cpuUs: () => server.child.cpu() });
  return { service: target(servers.service), "do-nothing": target(servers["do-nothing"]) };
}

export interface OpenLoopSettings {
  warmupMs: number;
  durationMs: number;
  maxInFlight: number;
  drainTimeoutMs: number;
  /** A p99 start lag above this marks the driver as behind its own schedule. */
  lagLimitMs: number;
}

export type ServerRole = "service" | "do-nothing";

export interface OpenLoopRow {
  workload: string;
  rate: number;
  server: ServerRole;
  r: RateResult;
  /** Server child CPU per request served, µs. */
  serverCpuUs: number;
  /** This process's (the Envoy-like client's) CPU per request served, µs. */
  driverCpuUs: number;
}

/** Achieved at least this share of the offered rate (and none dropped or failed): the server kept up. */
const KEPT_UP_SHARE = 0.95;
const PERCENTILES = [50, 99, 99.9] as const;

const numberList = (raw: string | undefined, fallback: number[]): number[] => {
  const list = (raw ?? "")
    .split(",")
    .map((v) => Number(v.trim()))
    .filter((v) => Number.isFinite(v) && v > 0);
  return list.length > 0 ? list.sort((a, b) => a - b) : fallback;
};

const envNumber = (name: string, fallback: number): number => {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && Number.isFinite(v) && v > 0 ? v : fallback;
};

/**
 * The knobs, from the environment: OPEN_LOOP_RATES (JSON, default 500,1000,2000),
 * OPEN_LOOP_STREAM_RATES (default 50,100,200: a 200-chunk stream is ~200 ext_proc messages, and
 * the service completes ~140 of them per second on the 2-core development machine, so 500/s and up
 * would only show three saturated runs), OPEN_LOOP_WORKERS_RATES and OPEN_LOOP_WORKERS_STREAM_RATES
 * (`serve --workers 2`, bench/open-loop-workers.ts: default 500,1000,1500,2000 and 100,200),
 * OPEN_LOOP_SECONDS (measured, default 10 x BENCH_SCALE),
 * OPEN_LOOP_WARMUP_SECONDS (default 2, scaled down with BENCH_SCALE < 1), OPEN_LOOP_MAX_IN_FLIGHT
 * (default 1000).
 */
export function openLoopFromEnv(scale: number): { jsonRates: number[]; streamRates: number[]; workersJsonRates: number[]; workersStreamRates: number[]; settings: OpenLoopSettings } {
  return {
    jsonRates: numberList(process.env.OPEN_LOOP_RATES, [500, 1000, 2000]),
    streamRates: numberList(process.env.OPEN_LOOP_STREAM_RATES, [50, 100, 200]),
    workersJsonRates: numberList(process.env.OPEN_LOOP_WORKERS_RATES, [500, 1000, 1500, 2000]),
    workersStreamRates: numberList(process.env.OPEN_LOOP_WORKERS_STREAM_RATES, [100, 200]),
    settings: {
      durationMs: 1000 * envNumber("OPEN_LOOP_SECONDS", 10 * scale),
      warmupMs: 1000 * envNumber("OPEN_LOOP_WARMUP_SECONDS", 2 * Math.min(1, scale)),
      maxInFlight: Math.round(envNumber("OPEN_LOOP_MAX_IN_FLIGHT", 1000)),
      drainTimeoutMs: 60_000,
      lagLimitMs: 5,
    },
  };
}

async function measureOne(target: RateTarget, rate: number, s: OpenLoopSettings): Promise<Omit<OpenLoopRow, "workload" | "server">> {
  const run: RateRun = { perSecond: rate, warmupMs: s.warmupMs, durationMs: s.durationMs, maxInFlight: s.maxInFlight, drainTimeoutMs: s.drainTimeoutMs };
  let cpu0: Promise<number> | undefined;
  let driver0: NodeJS.CpuUsage | undefined;
  const r = await runAtRate(run, () => target.fire(), {
    onWindowStart: () => {
      cpu0 = target.cpuUs();
      driver0 = process.cpuUsage();
    },
  });
  const driver = process.cpuUsage(driver0);
  const cpu = (await target.cpuUs()) - (await (cpu0 ?? target.cpuUs()));
  const served = Math.max(1, r.servedSinceWindow);
  return { rate, r, serverCpuUs: cpu / served, driverCpuUs: (driver.user + driver.system) / served };
}

/** Every workload at every rate on both servers; the first server alternates from rate to rate. */
export async function measureOpenLoop(workloads: OpenLoopWorkload[], s: OpenLoopSettings): Promise<OpenLoopRow[]> {
  const rows: OpenLoopRow[] = [];
  for (const w of workloads) {
    w.before();
    for (const [k, rate] of w.rates.entries()) {
      const order: ServerRole[] = ["do-nothing", "service"];
      if (k % 2 === 1) order.reverse();
      for (const role of order) {
        const m = await measureOne(w.targets[role], rate, s);
        rows.push({ workload: w.name, server: role, ...m });
        console.error(`  open loop: ${w.name}, ${rate}/s, ${role}: p99 ${fmt(percentile(m.r.latencies, 99), 2)} ms, achieved ${fmt(m.r.achieved, 0)}/s${m.r.dropped > 0 ? `, ${m.r.dropped} dropped` : ""}`);
      }
    }
  }
  return rows;
}

export function keptUp(r: RateResult): boolean {
  return r.dropped === 0 && r.failed === 0 && r.achieved >= KEPT_UP_SHARE * r.offered;
}

function keptUpText(r: RateResult): string {
  if (keptUp(r)) return "yes";
  const why: string[] = [];
  if (r.dropped > 0) why.push(`${r.dropped} dropped`);
  if (r.failed > 0) why.push(`${r.failed} failed`);
  if (r.achieved < KEPT_UP_SHARE * r.offered) why.push(`${fmt((100 * r.achieved) / r.offered, 0)} % of offered`);
  return `no (${why.join(", ")})`;
}

const pct = (r: RateResult, p: number) => percentile(r.latencies, p);
const lagP99 = (r: RateResult) => sortedPercentile(r.startLag, 99);

export function printOpenLoop(rows: OpenLoopRow[], s: OpenLoopSettings, print: (line?: string) => void): void {
  print(
    `Open loop: requests start on a fixed schedule (request i at start + i / rate, evenly spaced) whatever earlier ones do, as independent clients would. Latency runs from when a request was due to its router stream's OK status (the whole ext_proc exchange, the upstream stream inside it), so a server that falls behind is charged for the wait (no coordinated omission). Per workload, rate and server: ${fmt(s.warmupMs / 1000, 1)} s at the rate as warm-up, then ${fmt(s.durationMs / 1000, 1)} s measured; the servers take turns. Answered: the measured requests answered (the percentiles' sample; p99.9 needs a thousand or more). Achieved: requests finished per second of the measured window. Kept up: achieved at least ${KEPT_UP_SHARE * 100} % of offered, none failed, none dropped (at most ${s.maxInFlight} requests in flight: past that a due request is not sent). Where requests were dropped the percentiles cover only those answered (the ones that found room), so they understate. Added: the service minus the do-nothing server at the same rate and percentile, where both kept up ("saturated" otherwise: the difference between two queues says nothing). Server CPU: the child's, from the window's start until the run drained, per request finished meanwhile; driver CPU: this process's (the Envoy-like client; for the \`serve --workers\` rows the raw driver, bench/raw-driver.ts, which costs a fraction of it, and both servers run as a node:cluster primary and workers, their CPU summed). Start lag: how late the driver started requests (p99); over ${s.lagLimitMs} ms (⚠) the driver itself was behind schedule, so part of the latency is the driver's.`,
  );
  print();
  print("| Workload | Offered req/s | Server | Answered | Achieved req/s | Kept up | p50 ms | p99 ms | p99.9 ms | Added p50 / p99 / p99.9 ms | Server CPU µs/req | Driver CPU µs/req | Start lag p99 ms |");
  print("|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const row of rows) {
    const { r } = row;
    let added = "";
    if (row.server === "service") {
      const base = rows.find((o) => o.workload === row.workload && o.rate === row.rate && o.server === "do-nothing");
      if (base !== undefined) added = keptUp(r) && keptUp(base.r) ? PERCENTILES.map((p) => fmt(pct(r, p) - pct(base.r, p), 2)).join(" / ") : "saturated";
    }
    const lag = lagP99(r);
    print(
      `| ${row.workload} | ${fmt(r.offered, 0)} | ${row.server} | ${r.latencies.length} | ${fmt(r.achieved, 0)} | ${keptUpText(r)} | ${PERCENTILES.map((p) => fmt(pct(r, p), 2)).join(" | ")} | ${added} | ${fmt(row.serverCpuUs, 0)} | ${fmt(row.driverCpuUs, 0)} | ${fmt(lag, 2)}${lag > s.lagLimitMs ? " ⚠" : ""} |`,
    );
  }
  const errors = rows.flatMap((row) => row.r.errors.map((e) => `${row.workload}, ${row.rate}/s, ${row.server}: ${e}`));
  if (errors.length > 0) {
    print();
    for (const e of errors.slice(0, 10)) print(`- failed: ${e}`);
  }
}

const COLORS: Record<(typeof PERCENTILES)[number], string> = { 50: "#1f77b4", 99: "#ff7f0e", 99.9: "#d62728" };

/** Latency against offered rate: one panel per workload, log-log; hollow markers where the server did not keep up. */
export function openLoopChart(rows: OpenLoopRow[], s: OpenLoopSettings): Chart {
  const workloads = [...new Set(rows.map((r) => r.workload))];
  const panels: Panel[] = workloads.map((w) => {
    const series: Series[] = [];
    for (const role of ["service", "do-nothing"] as const) {
      const mine = rows.filter((r) => r.workload === w && r.server === role).sort((a, b) => a.rate - b.rate);
      for (const p of PERCENTILES) {
        series.push({ name: `${role} p${p}`, color: COLORS[p], dashed: role === "do-nothing", points: mine.map((r) => ({ x: r.rate, y: pct(r.r, p), hollow: !keptUp(r.r) })) });
      }
    }
    return { title: w, x: { label: "offered rate, requests/s", log: true }, y: { label: "latency, ms", log: true }, series };
  });
  return {
    title: "ext_proc latency against offered rate (open loop)",
    subtitle: `service (solid) vs do-nothing ext_proc server (dashed); ${fmt(s.durationMs / 1000, 1)} s measured per point after ${fmt(s.warmupMs / 1000, 1)} s warm-up`,
    panels,
    notes: [
      `Latency: from each request's scheduled start to its router stream's OK status (both phases), client side. Hollow markers: the server did not keep up with the rate (under ${KEPT_UP_SHARE * 100} % of it achieved, or requests dropped at ${s.maxInFlight} in flight): its latency there is queueing. Table: bench/results/open-loop.md.`,
    ],
  };
}
