// What metrics and the request log cost per request, in-process: for one both-phase chat completion
// (the bench's 1 KiB scenario), the stream metrics of its 8 ext_proc messages, the request and
// attempt summaries recorded in the request and GenAI metrics, and the request's JSON log line
// through the service's own logger (redaction included) to /dev/null. run.ts sets it next to the
// service's measured CPU per request.
import { readFileSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import pino from "pino";
import { createLogger, logAttempt, logRequest } from "../src/log";
import { GatewayMetrics } from "../src/metrics/metrics";
import type { AttemptSummary, RequestSummary } from "../src/phases/request-summary";
import { compilePolicyText } from "../src/policy/compile";

const EXAMPLE_POLICY = path.resolve(__dirname, "../../examples/policy.json");

export interface ObservabilityCost {
  /** Metrics only (stream, request, attempt), µs per request. */
  metricsUs: number;
  /** The request log line (and the attempt's, skipped below debug), µs per request. */
  logUs: number;
}

export function measureObservability(iterations: number): ObservabilityCost {
  const policy = compilePolicyText(readFileSync(EXAMPLE_POLICY, "utf8"), { file: "policy.json", resolveSecrets: false });
  const target = policy.targets.get("openai-gpt-4o");
  const consumer = policy.consumerForKeyDigest(Buffer.alloc(32)) ?? { id: "alice", team: undefined, labels: {}, allowRoutes: undefined, allowModels: undefined };
  if (target === undefined) throw new Error("example policy without openai-gpt-4o");
  const metrics = new GatewayMetrics({ processMetrics: false });
  metrics.requests.policyLoaded(policy);
  const router = metrics.stream("router");
  const upstream = metrics.stream("upstream");
  const log = createLogger("info", pino.destination({ dest: "/dev/null", sync: false }));
  const summary = (i: number): RequestSummary => ({
    requestId: `bench-${i}`,
    policy,
    consumer,
    route: "smart",
    operation: "chat.completions",
    requestedModel: "smart",
    firstTarget: target,
    target,
    attempts: 1,
    status: 200,
    outcome: "success",
    errorCode: undefined,
    cache: undefined,
    streaming: false,
    responseModel: "gpt-4o-2024-08-06",
    usage: { inputTokens: 250 + (i % 50), outputTokens: 120, cachedInputTokens: 0, cacheWriteInputTokens: 0, reasoningTokens: 0 },
    usageReported: true,
    nanoUsd: 1_825_000,
    reserved: { tokens: 4346, minTokens: 250, nanoUsd: 41_585_000, minNanoUsd: 625_000 },
    durationMs: 412.5 + (i % 7),
    ttftMs: undefined,
    tpotMs: undefined,
    overheadMs: 0.21,
  });
  const attempt = (i: number): AttemptSummary => ({ requestId: `bench-${i}`, route: "smart", target, attempt: 1, status: 200, latencyMs: 380 + (i % 9), cooldownEntered: false, overheadMs: 0.08 });

  const recordMetrics = (i: number) => {
    router.opened();
    upstream.opened();
    for (const kind of ["request_headers", "request_body", "response_headers", "response_body"] as const) router.answered(kind, 0.00004);
    for (const kind of ["request_headers", "request_body", "response_headers"] as const) upstream.answered(kind, 0.00003);
    upstream.ended("ok");
    metrics.requests.attempted(attempt(i));
    metrics.requests.completed(summary(i));
    router.ended("ok");
  };
  const writeLog = (i: number) => {
    logAttempt(log, attempt(i));
    logRequest(log, summary(i));
  };
  // The summaries themselves are built by the phases either way; timed once to subtract.
  const build = (i: number) => {
    attempt(i);
    summary(i);
  };
  const time = (f: (i: number) => void): number => {
    for (let i = 0; i < Math.min(2000, iterations); i++) f(i);
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) f(i);
    return ((performance.now() - t0) * 1000) / iterations;
  };
  const buildUs = time(build);
  return { metricsUs: Math.max(0, time(recordMetrics) - buildUs), logUs: Math.max(0, time(writeLog) - buildUs) };
}
