// The stream translation's own cost per provider chunk, in-process (no gRPC, no stream loop), as the
// upstream phase runs it on an Anthropic Messages stream for an OpenAI client that asked for a
// stream (include_usage set: the router phase adds it). run.ts sets it next to the usage reader's
// cost per chunk (bench/usage-cost.ts) and the service's measured extra CPU of a translated stream.
import { performance } from "node:perf_hooks";
import { openAiToAnthropic } from "../src/translate/openai-to-anthropic";
import type { TranslationMeta } from "../src/translate/types";
import type { Answer } from "./response";

const META: TranslationMeta = { clientModel: "claude-sonnet-4-5", created: 1741570283, includeUsage: true };

export interface TranslationCost {
  /** Mean µs per provider chunk of `streamChunk` over whole answers (a fresh translator each). */
  usPerChunk: number;
  /** Provider chunks whose translation is not empty (the ones Envoy passes on). */
  nonEmpty: number;
}

export function translationCost(answer: Answer, iterations: number): TranslationCost {
  const last = answer.chunks.length - 1;
  const once = () => {
    const translator = openAiToAnthropic.response(META, true);
    let nonEmpty = 0;
    let tail: Buffer = Buffer.alloc(0);
    answer.chunks.forEach((chunk, i) => {
      const out = translator.streamChunk(chunk, i === last);
      if (out.length === 0) return;
      nonEmpty++;
      tail = out;
    });
    if (!tail.toString("utf8").endsWith("data: [DONE]\n\n")) throw new Error("the translated bench answer does not end with data: [DONE]");
    return nonEmpty;
  };
  const nonEmpty = once();
  for (let i = 1; i < Math.min(200, iterations); i++) once();
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) once();
  return { usPerChunk: ((performance.now() - t0) * 1000) / (iterations * answer.chunks.length), nonEmpty };
}
