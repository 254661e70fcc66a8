// Cost of a response-cache hit. A hit is answered by the router phase while it replies to
// request_body (an ImmediateResponse carrying the stored answer), so a hit request is two messages
// on the router stream and no upstream phase. The do-nothing server gets the same two messages
// (it continues; the client stops there), so the difference is what looking up the key (hashing
// the normalised body), reading the entry, and building the answer cost. Memory and Redis stores.
import { immediateJson } from "../test/support/ext-proc-client";
import { CACHE_HEADER } from "../src/phases/gateway-headers";
import type { EnvoyLikeClient, RequestCase } from "./envoy-client";
import { cpuPerRequest, fmt, measureInTurns, mergeMeasured, percentile, type Measured, type Server } from "./measure";

/**
 * Stores one answer (a full request, the miss) then checks that the next identical request is a
 * hit carrying that answer byte for byte, so that the rows cannot measure misses.
 */
export async function primeCache(client: EnvoyLikeClient, c: RequestCase): Promise<void> {
  await client.request("both", c);
  const { bodyReply } = await client.request("cache-hit", c);
  if (bodyReply?.response !== "immediate_response") throw new Error(`cache-hit request was not answered from the cache (got ${bodyReply?.response ?? "nothing"})`);
  const hit = immediateJson(bodyReply);
  if (hit.status !== 200 || hit.headers[CACHE_HEADER] !== "hit") throw new Error(`unexpected cache answer: ${hit.status} ${JSON.stringify(hit.headers)}`);
  const stored = bodyReply.immediate_response?.body ?? Buffer.alloc(0);
  if (!stored.equals(Buffer.concat(c.answer.chunks))) throw new Error("the cached answer differs from the upstream answer");
}

export interface CacheHitRow {
  name: string;
  server: Server;
  measured: Measured;
}

/** Rows take turns, the first one changing every round. */
export async function measureCacheHits(rows: Array<{ name: string; server: Server }>, c: RequestCase, count: number, rounds: number, concurrency: number): Promise<CacheHitRow[]> {
  const batches = await measureInTurns(
    rows.map((r) => r.server),
    "cache-hit",
    c,
    count,
    rounds,
    concurrency,
  );
  return rows.map(({ name, server }, i) => ({ name, server, measured: mergeMeasured(batches[i]!) }));
}

/** `baseline` names the do-nothing row; `missCpuUs` is the service's CPU for a whole request (a miss, both phases). */
export function printCacheHits(rows: CacheHitRow[], baseline: string, missCpuUs: number | undefined, print: (line?: string) => void): void {
  const base = rows.find((r) => r.name === baseline)?.measured;
  print("| Server | Requests | Req/s | p50 ms | p99 ms | CPU µs/req | Extra CPU µs/req | redis-server CPU µs/req |");
  print("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const { name, server, measured: m } of rows) {
    const extra = base === undefined || name === baseline ? "" : fmt(cpuPerRequest(m) - cpuPerRequest(base), 0);
    const storeCpu = server.storeCpuUs === undefined ? "" : fmt(m.storeCpuUs / m.requests, 0);
    print(
      `| ${name} | ${m.requests} | ${fmt(m.requests / (m.wallMs / 1000), 0)} | ${fmt(percentile(m.latencies, 50), 2)} | ${fmt(percentile(m.latencies, 99), 2)} | ${fmt(cpuPerRequest(m), 0)} | ${extra} | ${storeCpu} |`,
    );
  }
  print();
  if (missCpuUs === undefined) return;
  for (const { name, measured: m } of rows) {
    if (name === baseline) continue;
    print(`- ${name}: a hit costs the service ${fmt(cpuPerRequest(m), 0)} µs of CPU, ${fmt((100 * cpuPerRequest(m)) / missCpuUs, 0)} % of a request that goes upstream (both phases, 1 KiB: ${fmt(missCpuUs, 0)} µs)`);
  }
}
