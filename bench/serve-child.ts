// One `llm-router serve` child as operators run it (the CLI, dist/src/cli/main.js, with
// `--workers N`) on the bench's policy: its ports, its CPU (its own process_cpu_seconds_total, which
// the primary sums over the workers, and the primary's from /proc), its counters, its stop. Used by
// the workers bench (bench/workers.ts) and the open loop against `--workers 2`
// (bench/open-loop-workers.ts).
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";

const CLI = path.resolve(__dirname, "../src/cli/main.js");
/** Dummy provider credentials: the bench never reaches a provider. */
const PROVIDER_ENV = { OPENAI_API_KEY: "sk-bench-openai", ANTHROPIC_API_KEY: "sk-ant-bench", AZURE_BENCH_KEY: "azure-bench" };

/** One `serve` child: its ports, its CPU, its stop. */
export class ServeChild {
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
    return processCpuUs(this.#child.pid);
  }

  /**
   * Each worker's CPU so far, µs, by pid (Linux /proc; none with one process or elsewhere): how
   * evenly the primary dealt the connections out.
   */
  workersCpuUs(): Map<number, number> {
    const pid = this.#child.pid;
    const out = new Map<number, number>();
    if (this.workers === 1 || pid === undefined) return out;
    try {
      // The cluster's workers are the primary's children (forked from its main thread).
      for (const w of readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(" ")) if (w !== "") out.set(Number(w), processCpuUs(Number(w)));
    } catch {
      // Not Linux.
    }
    return out;
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

/** A process's CPU so far, µs (Linux /proc; 0 elsewhere), its threads included. */
export function processCpuUs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    // utime and stime (fields 14 and 15 of proc(5)) in clock ticks, 100 per second on Linux.
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return 0;
  }
}

/** The sum of a metric's samples (optionally those whose labels contain `labels`). */
export function metricSum(text: string, name: string, labels = ""): number {
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
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

