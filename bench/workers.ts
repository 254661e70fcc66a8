// `serve --workers 1` against `serve --workers 2`: the CLI as operators run it (dist/src/cli/main.js),
// both on the bench's policy (bench/policy.ts), driven closed-loop with enough requests in flight to
// keep every worker busy, in alternating rounds. Reports requests/s of each and their ratio (the
// target: 2 workers >= 1.7x one on a 2-core machine), the service's CPU per request (its own
// process_cpu_seconds_total, which the primary sums over the workers) and the driver's, which runs
// on the same cores: the load generator is bench/raw-driver.ts, messages encoded once and written
// as gRPC frames over a hand-made HTTP/2 connection (bench/h2-connection.ts).
//
// Standalone: `node dist/bench/workers.js` prints the table (WORKERS_BENCH_ROUND_MS,
// WORKERS_BENCH_ROUNDS and WORKERS_BENCH_SCENARIOS=json,stream adjust it; WORKERS_BENCH_NODE_ARGS
// passes V8/Node flags to the service, e.g. --single-threaded-gc).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { chatBody } from "./body";
import { fmt } from "./measure";
import { benchPolicy } from "./policy";
import { RawDriver } from "./raw-driver";
import { jsonAnswer, sseAnswer, type Answer } from "./response";

/** Where the target is judged: throughput with 2 workers over 1, on a 2-core machine. */
export const WORKERS_TARGET_RATIO = 1.7;

const CLI = path.resolve(__dirname, "../src/cli/main.js");
/** Dummy provider credentials: the bench never reaches a provider. */
const PROVIDER_ENV = { OPENAI_API_KEY: "sk-bench-openai", ANTHROPIC_API_KEY: "sk-ant-bench", AZURE_BENCH_KEY: "azure-bench" };

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
}

export interface WorkersRow {
  workers: number;
  requests: number;
  wallMs: number;
  /** CPU of the service (all its workers; the primary apart), µs. */
  serviceCpuUs: number;
  /** CPU of the primary of `--workers N` (accepting connections, /metrics), µs; 0 with one process. */
  primaryCpuUs: number;
  /** CPU of this process (the driver), µs. */
  driverCpuUs: number;
  /** CPU of the whole machine's processes (Linux /proc/stat; NaN elsewhere), µs: the rest is other processes'. */
  machineCpuUs: number;
  /** CPU of the machine in interrupts (network softirq), µs. */
  interruptsUs: number;
}

export type ScenarioKind = "json" | "stream";

/**
 * The scenarios, and the connections they are spread over. A streamed answer's ~60 KB of chunks,
 * sent at once, fill the 64 KiB HTTP/2 receive window Node's server gives a connection: one such
 * body per connection at a time, and the rest wait for WINDOW_UPDATE, a round trip through a busy
 * server. With two requests per connection the load is bound by the servers' CPU, not by that.
 */
const SCENARIOS: Record<ScenarioKind, () => { name: string; body: Buffer; answer: Answer; connections: number }> = {
  json: () => ({ name: "both phases, 1 KiB, JSON answer", body: chatBody(1024), answer: jsonAnswer(), connections: 8 }),
  stream: () => ({ name: "both phases, 1 KiB, 200-chunk stream", body: chatBody(1024, { stream: true }), answer: sseAnswer(200), connections: 32 }),
};

export interface WorkersScenario {
  name: string;
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
  /** os.loadavg() before and after: the machine may be shared. */
  loadBefore: number[];
  loadAfter: number[];
}

const perSecond = (r: WorkersRow): number => (r.requests * 1000) / r.wallMs;

/** One `serve` child: its ports, its CPU, its stop. */
class ServeChild {
  readonly #child: ChildProcess;
  readonly exited: Promise<number | null>;
  #stderr = "";

  private constructor(
    readonly workers: number,
    readonly grpcPort: number,
    readonly adminPort: number,
    policyFile: string,
  ) {
    const args = ["serve", "--policy", policyFile, "--workers", String(workers), "--grpc-listen", `127.0.0.1:${grpcPort}`, "--admin-listen", `127.0.0.1:${adminPort}`];
    args.push("--hmac-keys", "5a".repeat(32), "--no-watch", "--shutdown-grace-seconds", "2");
    // The request log at info, as in production, into /dev/null (the bench's other children do the same).
    // V8 and Node flags for the service (its workers inherit them), e.g. --single-threaded-gc.
    const nodeArgs = process.env.WORKERS_BENCH_NODE_ARGS?.split(" ").filter((a) => a !== "") ?? [];
    this.#child = spawn(process.execPath, [...nodeArgs, CLI, ...args], { env: { PATH: process.env.PATH, ...PROVIDER_ENV }, stdio: ["ignore", "ignore", "pipe"] });
    this.#child.stderr!.on("data", (d: Buffer) => (this.#stderr += d.toString()));
    this.exited = new Promise((resolve) => this.#child.on("exit", (code) => resolve(code)));
  }

  static async start(workers: number, policyFile: string): Promise<ServeChild> {
    const s = new ServeChild(workers, await freePort(), await freePort(), policyFile);
    const end = Date.now() + 60_000;
    while ((await httpGet(s.adminPort, "/readyz").catch(() => undefined))?.status !== 200) {
      if (s.#child.exitCode !== null || Date.now() > end) throw new Error(`serve --workers ${workers} did not become ready: ${s.#stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return s;
  }

  /** The service's CPU so far, µs: its own counter, summed over the workers by the primary. */
  async serviceCpuUs(): Promise<number> {
    return metricSum(await this.metrics(), "process_cpu_seconds_total") * 1e6;
  }

  /**
   * Requests the service counted as answered by a provider (the bench's answers all are), and
   * ext_proc streams that did not end ok (the driver reads no grpc-status: this is its check).
   */
  async outcomes(): Promise<{ succeeded: number; streamsNotOk: number }> {
    const text = await this.metrics();
    const streams = "llm_router_ext_proc_streams_total";
    return { succeeded: metricSum(text, "llm_router_requests_total", 'outcome="success"'), streamsNotOk: metricSum(text, streams, 'end="error"') + metricSum(text, streams, 'end="cancelled"') };
  }

  /** The primary's CPU so far, µs (Linux /proc; 0 elsewhere): with one process it is the service. */
  primaryCpuUs(): number {
    if (this.workers === 1 || this.#child.pid === undefined) return 0;
    try {
      const fields = readFileSync(`/proc/${this.#child.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      // utime and stime (fields 14 and 15 of proc(5)) in clock ticks, 100 per second on Linux.
      return (Number(fields[11]) + Number(fields[12])) * 10_000;
    } catch {
      return 0;
    }
  }

  async metrics(): Promise<string> {
    const r = await httpGet(this.adminPort, "/metrics");
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
    return r.body;
  }

  async stop(): Promise<void> {
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * CPU time the whole machine spent so far, µs (Linux /proc/stat, 100 ticks a second; NaN elsewhere):
 * busy in processes (user, nice, system) and in interrupts (irq, softirq: loopback TCP is mostly
 * processed there, for the bench's own traffic as much as anyone's); steal, idle and iowait apart.
 */
function machineCpuUs(): { processes: number; interrupts: number } {
  try {
    const [, user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).map(Number);
    return { processes: (user + nice + system) * 10_000, interrupts: (irq + softirq) * 10_000 };
  } catch {
    return { processes: NaN, interrupts: NaN };
  }
}

/** The sum of a metric's samples (optionally those whose labels contain `labels`). */
function metricSum(text: string, name: string, labels = ""): number {
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== " " && line[name.length] !== "{")) continue;
    if (labels !== "" && !line.includes(labels)) continue;
    total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

function httpGet(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: urlPath }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

/** A port free now (the workers of a cluster share one address, so the bench names it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
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

export async function measureWorkers(opts: WorkersOptions = {}): Promise<WorkersResult> {
  const counts = opts.workers ?? [1, 2];
  const kinds = opts.scenarios ?? ["json", "stream"];
  const concurrency = opts.concurrency ?? 64;
  const rounds = opts.rounds ?? 3;
  const roundMs = opts.roundMs ?? 5000;
  const warmupMs = opts.warmupMs ?? 2000;
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
      const { name, body, answer, ...scenario } = SCENARIOS[kind]();
      const connections = opts.connections ?? scenario.connections;
      const subjects = servers.map((server) => ({ server, driver: new RawDriver({ host: "127.0.0.1", port: server.serve.grpcPort }, connections), row: { workers: server.serve.workers, requests: 0, wallMs: 0, serviceCpuUs: 0, primaryCpuUs: 0, driverCpuUs: 0, machineCpuUs: 0, interruptsUs: 0 } }));
      try {
        for (const s of subjects) {
          await s.driver.probe(body, answer);
          s.server.sent += 1 + (await closedLoop(s.driver, concurrency, warmupMs));
        }
        for (let round = 0; round < rounds; round++) {
          for (let k = 0; k < subjects.length; k++) {
            const s = subjects[(round + k) % subjects.length]!;
            const service0 = await s.server.serve.serviceCpuUs();
            const primary0 = s.server.serve.primaryCpuUs();
            const driver0 = process.cpuUsage();
            const machine0 = machineCpuUs();
            const t0 = performance.now();
            const n = await closedLoop(s.driver, concurrency, roundMs);
            const wallMs = performance.now() - t0;
            const driver = process.cpuUsage(driver0);
            const machine1 = machineCpuUs();
            s.row.machineCpuUs += machine1.processes - machine0.processes;
            s.row.interruptsUs += machine1.interrupts - machine0.interrupts;
            s.row.requests += n;
            s.row.wallMs += wallMs;
            s.row.driverCpuUs += driver.user + driver.system;
            s.row.primaryCpuUs += s.server.serve.primaryCpuUs() - primary0;
            s.row.serviceCpuUs += (await s.server.serve.serviceCpuUs()) - service0;
            s.server.sent += n;
          }
        }
      } finally {
        for (const s of subjects) s.driver.close();
      }
      const rows = subjects.map((s) => s.row);
      scenarios.push({ name, connections, rows, ratio: perSecond(rows.at(-1)!) / perSecond(rows[0]!) });
    }
    for (const s of servers) {
      const { succeeded, streamsNotOk } = await s.serve.outcomes();
      if (succeeded !== s.sent || streamsNotOk !== 0) throw new Error(`serve --workers ${s.serve.workers} counted ${succeeded} successful requests of ${s.sent} sent, ${streamsNotOk} streams not ok`);
    }
  } finally {
    await Promise.all(servers.map((s) => s.serve.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
  return { cores: os.availableParallelism(), concurrency, rounds, roundMs, scenarios, loadBefore, loadAfter: os.loadavg() };
}

/** The result as a markdown table, then the verdicts and how it was measured. */
export function workersTable(r: WorkersResult): string {
  const lines = [
    "| Scenario | Workers | Requests | Req/s | vs first | Service CPU µs/req | Primary CPU µs/req | Driver CPU µs/req | Service, cores | Driver, cores | Rest of the machine, cores |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const sc of r.scenarios) {
    const base = perSecond(sc.rows[0]!);
    for (const row of sc.rows) {
      const cells = [
        sc.name,
        row.workers,
        row.requests,
        fmt(perSecond(row), 0),
        `${fmt(perSecond(row) / base, 2)}x`,
        fmt(row.serviceCpuUs / row.requests, 0),
        row.workers === 1 ? "" : fmt(row.primaryCpuUs / row.requests, 1),
        fmt(row.driverCpuUs / row.requests, 0),
        fmt(row.serviceCpuUs / row.wallMs / 1000, 2),
        fmt(row.driverCpuUs / row.wallMs / 1000, 2),
        fmt((row.machineCpuUs + row.interruptsUs - row.serviceCpuUs - row.primaryCpuUs - row.driverCpuUs) / row.wallMs / 1000, 2),
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
    lines.push(`- ${verdict}: ${sc.name} (${sc.connections} connections): ${last.workers} workers serve ${fmt(sc.ratio, 2)}x the requests/s of ${first.workers} (target at least ${WORKERS_TARGET_RATIO}x on ${r.cores} cores); the driver spent ${fmt(last.driverCpuUs / last.requests, 0)} µs of CPU per request against the service's ${fmt(last.serviceCpuUs / last.requests, 0)}`);
    // What the machine allowed: the cores the rest took with N workers, against what one worker used.
    const perRequest = (row: WorkersRow) => row.serviceCpuUs / row.requests;
    // Everything busy but the service's workers: the driver, the primary, interrupts, other processes.
    const left = r.cores - cores(last.machineCpuUs - last.serviceCpuUs + last.interruptsUs, last);
    const bound = (left / perRequest(last)) / (cores(first.serviceCpuUs, first) / perRequest(first));
    lines.push(
      `  - the service's CPU per request with ${last.workers} workers is ${fmt(perRequest(last) / perRequest(first), 2)}x that with ${first.workers}; one worker used ${fmt(cores(first.serviceCpuUs, first), 2)} cores (its helper threads included), and the driver, the primary, interrupts and other processes left ${fmt(left, 2)} cores to ${last.workers} workers: at most ${fmt(bound, 2)}x on this machine`,
    );
  }
  const load = (l: number[]) => l.map((v) => fmt(v, 2)).join(", ");
  lines.push(
    `- closed loop, ${r.concurrency} requests in flight, ${r.rounds} rounds of ${fmt(r.roundMs / 1000, 0)} s per server taking turns; the driver shares the ${r.cores} cores (cores: CPU seconds per second of the rounds; the rest of the machine: /proc/stat's busy time, interrupts included (loopback TCP is mostly processed there), less the bench's processes': the kernel's share of the traffic and other processes). Load average before ${load(r.loadBefore)}, after ${load(r.loadAfter)}`,
  );
  return lines.join("\n");
}

if (require.main === module) {
  const env = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);
  const scenarios = process.env.WORKERS_BENCH_SCENARIOS?.split(",") as ScenarioKind[] | undefined;
  measureWorkers({ roundMs: env("WORKERS_BENCH_ROUND_MS"), rounds: env("WORKERS_BENCH_ROUNDS"), scenarios }).then(
    (r) => console.log(workersTable(r)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
