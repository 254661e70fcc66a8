// What the driver measures of a server child over a batch of requests: requests, wall time, the
// child's CPU (process.cpuUsage over IPC), client-side latencies, and the CPU of the store behind
// it when there is one (redis-server). Totals add up over rounds.
import { drive, driveAtRate, type EnvoyLikeClient, type Flow, type RequestCase } from "./envoy-client";
import type { ServerChild } from "./child";

export interface Server {
  name: string;
  child: ServerChild;
  client: EnvoyLikeClient;
  /** CPU time so far of a process the server depends on (µs), counted apart from the server's. */
  storeCpuUs?: () => Promise<number>;
}

export interface Measured {
  requests: number;
  wallMs: number;
  cpuUs: number;
  storeCpuUs: number;
  /** Per request, ms. */
  latencies: number[];
  /** The router phase's reply to request_body, ms (none for upstream-only requests). */
  bodyReplies: number[];
}

export const emptyMeasured = (): Measured => ({ requests: 0, wallMs: 0, cpuUs: 0, storeCpuUs: 0, latencies: [], bodyReplies: [] });

/** Closed loop with this many requests in flight, or open loop at a fixed rate. */
export type Load = number | { perSecond: number };

export const loadLabel = (load: Load): string => (typeof load === "number" ? `${load} in flight` : `${load.perSecond}/s open loop`);

async function measure(server: Server, flow: Flow, c: RequestCase, count: number, load: Load, into: Measured): Promise<void> {
  const store0 = await server.storeCpuUs?.();
  const cpu0 = await server.child.cpu();
  const r = typeof load === "number" ? await drive(server.client, flow, c, count, load) : await driveAtRate(server.client, flow, c, count, load.perSecond);
  const cpu1 = await server.child.cpu();
  const store1 = await server.storeCpuUs?.();
  into.requests += r.requests;
  into.wallMs += r.wallMs;
  into.cpuUs += cpu1 - cpu0;
  if (store0 !== undefined && store1 !== undefined) into.storeCpuUs += store1 - store0;
  // Loops, not push(...spread): a spread of 10^4+ arguments can overflow the stack.
  for (const l of r.timings.request) into.latencies.push(l);
  for (const l of r.timings.bodyReply ?? []) into.bodyReplies.push(l);
}

/**
 * `rounds` rounds in which every server measures one batch of `count` requests, the first server
 * changing every round (so none always runs first or right after another); the batches per server,
 * in the order given.
 */
export async function measureInTurns(servers: readonly Server[], flow: Flow, c: RequestCase, count: number, rounds: number, load: Load): Promise<Measured[][]> {
  return measureTurns(
    servers.map((server) => ({ server, flow, c, count })),
    rounds,
    load,
  );
}

/** One batch kind of measureTurns: a server, what it is sent, and what to set up before each batch. */
export interface Turn {
  server: Server;
  flow: Flow;
  c: RequestCase;
  count: number;
  before?: () => void;
}

/**
 * measureInTurns over any batch kinds (e.g. two scenarios on two servers), so that figures to be
 * compared share the same rounds and the machine's ups and downs; the batches per turn, in order.
 */
export async function measureTurns(turns: readonly Turn[], rounds: number, load: Load): Promise<Measured[][]> {
  const batches = turns.map((): Measured[] => []);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < turns.length; k++) {
      const i = (round + k) % turns.length;
      const t = turns[i]!;
      t.before?.();
      const batch = emptyMeasured();
      await measure(t.server, t.flow, t.c, t.count, load, batch);
      batches[i]!.push(batch);
    }
  }
  return batches;
}

/** The totals of several batches. */
export function mergeMeasured(batches: readonly Measured[]): Measured {
  const out = emptyMeasured();
  for (const b of batches) {
    out.requests += b.requests;
    out.wallMs += b.wallMs;
    out.cpuUs += b.cpuUs;
    out.storeCpuUs += b.storeCpuUs;
    for (const l of b.latencies) out.latencies.push(l);
    for (const l of b.bodyReplies) out.bodyReplies.push(l);
  }
  return out;
}

export const cpuPerRequest = (m: Measured): number => m.cpuUs / m.requests;

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

export const fmt = (n: number, digits: number): string =>
  Number.isFinite(n) ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "n/a";
