// The usage reader's own cost per response body chunk, in-process (no gRPC, no stream loop), as the
// router phase runs it on an OpenAI stream it asked usage for (include_usage added, so the usage
// chunk is also cut out). run.ts sets it next to the service's measured extra CPU per chunk.
import { performance } from "node:perf_hooks";
import { UsageReader } from "../src/usage/usage-reader";
import type { Answer } from "./response";

/** Mean µs per chunk over `iterations` whole answers. */
export function usageReadUsPerChunk(answer: Answer, iterations: number): number {
  const last = answer.chunks.length - 1;
  const once = () => {
    const reader = new UsageReader({ operation: "chat.completions", streaming: answer.contentType === "text/event-stream", stripUsageChunk: true });
    answer.chunks.forEach((chunk, i) => reader.push(chunk, i === last));
    if (reader.report().usage === undefined) throw new Error("the usage reader found no usage in the bench answer");
  };
  for (let i = 0; i < Math.min(200, iterations); i++) once();
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) once();
  return ((performance.now() - t0) * 1000) / (iterations * answer.chunks.length);
}
