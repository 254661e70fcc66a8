// Every Prometheus metric of the process, on its own prom-client registry (served at /metrics on
// the admin port; README "Metrics" lists them): the ext_proc stream and policy metrics here, the
// request-level ones and the OpenTelemetry GenAI instruments in request-metrics.ts, and Node's
// process metrics.
//
// Labels are bounded: phases, message kinds and outcomes are fixed sets; route, target and model
// values come from the policy only (labels.ts). The hot path observes through pre-resolved
// children (prom-client's labels() hashes the label values on every call otherwise), and its
// histograms are BucketHistograms (bucket-histogram.ts: prom-client's exposition, a cheaper observe).
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { ExtProcMessage, StreamOutcome } from "../extproc/messages";
import { BucketHistogram } from "./bucket-histogram";
import { PREFIX } from "./labels";
import { RequestMetrics } from "./request-metrics";


/**
 * Time the service takes to answer one ext_proc message, seconds. Envoy holds the request for it,
 * so this is the gateway's added latency per message. Most answers take tens of microseconds;
 * admissions wait for Redis (sub-millisecond to the command timeout) and coalesced cache misses
 * wait for another request's answer (seconds), hence buckets from 25 µs to 30 s.
 */
const MESSAGE_BUCKETS = [0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30];

const STREAM_ENDS: readonly StreamOutcome[] = ["ok", "cancelled", "error"];

export const PHASES = ["router", "upstream"] as const;
export type Phase = (typeof PHASES)[number];

type MessageKind = ExtProcMessage["kind"];
const MESSAGE_KINDS: readonly MessageKind[] = ["request_headers", "request_body", "request_trailers", "response_headers", "response_body", "response_trailers"];

const RELOAD_RESULTS = ["applied", "unchanged", "rejected"] as const;
export type ReloadResultLabel = (typeof RELOAD_RESULTS)[number];

/** What one phase's stream loop records: per-message answer time, and streams opened and ended. */
export interface StreamMetrics {
  opened(): void;
  answered(kind: MessageKind, seconds: number): void;
  ended(end: StreamOutcome): void;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  /** Requests, attempts, quotas, cache, cooldowns, Redis, and the GenAI instruments. */
  readonly requests = new RequestMetrics(this.registry);
  readonly #streams: Counter<"phase" | "end">;
  readonly #active: Gauge<"phase">;
  readonly #answer: BucketHistogram;
  readonly #reloads: Counter<"result">;
  readonly #policyInfo: Gauge<"hash">;
  readonly #streamMetrics = new Map<Phase, StreamMetrics>();

  constructor(opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.#streams = new Counter({ name: `${PREFIX}ext_proc_streams_total`, help: "ext_proc streams that ended, by phase and how: ok (Envoy half-closed), cancelled (Envoy or the client went away), error (the service ended it with a gRPC error)", labelNames: ["phase", "end"], registers });
    this.#active = new Gauge({ name: `${PREFIX}ext_proc_streams_active`, help: "ext_proc streams open now, by phase (router phase: requests in flight)", labelNames: ["phase"], registers });
    this.#answer = new BucketHistogram({ name: `${PREFIX}ext_proc_message_duration_seconds`, help: "Time from receiving an ext_proc message to writing its reply (Redis and cache waits included), by phase and message", labelNames: ["phase", "message"], buckets: MESSAGE_BUCKETS, registers });
    // Policy state, not per-process work: with `serve --workers N` every worker reloads the same
    // file, so the primary's /metrics takes the largest worker's count and the live hashes (each 1),
    // not N times either (src/cluster/cluster-metrics.ts). Everything else sums.
    this.#reloads = new Counter({ name: `${PREFIX}policy_reloads_total`, help: "Policy reloads by result: applied (a new policy is live), unchanged (same content), rejected (invalid; the last good policy stays)", labelNames: ["result"], registers, aggregator: "max" });
    this.#policyInfo = new Gauge({ name: `${PREFIX}policy_info`, help: "The live policy: 1 for its content hash", labelNames: ["hash"], registers, aggregator: "max" });
    for (const phase of PHASES) {
      // Every series exists from the start (at 0), so rate() and alerts see the first event.
      for (const end of STREAM_ENDS) this.#streams.labels(phase, end).inc(0);
      this.#active.labels(phase).set(0);
    }
    for (const result of RELOAD_RESULTS) this.#reloads.labels(result).inc(0);
    // Node's process metrics under their usual names (process_*, nodejs_*), as Node dashboards expect.
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The stream loop's hooks for one phase (children resolved once). */
  stream(phase: Phase): StreamMetrics {
    let m = this.#streamMetrics.get(phase);
    if (m === undefined) {
      const active = this.#active.labels(phase);
      const ends = new Map(STREAM_ENDS.map((e) => [e, this.#streams.labels(phase, e)]));
      const answers = new Map(MESSAGE_KINDS.map((k) => [k, this.#answer.labels(phase, k)]));
      m = {
        opened: () => active.inc(),
        answered: (kind, seconds) => answers.get(kind)?.observe(seconds),
        ended: (end) => {
          active.dec();
          ends.get(end)?.inc();
        },
      };
      this.#streamMetrics.set(phase, m);
    }
    return m;
  }

  policyReloaded(result: ReloadResultLabel): void {
    this.#reloads.labels(result).inc();
  }

  /** The live policy's hash (the previous one's series is removed). */
  policyLoaded(hash: string): void {
    this.#policyInfo.reset();
    this.#policyInfo.labels(hash).set(1);
  }

  /** The exposition, for /metrics. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
