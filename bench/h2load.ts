// The workers bench's second load generator: h2load (nghttp2's HTTP/2 benchmarking client, in C;
// Debian/Ubuntu package nghttp2-client), which spends far less CPU per request than the Node
// driver (bench/raw-driver.ts) and so leaves more of a 2-core machine to the service it measures.
//
// h2load knows nothing of gRPC: it sends the same body on every stream (-d FILE, sent whole, then
// the stream is half-closed) and counts HTTP statuses. An ext_proc stream fits that: the service
// answers every message in order (src/extproc/stream.ts queues a message behind the reply to the
// one before) and ends the stream once Envoy half-closes, so a body holding all of a phase's
// messages (RawDriver.frames(), checked by its probe) gets all its replies, then grpc-status 0.
// Envoy itself waits for each reply before the next message except STREAMED body chunks; sending
// them all at once is the one difference. The replies are the same, but not the cost: the service
// gets a stream's messages in one or a few reads rather than one per round trip, and on the bench
// machine spent less CPU per request than with the raw driver's Envoy-like sequence (from about
// the same to half as much, the table's service CPU per request shows it): h2load's rows measure
// the service's capacity for batched messages, the raw driver's an Envoy-like pattern. The two
// phases of a request are independent streams (any replica may serve either; the upstream phase's
// context is the probe's signed token, valid an hour), so one h2load process runs each phase, with
// the same number of requests, side by side: a round lasts until both are done.
//
// h2load reads no grpc-status (trailers): a stream the service fails still ends with HTTP 200. The
// bench checks the service's own counters for that, as for the raw driver; h2load's counts (every
// stream done, succeeded, 2xx) are checked here after each run.
import { spawn } from "node:child_process";
import { accessSync, constants, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";

const PROCESS_PATH = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";

/** How to get h2load where it is missing. */
export const H2LOAD_INSTALL = "apt-get install nghttp2-client";

/** h2load's path on PATH, or undefined. */
export function findH2load(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const file = path.join(dir, "h2load");
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

/** One phase's h2load process: connections (-c) and streams in flight on each (-m). */
export interface H2LoadShape {
  clients: number;
  streams: number;
}

export interface H2LoadRun {
  /** Requests completed: each phase's streams (the same number for both). */
  requests: number;
  /** From starting the two processes to both having exited, ms. */
  wallMs: number;
  /** CPU of both h2load processes, µs (NaN off Linux). */
  cpuUs: number;
  /** Each process's own "finished in" (its first connection to its last response), ms. */
  finishedMs: { router: number; upstream: number };
}

/**
 * CPU of this process's children that have exited and been waited for, µs: cutime and cstime of
 * /proc/self/stat (fields 16 and 17 of proc(5), clock ticks, 100 a second on Linux). The kernel
 * adds a child's whole user and system time there when its parent reaps it, and libuv reaps a
 * child (waitpid) before Node emits its 'exit': read before spawning and after both 'exit's, the
 * difference is exactly the h2load processes' CPU, to a tick. Nothing else may exit meanwhile: the
 * bench's other children (the `serve` processes) live until the end. (process.resourceUsage() and
 * process.cpuUsage() count this process alone; reading the child's /proc/<pid>/stat races its exit.)
 */
function reapedChildrenCpuUs(): number {
  try {
    const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[13]) + Number(fields[14])) * 10_000;
  } catch {
    return NaN;
  }
}

/** The counts of h2load's summary ("requests: ..." and "status codes: ..." lines). */
interface H2LoadCounts {
  total: number;
  started: number;
  done: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  "2xx": number;
  "3xx": number;
  "4xx": number;
  "5xx": number;
  finishedMs: number;
}

function parseSummary(output: string): H2LoadCounts | undefined {
  const requests = /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m.exec(output);
  const statuses = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m.exec(output);
  const finished = /^finished in ([\d.]+)(ms|s|us),/m.exec(output);
  if (!requests || !statuses || !finished) return undefined;
  const [total, started, done, succeeded, failed, errored, timeout] = requests.slice(1).map(Number) as [number, number, number, number, number, number, number];
  const [s2, s3, s4, s5] = statuses.slice(1).map(Number) as [number, number, number, number];
  const unit = finished[2] === "s" ? 1000 : finished[2] === "ms" ? 1 : 0.001;
  return { total, started, done, succeeded, failed, errored, timeout, "2xx": s2, "3xx": s3, "4xx": s4, "5xx": s5, finishedMs: Number(finished[1]) * unit };
}

type Phase = "router" | "upstream";

/** Both phases' h2load processes against one `serve`, their bodies written once in `dir`. */
export class H2Load {
  readonly #files: Record<Phase, string>;

  constructor(
    private readonly bin: string,
    dir: string,
    private readonly to: { host: string; port: number },
    frames: { router: Buffer; upstream: Buffer },
    private readonly shape: Record<Phase, H2LoadShape>,
  ) {
    this.#files = { router: path.join(dir, `h2load-${to.port}-router.bin`), upstream: path.join(dir, `h2load-${to.port}-upstream.bin`) };
    writeFileSync(this.#files.router, frames.router);
    writeFileSync(this.#files.upstream, frames.upstream);
  }

  /** `n` requests: n router-phase streams and n upstream-phase streams, both processes at once. */
  async run(n: number): Promise<H2LoadRun> {
    const cpu0 = reapedChildrenCpuUs();
    const t0 = performance.now();
    const [router, upstream] = await Promise.all([this.#phase("router", n), this.#phase("upstream", n)]);
    const wallMs = performance.now() - t0;
    return { requests: n, wallMs, cpuUs: reapedChildrenCpuUs() - cpu0, finishedMs: { router: router.finishedMs, upstream: upstream.finishedMs } };
  }

  /** One phase's process; throws (with its output) unless every stream was answered 2xx. */
  #phase(phase: Phase, n: number): Promise<H2LoadCounts> {
    const { clients, streams } = this.shape[phase];
    const args = ["-n", String(n), "-c", String(clients), "-m", String(streams), "-t", "1", "-d", this.#files[phase]];
    for (const header of ["content-type: application/grpc", "te: trailers", `x-llm-router-phase: ${phase}`]) args.push("-H", header);
    args.push(`http://${this.to.host}:${this.to.port}${PROCESS_PATH}`);
    return new Promise((resolve, reject) => {
      const child = spawn(this.bin, args, { stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (d: Buffer) => (output += d.toString()));
      child.stderr.on("data", (d: Buffer) => (output += d.toString()));
      child.on("error", reject);
      // 'close' comes after 'exit' (the child reaped, its CPU counted) and after the output's end.
      child.on("close", (code, signal) => {
        const c = parseSummary(output);
        const all = c !== undefined && c.total === n && c.started === n && c.done === n && c.succeeded === n && c["2xx"] === n;
        const none = c !== undefined && c.failed + c.errored + c.timeout + c["3xx"] + c["4xx"] + c["5xx"] === 0;
        if (code === 0 && all && none) resolve(c);
        else reject(new Error(`h2load (${phase} phase, ${n} requests) exited ${signal ?? code} and did not answer every stream 2xx: ${this.bin} ${args.join(" ")}\n${output}`));
      });
    });
  }
}
