// The request log line goes through an unredacted child of the process logger (src/log.ts: redaction
// is most of a log call's cost). That is safe only while no field of the line is a name a redaction
// path covers; these tests hold a complete line to that, and check the child follows its parent.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger, logRequest, REDACTED_PATHS, requestLine } from "../src/log";
import type { RequestSummary } from "../src/phases/request-summary";
import type { CompiledConsumer, CompiledPolicy, CompiledTarget } from "../src/policy/compile";

/** Every field of the line set: a field added to the line without a value here fails the first test. */
function completeSummary(): RequestSummary {
  return {
    requestId: "req-1",
    policy: {} as CompiledPolicy,
    consumer: { id: "alice", team: "search" } as CompiledConsumer,
    route: "smart",
    operation: "chat.completions",
    requestedModel: "smart",
    firstTarget: { id: "openai-gpt-4o" } as CompiledTarget,
    target: { id: "azure-gpt-4o" } as CompiledTarget,
    attempts: 2,
    status: 200,
    outcome: "success",
    errorCode: "quota_exceeded",
    cache: "miss",
    streaming: true,
    responseModel: "gpt-4o-2024-08-06",
    usage: { inputTokens: 12, outputTokens: 48, cachedInputTokens: 2, cacheWriteInputTokens: 0, reasoningTokens: 5 },
    usageReported: false,
    nanoUsd: 510_000,
    reserved: undefined,
    durationMs: 812.4,
    ttftMs: 120.25,
    tpotMs: 14.5,
    overheadMs: 0.31,
  };
}

/** The property name each redaction path ends in: `headers["x-api-key"]` -> x-api-key, `*.aws` -> aws. */
function redactedNames(): Set<string> {
  return new Set(REDACTED_PATHS.map((p) => p.match(/\["([^"]+)"\]$/)?.[1] ?? p.split(".").at(-1)!));
}

/** Every key of `value`, nested objects included, as dotted paths. */
function keyPaths(value: Record<string, unknown>, prefix = ""): string[] {
  return Object.entries(value).flatMap(([k, v]) => (typeof v === "object" && v !== null ? [prefix + k, ...keyPaths(v as Record<string, unknown>, `${prefix}${k}.`)] : [prefix + k]));
}

/** A logger writing into an array of parsed lines. */
function capture(level = "info") {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger(level, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

test("no field of a complete request line is a name the redaction paths cover", () => {
  const line = requestLine(completeSummary());
  const unset = Object.entries(line).filter(([, v]) => v === undefined).map(([k]) => k);
  assert.deepEqual(unset, [], "completeSummary() must set every field of the line");
  const names = redactedNames();
  assert.ok(names.has("authorization") && names.has("x-api-key") && names.has("aws"), [...names].join(","));
  const clashes = keyPaths(line).filter((p) => names.has(p.split(".").at(-1)!));
  assert.deepEqual(clashes, []);
});

test("the request line is written as built, with the logger's bindings; redaction still applies to other lines", () => {
  const { log, lines } = capture();
  const worker = log.child({ worker: 2 });
  logRequest(worker, completeSummary());
  worker.info({ headers: { authorization: "Bearer sk-secret" }, apiKey: "sk-other" }, "something else");
  assert.equal(lines.length, 2);
  const [request, other] = lines as [Record<string, unknown>, Record<string, unknown>];
  const { level, time, service, worker: w, msg, ...fields } = request;
  assert.deepEqual({ level, service, w, msg }, { level: 30, service: "llm-router", w: 2, msg: "request" });
  assert.equal(typeof time, "string");
  assert.deepEqual(fields, JSON.parse(JSON.stringify(requestLine(completeSummary()))));
  assert.deepEqual(other.headers, { authorization: "[redacted]" });
  assert.equal(other.apiKey, "[redacted]");
  assert.ok(!JSON.stringify(lines).includes("sk-"));
});

test("the request line follows the logger's level as /debug/log-level changes it", () => {
  const { log, lines } = capture();
  logRequest(log, completeSummary());
  log.level = "warn";
  logRequest(log, completeSummary());
  assert.equal(lines.length, 1);
  log.level = "info";
  logRequest(log, completeSummary());
  assert.equal(lines.length, 2);
  const quiet = capture("error");
  logRequest(quiet.log, completeSummary());
  quiet.log.level = "debug";
  logRequest(quiet.log, completeSummary());
  assert.equal(quiet.lines.length, 1);
});
