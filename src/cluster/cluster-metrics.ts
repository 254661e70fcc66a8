// /metrics of `serve --workers N`, on the primary: every worker's registry (over IPC), added up
// with prom-client's AggregatorRegistry.aggregate, each metric by its own `aggregator` (counters and
// histograms sum, as do per-process gauges such as open streams; the policy's info gauge takes the
// max, see src/metrics/metrics.ts). No `worker` label: the series are the service's, as with one
// process, and the cardinality does not grow with N.
//
// Not prom-client's clusterMetrics(): it asks every connected worker, so a scrape while one is
// still starting waits its 5 s timeout and fails, as does a scrape during which one dies. Here a
// scrape asks the workers that serve, answers with a worker's last values when it does not reply in
// time, and keeps the counters of workers that died (as of the last scrape) in the totals: a
// restarted worker starts from 0, and without that the sums would drop, which Prometheus's rate()
// reads as a counter reset and turns into a spike.
import type { Worker } from "node:cluster";
import { AggregatorRegistry } from "prom-client";
import { isFromWorker, type MetricsJson, type ToWorker } from "./messages";

/** A worker busy with a burst still answers well within Prometheus's default 10 s scrape timeout. */
const REPLY_TIMEOUT_MS = 3000;

/** Types whose values only grow. (prom-client's typings call `type` an enum; the JSON holds these names.) */
const MONOTONIC = new Set(["counter", "histogram"]);

export class ClusterMetrics {
  /** Each live worker's registry as of its last reply, by cluster worker id. */
  readonly #last = new Map<number, MetricsJson>();
  /** The summed counters and histograms of the workers that exited. */
  #retired: MetricsJson = [];
  readonly #pending = new Map<number, (metrics: MetricsJson | undefined) => void>();
  #nextId = 0;

  /** Feed every message from a worker here (cluster "message"). */
  received(message: unknown): void {
    if (!isFromWorker(message) || message.llmr !== "metrics") return;
    this.#pending.get(message.id)?.(message.metrics);
    this.#pending.delete(message.id);
  }

  /** A worker exited: its counters as of its last reply stay in the totals. */
  exited(worker: Worker): void {
    const last = this.#last.get(worker.id);
    this.#last.delete(worker.id);
    if (last === undefined) return;
    const monotonic = last.filter((m) => MONOTONIC.has(String(m.type)) && m.aggregator === "sum");
    this.#retired = AggregatorRegistry.aggregate([this.#retired, monotonic]).getMetricsAsArray() as unknown as MetricsJson;
  }

  /** The exposition over `workers` (those serving) and the workers gone. */
  async text(workers: readonly Worker[]): Promise<{ contentType: string; body: string }> {
    await Promise.all(
      workers.map(async (w) => {
        const metrics = await this.#ask(w);
        // A reply that raced the worker's exit is already counted among the retired.
        if (metrics !== undefined && !w.isDead()) this.#last.set(w.id, metrics);
      }),
    );
    // One synchronous step: a worker is in #last or in #retired, never both.
    const registry = AggregatorRegistry.aggregate([...this.#last.values(), this.#retired]);
    return { contentType: registry.contentType, body: await registry.metrics() };
  }

  #ask(worker: Worker): Promise<MetricsJson | undefined> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const done = (metrics: MetricsJson | undefined) => {
        clearTimeout(timer);
        worker.off("exit", gone);
        this.#pending.delete(id);
        resolve(metrics);
      };
      const gone = () => done(undefined);
      const timer = setTimeout(gone, REPLY_TIMEOUT_MS);
      this.#pending.set(id, done);
      worker.once("exit", gone);
      // With a callback, a closed channel is reported to it instead of as an "error" event.
      worker.send({ llmr: "metrics", id } satisfies ToWorker, (err: Error | null) => {
        if (err) done(undefined);
      });
    });
  }
}
