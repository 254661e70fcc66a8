// What the primary of `serve --workers N` and its workers say to each other over the cluster IPC
// channel. Every message carries `llmr`, so that messages of other libraries on the same channel
// (prom-client's cluster support, Node's own) are never taken for ours.
import type { MetricObjectWithValues, MetricValue } from "prom-client";

/** One registry's metrics as prom-client's getMetricsAsJSON() gives them (what AggregatorRegistry.aggregate takes). */
export type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>;

export type ToWorker =
  /** Answer with this worker's metrics (the primary's /metrics). */
  | { llmr: "metrics"; id: number }
  /** The admin port's /debug/log-level changed the level. */
  | { llmr: "log-level"; level: string }
  /** SIGHUP on the primary: re-read the policy file. */
  | { llmr: "reload" }
  /** SIGTERM/SIGINT on the primary: stop accepting, finish open streams within the grace period, exit 0. */
  | { llmr: "drain" };

export type FromWorker =
  /** Serving: the ext_proc server is bound. */
  | { llmr: "ready"; grpcPort: number; policyHash: string }
  /** Draining: no longer ready. */
  | { llmr: "draining" }
  | { llmr: "metrics"; id: number; metrics: MetricsJson };

const tagged = (m: unknown): boolean => typeof m === "object" && m !== null && typeof (m as { llmr?: unknown }).llmr === "string";

export const isFromWorker = (m: unknown): m is FromWorker => tagged(m);
export const isToWorker = (m: unknown): m is ToWorker => tagged(m);
