// A Prometheus histogram for the request path, on a prom-client Registry beside prom-client's own
// metrics, exposed exactly as prom-client's Histogram exposes the same observations (same text, same
// JSON for `serve --workers` aggregation: test/bucket-histogram.test.ts compares them).
//
// Why not prom-client's Histogram: its observe() turns the bound label values back into an object,
// validates and hashes it, then finds the bucket by number-keyed property lookups, on every call. A
// request makes about fifteen observations (one per ext_proc message, then the request's and its
// attempts'), and in the service's CPU profile that was the largest single cost after gRPC itself.
// Here a child holds its series once it exists: an observation is a bucket scan and three additions.
import type { Metric, Registry } from "prom-client";

export interface Observer {
  observe(value: number): void;
}

/** A sample as prom-client's Registry reads it from get() / getForPromString(). */
interface Sample {
  value: number;
  metricName: string;
  /** prom-client's bucket samples carry `exemplar: null` (exemplars are off): the same JSON. */
  exemplar?: null;
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
}

interface Exported {
  name: string;
  help: string;
  type: "histogram";
  values: Sample[];
  aggregator: "sum";
}

interface Series {
  /** Label name -> value, in labelNames order (prom-client's order, so the text is the same). */
  labels: Record<string, string>;
  /** Observations per bucket, not cumulative: counts[i] has the values in (bounds[i-1], bounds[i]]. */
  counts: Float64Array;
  sum: number;
  count: number;
  /** False once reset() dropped it: a child holding it then starts a new series. */
  live: boolean;
}

export interface BucketHistogramOptions {
  name: string;
  help: string;
  labelNames: readonly string[];
  /** Upper bounds, ascending (+Inf is implied, as in prom-client). */
  buckets: readonly number[];
  registers: Registry[];
}

export class BucketHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram";
  /** How `serve --workers` combines the workers' values (prom-client's AggregatorRegistry). */
  readonly aggregator = "sum";
  readonly labelNames: readonly string[];
  readonly #bounds: Float64Array;
  /** Series by their label values joined with NUL, in the order they were first observed. */
  readonly #series = new Map<string, Series>();

  constructor(opts: BucketHistogramOptions) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = [...opts.labelNames];
    if (this.labelNames.includes("le")) throw new Error(`${opts.name}: "le" is the bucket label`);
    for (let i = 0; i < opts.buckets.length; i++) {
      if (!Number.isFinite(opts.buckets[i]) || (i > 0 && opts.buckets[i]! <= opts.buckets[i - 1]!)) throw new Error(`${opts.name}: buckets must be finite and ascending`);
    }
    this.#bounds = Float64Array.from(opts.buckets);
    // The registry only reads name, get() / getForPromString() and reset(): prom-client's metric contract.
    for (const r of opts.registers) r.registerMetric(this as unknown as Metric);
  }

  /** The child for these label values (in labelNames order); its series appears at its first observation. */
  labels(...values: string[]): Observer {
    if (values.length !== this.labelNames.length) throw new Error(`${this.name}: ${this.labelNames.length} label values expected, got ${values.length}`);
    const key = values.join("\u0000");
    let series: Series | undefined;
    return {
      observe: (value: number) => {
        if (!Number.isFinite(value)) throw new TypeError(`${this.name}: not a finite number: ${value}`);
        if (series === undefined || !series.live) series = this.#seriesFor(key, values);
        const bounds = this.#bounds;
        for (let i = 0; i < bounds.length; i++) {
          if (value <= bounds[i]!) {
            series.counts[i]!++;
            break;
          }
        }
        series.sum += value;
        series.count++;
      },
    };
  }

  #seriesFor(key: string, values: readonly string[]): Series {
    let s = this.#series.get(key);
    if (s === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i]!));
      s = { labels, counts: new Float64Array(this.#bounds.length), sum: 0, count: 0, live: true };
      this.#series.set(key, s);
    }
    return s;
  }

  /** Every series gone (prom-client's Registry.resetMetrics); children made before start a new one. */
  reset(): void {
    for (const s of this.#series.values()) s.live = false;
    this.#series.clear();
  }

  /** For the text exposition: bucket lines carry `le` first, then the series' labels (as prom-client). */
  getForPromString(): Promise<Exported> {
    return Promise.resolve(this.#export((s, extra) => ({ labels: extra, sharedLabels: s.labels })));
  }

  /** For JSON (getMetricsAsJSON, the workers' aggregation): each value's labels in one object. */
  get(): Promise<Exported> {
    return Promise.resolve(this.#export((s, extra) => ({ labels: { ...extra, ...s.labels } })));
  }

  #export(labelsOf: (s: Series, extra: Record<string, string | number>) => Pick<Sample, "labels" | "sharedLabels">): Exported {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.#series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += s.counts[i]!;
        values.push({ value: cumulative, metricName: bucket, exemplar: null, ...labelsOf(s, { le: this.#bounds[i]! }) });
      }
      values.push({ value: s.count, metricName: bucket, exemplar: null, ...labelsOf(s, { le: "+Inf" }) });
      values.push({ value: s.sum, metricName: `${this.name}_sum`, ...labelsOf(s, {}) });
      values.push({ value: s.count, metricName: `${this.name}_count`, ...labelsOf(s, {}) });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
