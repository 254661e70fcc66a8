// BucketHistogram (src/metrics/bucket-histogram.ts) stands in for prom-client's Histogram on the
// request path: for any observations, /metrics text, the JSON the workers send their primary, and the
// primary's aggregate must be exactly prom-client's.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AggregatorRegistry, Histogram, Registry } from "prom-client";
import { BucketHistogram } from "../src/metrics/bucket-histogram";

const BUCKETS = [0.000025, 0.0001, 0.001, 0.25, 1, 30];
const LABELS = ["phase", "message"] as const;

function pair() {
  const theirs = new Registry();
  const ours = new Registry();
  const opts = { name: "x_seconds", help: 'Help with "quotes" and \\ backslash', labelNames: [...LABELS], buckets: BUCKETS };
  const h = new Histogram({ ...opts, registers: [theirs] });
  const b = new BucketHistogram({ ...opts, registers: [ours] });
  return { theirs, ours, h, b };
}

/** Values around every bound (equal, just under, just over), below the first, above the last, negative. */
const value = fc.oneof(
  fc.constantFrom(...BUCKETS, 0, -1, 1e9),
  fc.constantFrom(...BUCKETS).chain((b) => fc.constantFrom(b * (1 - 1e-12), b * (1 + 1e-12))),
  fc.double({ min: -10, max: 100, noNaN: true }),
);
const labelValue = fc.constantFrom("router", "upstream", "request_headers", 'odd "value"\n', "");

describe("BucketHistogram", () => {
  it("exposes exactly what prom-client's Histogram does, as text, JSON and the workers' aggregate", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(labelValue, labelValue, value), { maxLength: 60 }), async (observations) => {
        const { theirs, ours, h, b } = pair();
        for (const [phase, message, v] of observations) {
          h.labels(phase, message).observe(v);
          b.labels(phase, message).observe(v);
        }
        assert.equal(await ours.metrics(), await theirs.metrics());
        // As a worker sends it to the primary: JSON over IPC.
        const json = async (r: Registry) => JSON.parse(JSON.stringify(await r.getMetricsAsJSON())) as unknown;
        const [jsonOurs, jsonTheirs] = [await json(ours), await json(theirs)];
        assert.deepEqual(jsonOurs, jsonTheirs);
        const aggregate = async (json: unknown) => AggregatorRegistry.aggregate([json, json] as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics();
        assert.equal(await aggregate(jsonOurs), await aggregate(jsonTheirs));
      }),
      { numRuns: 300 },
    );
  });

  it("a child made once keeps counting; a series appears at its first observation, not at labels()", async () => {
    const { theirs, ours, h, b } = pair();
    const mine = b.labels("router", "request_body");
    h.labels("router", "request_body");
    assert.equal(await ours.metrics(), await theirs.metrics());
    assert.doesNotMatch(await ours.metrics(), /request_body/);
    for (const v of [0.00001, 0.0005, 2, 40]) {
      mine.observe(v);
      h.labels("router", "request_body").observe(v);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());
    assert.match(await ours.metrics(), /x_seconds_bucket\{le="0\.001",phase="router",message="request_body"\} 2/);
  });

  it("reset() drops every series, and children made before it start new ones", async () => {
    const { theirs, ours, h, b } = pair();
    const mine = b.labels("router", "a");
    mine.observe(0.5);
    h.labels("router", "a").observe(0.5);
    theirs.resetMetrics();
    ours.resetMetrics();
    assert.equal(await ours.metrics(), await theirs.metrics());
    mine.observe(3);
    h.labels("router", "a").observe(3);
    assert.equal(await ours.metrics(), await theirs.metrics());
    assert.match(await ours.metrics(), /x_seconds_count\{phase="router",message="a"\} 1/);
  });

  it("refuses what prom-client refuses: a non-finite value, the wrong number of label values", () => {
    const { h, b } = pair();
    for (const bad of [NaN, Infinity, -Infinity]) {
      assert.throws(() => h.labels("a", "b").observe(bad), TypeError);
      assert.throws(() => b.labels("a", "b").observe(bad), TypeError);
    }
    assert.throws(() => b.labels("a"));
    assert.throws(() => new BucketHistogram({ name: "y", help: "y", labelNames: [], buckets: [1, 1], registers: [] }));
    assert.throws(() => new BucketHistogram({ name: "y", help: "y", labelNames: ["le"], buckets: [1], registers: [] }));
  });
});
