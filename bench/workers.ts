// `serve --workers 1` against `serve --workers 2`: the CLI as operators run it (dist/src/cli/main.js),
// both on the bench's policy (bench/policy.ts), driven closed-loop with enough requests in flight to
// keep every worker busy, in alternating rounds. Reports requests/s of each and their ratio (the
// target: 2 workers >= 1.7x one on a 2-core machine), the service's CPU per request (its own
// process_cpu_seconds_total, which the primary sums over the workers) and the driver's, which runs
// on the same cores. Two load generators, each scenario measured with both, one after the other:
// bench/raw-driver.ts, messages encoded once and written as gRPC frames over a hand-made HTTP/2
// connection (bench/h2-connection.ts), Envoy's sequence of messages; and h2load (bench/h2load.ts,
// in C, from nghttp2-client; skipped with a note when it is not on PATH), which sends each
// phase's messages at once on streams of its own and costs the machine less CPU per request.
//
// Standalone: `node dist/bench/workers.js` prints the table (WORKERS_BENCH_ROUND_MS,
// WORKERS_BENCH_ROUNDS, WORKERS_BENCH_SCENARIOS=json,stream and WORKERS_BENCH_DRIVERS=raw,h2load
// adjust it; WORKERS_BENCH_NODE_ARGS passes V8/Node flags to the service, e.g. --single-threaded-gc).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { chatBody } from "./body";
import { findH2load, H2Load, H2LOAD_INSTALL, type H2LoadShape } from "./h2load";
import { fmt } from "./measure";
import { benchPolicy } from "./policy";
import { RawDriver } from "./raw-driver";
import { ServeChild } from "./serve-child";
import { jsonAnswer, sseAnswer, type Answer } from "./response";

/** Where the target is judged: throughput with 2 workers over 1, on a 2-core machine. */
export const WORKERS_TARGET_RATIO = 1.7;

export interface WorkersOptions {
  /** Worker counts to compare; the first is the baseline (default [1, 2]). */
  workers?: number[];
  /**
   * What each request is (default both): "json", a 1 KiB chat request answered by the bench's
   * 768-byte JSON completion; "stream", a 1 KiB streaming request answered by 200 SSE chunks, the
   * usage chunk and [DONE], which the router phase reads one message each (Envoy's STREAMED mode:
   * sent without waiting, so the driver writes them at once): the service's work per request then
   * dwarfs the driver's.
   */
  scenarios?: ScenarioKind[];
  /** Requests in flight (default 64) over this many HTTP/2 connections (default: the scenario's). */
  concurrency?: number;
  connections?: number;
  /** Rounds (servers take turns, the first changing every round) of this length each. */
  rounds?: number;
  roundMs?: number;
  /** Before the rounds of a scenario, per server: JIT and connection warm-up. */
  warmupMs?: number;
  /** Load generators (default both; h2load only where it is on PATH). */
  drivers?: DriverKind[];
}

/** The raw driver (bench/raw-driver.ts) or h2load (bench/h2load.ts). */
export type DriverKind = "raw" | "h2load";
const DRIVER_LABEL: Record<DriverKind, string> = { raw: "raw driver", h2load: "h2load" };

export interface WorkersRow {
  workers: number;
  requests: number;
  wallMs: number;
  /** CPU of the service (all its workers; the primary apart), µs. */
  serviceCpuUs: number;
  /** CPU of the primary of `--workers N` (accepting connections, /metrics), µs; 0 with one process. */
  primaryCpuUs: number;
  /** CPU of the driver (this process, or the h2load processes), µs. */
  driverCpuUs: number;
  /** CPU of the whole machine's processes (Linux /proc/stat; NaN elsewhere), µs: the rest is other processes'. */
  machineCpuUs: number;
  /** CPU of the machine in interrupts (network softirq), µs. */
  interruptsUs: number;
  /**
   * CPU time the hypervisor gave other guests while this one wanted it (/proc/stat's steal), µs:
   * on a shared virtual machine, cores the service could not have had.
   */
  stealUs: number;
  /**
   * With several workers: the CPU of each round's busiest worker, summed, and of all the workers
   * (Linux /proc): the primary deals out connections, and an uneven share leaves one worker idle
   * while the other finishes.
   */
  busiestWorkerUs: number;
  workersUs: number;
}

export type ScenarioKind = "json" | "stream";

/**
 * The scenarios, and the connections they are spread over. A streamed answer's ~60 KB of chunks,
 * sent at once, fill the 64 KiB HTTP/2 receive window Node's server gives a connection: one such
 * body per connection at a time, and the rest wait for WINDOW_UPDATE, a round trip through a busy
 * server. With two requests per connection the load is bound by the servers' CPU, not by that.
 *
 * h2load: per phase, `clients` connections (-c) of `streams` streams in flight each (-m), -t 1.
 * The cluster's primary deals out connections, not streams, and an h2load connection lives for the
 * whole run (n/c streams each, no renewal as the raw driver's): a worker dealt more connections has
 * more work and finishes last while the other idles. On an idle machine, 8 connections per phase
 * per worker came out within about 10-20 % (the busiest worker's share of the workers' CPU, printed
 * with the verdict); beside other busy processes much worse (30/70 seen). Opening the connections
 * one at a time (-r 1 --rate-period 25ms) or the phases 150 ms apart did not even it out.
 * JSON: 16 x 4 a phase, 64 streams in flight each (the raw driver keeps 64 requests in flight, one
 * stream of each at a time): every worker has tens of messages queued, and both phases end within
 * a few percent of each other. 8 x 4 and 16 x 2 measured about the same requests/s; 16 x 2 cost
 * h2load more CPU a request (fewer replies per read). Stream: the router stream's 65 KB body, sent
 * whole, meets the same 64 KiB connection window as the raw driver's chunks; 16 x 4 and 32 x 2
 * measured about the same requests/s (within the machine's noise of each other), 16 x 4 with less
 * CPU in h2load; 32 x 1 and 64 x 1 gave fewer requests/s for more h2load CPU. Its upstream streams
 * are 3 short messages against the router's 205: 8 x 2 of them end in a quarter to a third of the
 * round, and the rest is the router phase alone. That is no less work for the service (a round is
 * n of each, and the router streams alone keep both workers busy), only a less even mix; fewer
 * upstream streams in flight would make that phase latency-bound instead. The number of streams
 * per round is sized from the previous run's rate (the warm-up's, first) so that a round lasts
 * about `roundMs`, as the raw driver's do.
 */
const SCENARIOS: Record<ScenarioKind, () => { name: string; body: Buffer; answer: Answer; connections: number; h2load: Record<"router" | "upstream", H2LoadShape> }> = {
  json: () => ({ name: "both phases, 1 KiB, JSON answer", body: chatBody(1024), answer: jsonAnswer(), connections: 8, h2load: { router: { clients: 16, streams: 4 }, upstream: { clients: 16, streams: 4 } } }),
  stream: () => ({ name: "both phases, 1 KiB, 200-chunk stream", body: chatBody(1024, { stream: true }), answer: sseAnswer(200), connections: 32, h2load: { router: { clients: 16, streams: 4 }, upstream: { clients: 8, streams: 2 } } }),
};

export interface WorkersScenario {
  name: string;
  driver: DriverKind;
  /** How the driver loads the servers, e.g. "8 connections". */
  setup: string;
  connections: number;
  rows: WorkersRow[];
  /** requests/s of the last worker count over the first's. */
  ratio: number;
}

export interface WorkersResult {
  cores: number;
  concurrency: number;
  rounds: number;
  roundMs: number;
  scenarios: WorkersScenario[];
  /** Why the h2load rows are missing, when they are. */
  skipped?: string;
  /** os.loadavg() before and after: the machine may be shared. */
  loadBefore: number[];
  loadAfter: number[];
}

const perSecond = (r: WorkersRow): number => (r.requests * 1000) / r.wallMs;

/**
 * CPU time the whole machine spent so far, µs (Linux /proc/stat, 100 ticks a second; NaN elsewhere):
 * busy in processes (user, nice, system) and in interrupts (irq, softirq: loopback TCP is mostly
 * processed there, for the bench's own traffic as much as anyone's), and stolen by the hypervisor
 * (steal); idle and iowait apart.
 */
function machineCpuUs(): { processes: number; interrupts: number; steal: number } {
  try {
    const [, user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).map(Number);
    return { processes: (user + nice + system) * 10_000, interrupts: (irq + softirq) * 10_000, steal: steal * 10_000 };
  } catch {
    return { processes: NaN, interrupts: NaN, steal: NaN };
  }
}

/** Keeps `concurrency` requests in flight for `ms`; the requests completed. */
async function closedLoop(driver: RawDriver, concurrency: number, ms: number): Promise<number> {
  const end = performance.now() + ms;
  let done = 0;
  const loop = async () => {
    while (performance.now() < end) {
      await driver.request();
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return done;
}

interface Server {
  serve: ServeChild;
  /** Requests sent in all (probes and warm-ups included), to check against the service's own count. */
  sent: number;
}

const emptyRow = (workers: number): WorkersRow => ({ workers, requests: 0, wallMs: 0, serviceCpuUs: 0, primaryCpuUs: 0, driverCpuUs: 0, machineCpuUs: 0, interruptsUs: 0, stealUs: 0, busiestWorkerUs: 0, workersUs: 0 });

/**
 * One round of one server into its row: the service's, the primary's and the machine's CPU around
 * `drive`, which loads the server and tells the requests done and the driver's CPU.
 */
async function measureRound(server: Server, row: WorkersRow, drive: () => Promise<{ requests: number; driverCpuUs: number }>): Promise<void> {
  const service0 = await server.serve.serviceCpuUs();
  const primary0 = server.serve.primaryCpuUs();
  const workers0 = server.serve.workersCpuUs();
  const machine0 = machineCpuUs();
  const t0 = performance.now();
  const { requests, driverCpuUs } = await drive();
  const wallMs = performance.now() - t0;
  const machine1 = machineCpuUs();
  row.machineCpuUs += machine1.processes - machine0.processes;
  row.interruptsUs += machine1.interrupts - machine0.interrupts;
  row.stealUs += machine1.steal - machine0.steal;
  const workers = [...server.serve.workersCpuUs()].map(([pid, us]) => us - (workers0.get(pid) ?? us));
  row.busiestWorkerUs += Math.max(0, ...workers);
  row.workersUs += workers.reduce((a, b) => a + b, 0);
  row.requests += requests;
  row.wallMs += wallMs;
  row.driverCpuUs += driverCpuUs;
  row.primaryCpuUs += server.serve.primaryCpuUs() - primary0;
  row.serviceCpuUs += (await server.serve.serviceCpuUs()) - service0;
  server.sent += requests;
}

/** Smallest common multiple: h2load deals -n out over its -c connections, so n is a multiple of both phases'. */
const lcm = (a: number, b: number): number => {
  const gcd = (x: number, y: number): number => (y === 0 ? x : gcd(y, x % y));
  return (a / gcd(a, b)) * b;
};

export async function measureWorkers(opts: WorkersOptions = {}): Promise<WorkersResult> {
  const counts = opts.workers ?? [1, 2];
  const kinds = opts.scenarios ?? ["json", "stream"];
  const concurrency = opts.concurrency ?? 64;
  const rounds = opts.rounds ?? 3;
  const roundMs = opts.roundMs ?? 5000;
  const warmupMs = opts.warmupMs ?? 2000;
  const drivers = opts.drivers ?? ["raw", "h2load"];
  for (const d of drivers) if (!(d in DRIVER_LABEL)) throw new Error(`unknown driver ${d} (raw, h2load)`);
  const h2load = drivers.includes("h2load") ? findH2load() : undefined;
  const skipped = drivers.includes("h2load") && h2load === undefined ? `h2load rows skipped: h2load is not on PATH (install it with \`${H2LOAD_INSTALL}\`)` : undefined;
  if (skipped !== undefined) console.error(skipped);
  const loadBefore = os.loadavg();
  const dir = mkdtempSync(path.join(tmpdir(), "llm-router-bench-workers-"));
  const policyFile = path.join(dir, "policy.json");
  writeFileSync(policyFile, JSON.stringify(benchPolicy()));
  const servers: Server[] = [];
  const scenarios: WorkersScenario[] = [];
  try {
    // One at a time: two starting at once would share the cores with each other's tokenizer preload.
    for (const workers of counts) servers.push({ serve: await ServeChild.start(workers, policyFile), sent: 0 });
    for (const kind of kinds) {
      const { name, body, answer, h2load: shape, ...scenario } = SCENARIOS[kind]();
      const connections = opts.connections ?? scenario.connections;
      const subjects = servers.map((server) => ({ server, driver: new RawDriver({ host: "127.0.0.1", port: server.serve.grpcPort }, connections), row: emptyRow(server.serve.workers) }));
      try {
        // The probe (one request, every reply checked) also builds the frames h2load sends.
        for (const s of subjects) {
          await s.driver.probe(body, answer);
          s.server.sent += 1;
        }
        if (drivers.includes("raw")) {
          for (const s of subjects) s.server.sent += await closedLoop(s.driver, concurrency, warmupMs);
          for (let round = 0; round < rounds; round++) {
            for (let k = 0; k < subjects.length; k++) {
              const s = subjects[(round + k) % subjects.length]!;
              await measureRound(s.server, s.row, async () => {
                const driver0 = process.cpuUsage();
                const requests = await closedLoop(s.driver, concurrency, roundMs);
                const driver = process.cpuUsage(driver0);
                return { requests, driverCpuUs: driver.user + driver.system };
              });
            }
          }
          const rows = subjects.map((s) => s.row);
          scenarios.push({ name, driver: "raw", setup: `${connections} connections`, connections, rows, ratio: perSecond(rows.at(-1)!) / perSecond(rows[0]!) });
        }
      } finally {
        for (const s of subjects) s.driver.close();
      }
      if (h2load !== undefined) {
        const step = lcm(shape.router.clients, shape.upstream.clients);
        // h2load runs a number of requests, not a time: the next run's, to last about roundMs at the last run's rate.
        const sized = (run: { requests: number; wallMs: number }) => Math.max(step, Math.round(((run.requests / run.wallMs) * roundMs) / step) * step);
        const loaders = subjects.map((s) => ({ server: s.server, h2load: new H2Load(h2load, dir, { host: "127.0.0.1", port: s.server.serve.grpcPort }, s.driver.frames(), shape), n: step, row: emptyRow(s.server.serve.workers) }));
        // Warm-up: runs of doubling size until warmupMs has passed; the last (about half of it) sizes the first round.
        for (const l of loaders) {
          const end = performance.now() + warmupMs;
          let n = step;
          let run = await l.h2load.run(n);
          l.server.sent += n;
          while (performance.now() < end) {
            n *= 2;
            run = await l.h2load.run(n);
            l.server.sent += n;
          }
          l.n = sized(run);
        }
        for (let round = 0; round < rounds; round++) {
          for (let k = 0; k < loaders.length; k++) {
            const l = loaders[(round + k) % loaders.length]!;
            await measureRound(l.server, l.row, async () => {
              const run = await l.h2load.run(l.n);
              l.n = sized(run);
              return { requests: run.requests, driverCpuUs: run.cpuUs };
            });
          }
        }
        const rows = loaders.map((l) => l.row);
        const setup = `h2load per phase, router -c ${shape.router.clients} -m ${shape.router.streams}, upstream -c ${shape.upstream.clients} -m ${shape.upstream.streams}`;
        scenarios.push({ name, driver: "h2load", setup, connections: shape.router.clients + shape.upstream.clients, rows, ratio: perSecond(rows.at(-1)!) / perSecond(rows[0]!) });
      }
    }
    for (const s of servers) {
      const { succeeded, streamsNotOk } = await s.serve.outcomes();
      if (succeeded !== s.sent || streamsNotOk !== 0) throw new Error(`serve --workers ${s.serve.workers} counted ${succeeded} successful requests of ${s.sent} sent, ${streamsNotOk} streams not ok`);
    }
  } finally {
    await Promise.all(servers.map((s) => s.serve.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
  return { cores: os.availableParallelism(), concurrency, rounds, roundMs, scenarios, skipped, loadBefore, loadAfter: os.loadavg() };
}

/** Steal (cores) above which a ratio is flagged as measured on a busy host. */
const STEAL_WARNING_CORES = 0.05;
/**
 * Cores of the rest of the machine above which a ratio is flagged as measured beside other work:
 * the kernel's share of the bench's own loopback traffic is a few hundredths.
 */
const REST_WARNING_CORES = 0.15;

/** The machine's busy cores besides the bench's processes (the kernel's network work and other processes). */
const restCores = (row: WorkersRow): number => (row.machineCpuUs + row.interruptsUs - row.serviceCpuUs - row.primaryCpuUs - row.driverCpuUs) / row.wallMs / 1000;

/** The result as a markdown table, then the verdicts and how it was measured. */
export function workersTable(r: WorkersResult): string {
  const lines = [
    "| Scenario | Driver | Workers | Requests | Req/s | vs first | Service CPU µs/req | Primary CPU µs/req | Driver CPU µs/req | Service, cores | Driver, cores | Rest of the machine, cores |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const sc of r.scenarios) {
    const base = perSecond(sc.rows[0]!);
    for (const row of sc.rows) {
      const cells = [
        sc.name,
        DRIVER_LABEL[sc.driver],
        row.workers,
        row.requests,
        fmt(perSecond(row), 0),
        `${fmt(perSecond(row) / base, 2)}x`,
        fmt(row.serviceCpuUs / row.requests, 0),
        row.workers === 1 ? "" : fmt(row.primaryCpuUs / row.requests, 1),
        fmt(row.driverCpuUs / row.requests, 0),
        fmt(row.serviceCpuUs / row.wallMs / 1000, 2),
        fmt(row.driverCpuUs / row.wallMs / 1000, 2),
        fmt(restCores(row), 2),
      ];
      lines.push(`| ${cells.join(" | ")} |`);
    }
  }
  lines.push("");
  const cores = (us: number, row: WorkersRow) => us / row.wallMs / 1000;
  for (const sc of r.scenarios) {
    const first = sc.rows[0]!;
    const last = sc.rows.at(-1)!;
    const verdict = sc.ratio >= WORKERS_TARGET_RATIO ? "PASS" : "FAIL";
    lines.push(`- ${verdict}: ${sc.name}, ${DRIVER_LABEL[sc.driver]} (${sc.setup}): ${last.workers} workers serve ${fmt(sc.ratio, 2)}x the requests/s of ${first.workers} (target at least ${WORKERS_TARGET_RATIO}x on ${r.cores} cores); the driver spent ${fmt(last.driverCpuUs / last.requests, 0)} µs of CPU per request against the service's ${fmt(last.serviceCpuUs / last.requests, 0)}`);
    // What the machine allowed: the cores the rest took with N workers, against what one worker used.
    const perRequest = (row: WorkersRow) => row.serviceCpuUs / row.requests;
    // Everything busy but the service's workers: the driver, the primary, interrupts, other
    // processes, and what the hypervisor took (0 on a machine of one's own).
    const left = r.cores - cores(last.machineCpuUs - last.serviceCpuUs + last.interruptsUs + last.stealUs, last);
    const bound = (left / perRequest(last)) / (cores(first.serviceCpuUs, first) / perRequest(first));
    lines.push(
      `  - the service's CPU per request with ${last.workers} workers is ${fmt(perRequest(last) / perRequest(first), 2)}x that with ${first.workers}; one worker used ${fmt(cores(first.serviceCpuUs, first), 2)} cores (its helper threads included), and the driver (${DRIVER_LABEL[sc.driver]}), the primary, interrupts, other processes and the hypervisor (steal: ${fmt(cores(last.stealUs, last), 2)} cores; ${fmt(cores(first.stealUs, first), 2)} with ${first.workers}) left ${fmt(left, 2)} cores to ${last.workers} workers: at most ${fmt(bound, 2)}x on this machine${last.workersUs > 0 ? `; the busiest worker of each round did ${fmt((100 * last.busiestWorkerUs) / last.workersUs, 0)} % of the workers' CPU (${fmt(100 / last.workers, 0)} % is even)` : ""}`,
    );
    // A shared virtual machine: cores stolen from one row and not the other tilt the ratio either way.
    const stolen = Math.max(cores(first.stealUs, first), cores(last.stealUs, last));
    if (stolen >= STEAL_WARNING_CORES) lines.push(`  - caution: the hypervisor took up to ${fmt(stolen, 2)} cores from this machine during these rounds (other guests on the host): the ratio is unreliable; rerun when /proc/stat's steal is near 0`);
    const rest = Math.max(restCores(first), restCores(last));
    if (rest >= REST_WARNING_CORES) lines.push(`  - caution: other processes on this machine took up to ${fmt(rest, 2)} cores during these rounds: the ratio is unreliable; rerun on an otherwise idle machine`);
  }
  if (r.skipped !== undefined) lines.push(`- ${r.skipped}`);
  const load = (l: number[]) => l.map((v) => fmt(v, 2)).join(", ");
  lines.push(
    `- closed loop, ${r.rounds} rounds of about ${fmt(r.roundMs / 1000, 0)} s per server taking turns, per driver: the raw driver keeps ${r.concurrency} requests in flight, Envoy's sequence of messages (its CPU: the bench process's); h2load runs one process per phase side by side, each sending a phase's messages at once on every stream (-d) for n streams, n sized by a warm-up to last a round, and requests/s is n over the time until both exit (its CPU: both processes', counted when reaped). The driver shares the ${r.cores} cores (cores: CPU seconds per second of the rounds; the rest of the machine: /proc/stat's busy time, interrupts included (loopback TCP is mostly processed there), less the bench's processes': the kernel's share of the traffic and other processes). Load average before ${load(r.loadBefore)}, after ${load(r.loadAfter)}`,
  );
  return lines.join("\n");
}

if (require.main === module) {
  const env = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);
  const scenarios = process.env.WORKERS_BENCH_SCENARIOS?.split(",") as ScenarioKind[] | undefined;
  const drivers = process.env.WORKERS_BENCH_DRIVERS?.split(",") as DriverKind[] | undefined;
  measureWorkers({ roundMs: env("WORKERS_BENCH_ROUND_MS"), rounds: env("WORKERS_BENCH_ROUNDS"), scenarios, drivers }).then(
    (r) => console.log(workersTable(r)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
