// The open loop (bench/open-loop.ts) against `llm-router serve --workers 2`, the CLI as operators
// run it on every core, next to the do-nothing server run the same way (bench/server-noop.ts
// --workers 2: a node:cluster primary and two workers on one port). Rates of 1,000 to 2,000
// requests/s are past what one process serves on the 2-core development machine, and past what the
// Envoy-like client (grpc-js, ~1 ms of CPU a request) can send beside it, so these rows are driven
// by the raw driver (bench/raw-driver.ts: messages encoded once, Envoy's sequence, a tenth of the
// client's CPU), in this process, on the same two cores. Both servers get the same bytes: the
// service's probe checks every reply and the do-nothing server is sent what it built.
//
// Standalone: `node dist/bench/open-loop-workers.js` prints the table (OPEN_LOOP_WORKERS_RATES,
// OPEN_LOOP_WORKERS_STREAM_RATES and the open loop's OPEN_LOOP_SECONDS etc. adjust it).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chatBody } from "./body";
import { ServerChild } from "./child";
import { measureOpenLoop, openLoopFromEnv, printOpenLoop, type OpenLoopRow, type OpenLoopSettings, type OpenLoopWorkload } from "./open-loop";
import { benchPolicy } from "./policy";
import { RawDriver } from "./raw-driver";
import { jsonAnswer, sseAnswer } from "./response";
import { ServeChild } from "./serve-child";

export interface WorkersOpenLoopOptions {
  workers: number;
  jsonRates: number[];
  streamRates: number[];
  settings: OpenLoopSettings;
}

/**
 * Connections per server: the cluster's primary deals out connections (the raw driver renews each
 * after 500 streams), and a streamed answer's ~60 KB of chunks fill a connection's 64 KiB window, so
 * the stream has more (as in bench/workers.ts).
 */
const CONNECTIONS = { json: 8, stream: 32 };

/** Both workloads at their rates on `serve --workers N` and the do-nothing server with N workers; rows as the open loop's. */
export async function measureWorkersOpenLoop(opts: WorkersOpenLoopOptions): Promise<OpenLoopRow[]> {
  const dir = mkdtempSync(path.join(tmpdir(), "llm-router-bench-open-loop-"));
  const policyFile = path.join(dir, "policy.json");
  writeFileSync(policyFile, JSON.stringify(benchPolicy()));
  const drivers: RawDriver[] = [];
  let service: ServeChild | undefined;
  const noop = new ServerChild(`do-nothing x${opts.workers}`, "server-noop.js", ["--workers", String(opts.workers)]);
  try {
    const noopPort = await noop.port;
    service = await ServeChild.start(opts.workers, policyFile);
    const serve = service;
    const label = `serve --workers ${opts.workers}, raw driver`;
    const workloads: OpenLoopWorkload[] = [];
    const cases = [
      { name: `both phases, 1 KiB (${label})`, body: chatBody(1024), answer: jsonAnswer(), rates: opts.jsonRates, connections: CONNECTIONS.json },
      { name: `both phases, 200-chunk stream (${label})`, body: chatBody(1024, { stream: true }), answer: sseAnswer(200), rates: opts.streamRates, connections: CONNECTIONS.stream },
    ];
    for (const c of cases) {
      if (c.rates.length === 0) continue;
      const toService = new RawDriver({ host: "127.0.0.1", port: serve.grpcPort }, c.connections);
      const toNoop = new RawDriver({ host: "127.0.0.1", port: noopPort }, c.connections);
      drivers.push(toService, toNoop);
      await toService.probe(c.body, c.answer);
      toNoop.reuse(toService);
      workloads.push({
        name: c.name,
        rates: c.rates,
        before: () => undefined,
        targets: {
          service: { fire: () => toService.request(), cpuUs: async () => (await serve.serviceCpuUs()) + serve.primaryCpuUs() },
          "do-nothing": { fire: () => toNoop.request(), cpuUs: () => noop.cpu() },
        },
      });
    }
    const rows = await measureOpenLoop(workloads, opts.settings);
    // The raw driver reads no grpc-status: the service's own counters tell a stream that failed.
    const { streamsNotOk } = await serve.outcomes();
    if (streamsNotOk !== 0) throw new Error(`serve --workers ${opts.workers}: ${streamsNotOk} ext_proc streams did not end ok`);
    return rows;
  } finally {
    for (const d of drivers) d.close();
    await Promise.all([service?.stop(), noop.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const { workersJsonRates, workersStreamRates, settings } = openLoopFromEnv(1);
  measureWorkersOpenLoop({ workers: 2, jsonRates: workersJsonRates, streamRates: workersStreamRates, settings }).then(
    (rows) => printOpenLoop(rows, settings, (line = "") => console.log(line)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
