// Quota rules as pure functions (which rules apply, which checks, the headers), the gate's answers
// and settlement over the memory store, and the router phase settling a stream cut short.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pino from "pino";
import { GatewayError } from "../src/api/errors";
import { compilePolicyText, type CompiledConsumer } from "../src/policy/compile";
import { PolicyError } from "../src/policy/policy-error";
import { calendarWindow, resetDuration } from "../src/quota/limit-kinds";
import { applicableRules, checksFor, type CompiledLimits, type QuotaSubject } from "../src/quota/limit-rules";
import { ledgerKey, QuotaGate } from "../src/quota/quota-gate";
import type { QuotaStore } from "../src/quota/quota-store";
import { rateLimitHeaders } from "../src/quota/rate-limit-headers";
import { bodyMessage, ExtProcTestClient, headersMessage, setHeaders } from "./support/ext-proc-client";
import { examplePolicy, startTestService } from "./support/service";

const T0 = Date.UTC(2026, 10, 21, 12, 0, 0);

function compiled(limits: object) {
  const doc = examplePolicy() as Record<string, unknown>;
  doc.limits = limits;
  return compilePolicyText(JSON.stringify(doc), { file: "policy.json", resolveSecrets: false });
}

const alice: CompiledConsumer = { id: "alice", team: "enterprise", labels: { tier: "gold" }, allowRoutes: undefined, allowModels: undefined };
const loner: CompiledConsumer = { id: "loner", team: undefined, labels: {}, allowRoutes: undefined, allowModels: undefined };
const subject = (consumer = alice): QuotaSubject => ({ consumer, route: "smart", target: "openai-gpt-4o" });
const reservation = { tokens: 5000, minTokens: 1000, nanoUsd: 40_000_000, minNanoUsd: 2_500_000 };

describe("limit rules from the policy", () => {
  it("rejects unknown references and duplicate names, naming the JSON path", () => {
    const bad = () =>
      compiled({
        rules: [
          { name: "a", match: { consumers: ["nobody"], routes: ["nowhere"], targets: ["gpt-5"], teams: ["ghosts"] }, requestsPerMinute: 1 },
          { name: "a", requestsPerMinute: 1 },
        ],
      });
    assert.throws(bad, (err: unknown) => {
      assert.ok(err instanceof PolicyError);
      const text = err.message;
      for (const want of ["limits.rules[0].match.consumers: unknown consumer", "limits.rules[0].match.routes: unknown route", "limits.rules[0].match.targets: unknown target", "limits.rules[0].match.teams: unknown team", "limits.rules[1].name: duplicate rule name"]) {
        assert.ok(text.includes(want), `${want}\n${text}`);
      }
      return true;
    });
  });

  it("a rule without any limit is a schema error", () => {
    assert.throws(() => compiled({ rules: [{ name: "b" }] }), /limits\.rules\[0\]: a rule needs at least one of/);
  });

  it("applies a rule only where all of its match holds; per-team rules skip consumers without a team", () => {
    const limits = compiled({
      rules: [
        { name: "everyone", requestsPerMinute: 10 },
        { name: "gold", match: { labels: { tier: "gold" } }, requestsPerMinute: 10 },
        { name: "teams", per: "team", requestsPerMinute: 10 },
        { name: "other-route", match: { routes: ["fast"] }, requestsPerMinute: 10 },
        { name: "this-target", match: { targets: ["openai-gpt-4o"], teams: ["enterprise"] }, requestsPerMinute: 10 },
      ],
    }).limits;
    assert.deepEqual(applicableRules(limits, subject()).map((r) => r.name), ["everyone", "gold", "teams", "this-target"]);
    assert.deepEqual(applicableRules(limits, subject(loner)).map((r) => r.name), ["everyone"]);
  });

  it("builds one check per limit, keyed by scope (hash tag), rule, kind and calendar window", () => {
    const limits = compiled({
      rules: [
        { name: "c", requestsPerMinute: 100, tokensPerMinute: 100_000, tokensPerDay: 1_000_000, usdPerDay: 10, usdPerMonth: 100, concurrent: 5 },
        { name: "t", per: "team", requestsPerMinute: 1 },
        { name: "r", per: "route", requestsPerMinute: 1 },
        { name: "g", per: "target", requestsPerMinute: 1 },
        { name: "all", per: "all", requestsPerMinute: 1 },
      ],
    }).limits;
    const { checks, impossible } = checksFor(applicableRules(limits, subject()), subject(), reservation, T0, limits.leaseTtlMs);
    assert.equal(impossible, undefined);
    assert.deepEqual(
      checks.map((c) => [c.key, c.algo, c.limit, c.algo === "lease" ? c.ttlMs : c.cost]),
      [
        ["{c:alice}:c:rpm", "bucket", 100, 1],
        ["{c:alice}:c:tpm", "bucket", 100_000, 5000],
        ["{c:alice}:c:tpd:d20261121", "window", 1_000_000, 5000],
        ["{c:alice}:c:upd:d20261121", "window", 10e9, 40_000_000],
        ["{c:alice}:c:upm:m202611", "window", 100e9, 40_000_000],
        ["{c:alice}:c:cc", "lease", 5, 900_000],
        ["{t:enterprise}:t:rpm", "bucket", 1, 1],
        ["{r:smart}:r:rpm", "bucket", 1, 1],
        ["{g:openai-gpt-4o}:g:rpm", "bucket", 1, 1],
        ["{all}:all:rpm", "bucket", 1, 1],
      ],
    );
  });

  it("caps a reservation at the limit, but a prompt alone over the limit can never pass", () => {
    const limits: CompiledLimits = compiled({ rules: [{ name: "small", tokensPerMinute: 3000 }] }).limits;
    const rules = applicableRules(limits, subject());
    const capped = checksFor(rules, subject(), reservation, T0, 1000);
    assert.equal(capped.impossible, undefined);
    assert.equal(capped.checks[0]?.algo === "bucket" && capped.checks[0].cost, 3000);
    const over = checksFor(rules, subject(), { ...reservation, minTokens: 3001 }, T0, 1000);
    assert.deepEqual(over.impossible, { rule: "small", kind: "tokens_per_minute", limit: 3000, needed: 3001 });
  });

  it("divides limits by the replica share, and counts without limit for an unlimited share", () => {
    const limits = compiled({ rules: [{ name: "r", requestsPerMinute: 11 }], replicas: 2 }).limits;
    const rules = applicableRules(limits, subject());
    assert.equal(checksFor(rules, subject(), reservation, T0, 1000, () => 2).checks[0]?.limit, 5);
    assert.equal(checksFor(rules, subject(), reservation, T0, 1000, () => Infinity).checks[0]?.limit, Number.MAX_SAFE_INTEGER);
  });
});

describe("windows and header formats", () => {
  it("calendar windows are UTC days and months", () => {
    assert.deepEqual(calendarWindow("day", Date.UTC(2026, 11, 31, 23, 59)), { id: "d20261231", start: Date.UTC(2026, 11, 31), end: Date.UTC(2027, 0, 1) });
    assert.deepEqual(calendarWindow("month", Date.UTC(2026, 11, 31, 23, 59)), { id: "m202612", start: Date.UTC(2026, 11, 1), end: Date.UTC(2027, 0, 1) });
  });

  it("reset durations read like OpenAI's", () => {
    const table: Array<[number, string]> = [[0, "0ms"], [20, "20ms"], [999.2, "1s"], [1000, "1s"], [1500, "1.5s"], [60_000, "1m0s"], [360_000, "6m0s"], [3_723_000, "1h2m3s"]];
    for (const [ms, want] of table) assert.equal(resetDuration(ms), want, String(ms));
  });

  it("shows the tightest rule of each family; dollars with 4 decimals; no reset for concurrency", () => {
    const limits = compiled({ rules: [{ name: "a", requestsPerMinute: 100, usdPerDay: 10, concurrent: 3 }, { name: "b", requestsPerMinute: 10 }] }).limits;
    const { checks } = checksFor(applicableRules(limits, subject()), subject(), reservation, T0, 1000);
    const states = [
      { remaining: 50, resetAt: T0 + 30_000 },
      { remaining: 9_960_000_000, resetAt: Date.UTC(2026, 10, 22) },
      { remaining: 2, resetAt: T0 },
      { remaining: 2, resetAt: T0 + 6000 },
    ];
    assert.deepEqual(rateLimitHeaders(checks, states, T0), [
      ["x-ratelimit-limit-requests", "10"],
      ["x-ratelimit-remaining-requests", "2"],
      ["x-ratelimit-reset-requests", "6s"],
      ["x-ratelimit-limit-usd", "10.0000"],
      ["x-ratelimit-remaining-usd", "9.9600"],
      ["x-ratelimit-reset-usd", "12h0m0s"],
      ["x-ratelimit-limit-concurrent", "3"],
      ["x-ratelimit-remaining-concurrent", "2"],
    ]);
  });
});

describe("quota gate (memory store)", () => {
  const log = pino({ level: "silent" });

  it("refuses with the rule, the limit and when to retry; settles unused tokens back; keeps the ledger", async () => {
    const limits = compiled({ rules: [{ name: "tpm", tokensPerMinute: 10_000 }] }).limits;
    const gate = new QuotaGate(undefined, log);
    const first = await gate.admit(limits, subject(), { ...reservation, tokens: 6000 }, T0);
    assert.deepEqual(first.headers, [["x-ratelimit-limit-tokens", "10000"], ["x-ratelimit-remaining-tokens", "4000"], ["x-ratelimit-reset-tokens", "36s"]]);
    await assert.rejects(
      async () => gate.admit(limits, subject(), { ...reservation, tokens: 6000 }, T0),
      (err: unknown) => {
        assert.ok(err instanceof GatewayError);
        assert.equal(err.code, "rate_limit_exceeded");
        assert.equal(err.detail, "Rule `tpm`: 10000 tokens per minute. Retry in 12s.");
        assert.deepEqual(Object.fromEntries(err.headers), {
          "x-ratelimit-limit-tokens": "10000",
          "x-ratelimit-remaining-tokens": "4000",
          "x-ratelimit-reset-tokens": "36s",
          "x-llm-router-limit": "tpm",
          "retry-after": "12",
        });
        return true;
      },
    );
    const usage = { inputTokens: 800, outputTokens: 200, cachedInputTokens: 100, cacheWriteInputTokens: 0, reasoningTokens: 50 };
    await first.settle({ usage, nanoUsd: 3_000_000, target: "openai-gpt-4o" }, T0);
    await first.settle(undefined, T0); // a second settlement is ignored
    const again = await gate.admit(limits, subject(), { ...reservation, tokens: 6000 }, T0);
    assert.deepEqual(again.headers[1], ["x-ratelimit-remaining-tokens", "3000"], "10,000 - 1,000 used - 6,000 reserved");
    await gate.idle();
    assert.deepEqual(await gate.local.ledger(ledgerKey("alice", T0)), { requests: 1, input_tokens: 800, output_tokens: 200, cached_input_tokens: 100, reasoning_tokens: 50, nano_usd: 3_000_000 });
  });

  it("while the store is down, a local rule's share is divided by replicas and by the workers of each", async () => {
    // A shared store that is unreachable: every call fails as a Redis outage does.
    const down: QuotaStore = {
      admit: () => Promise.reject(new Error("connect ECONNREFUSED")),
      settle: () => Promise.reject(new Error("connect ECONNREFUSED")),
      ledger: () => Promise.reject(new Error("connect ECONNREFUSED")),
      close: () => Promise.resolve(),
    };
    const limits = compiled({ rules: [{ name: "ci", requestsPerMinute: 12, failMode: "local" }], replicas: 2 }).limits;
    const admitted = async (gate: QuotaGate) => {
      let n = 0;
      for (let i = 0; i < 10; i++) {
        try {
          await gate.admit(limits, subject(), reservation, T0);
          n++;
        } catch (err) {
          assert.ok(err instanceof GatewayError && err.code === "rate_limit_exceeded");
        }
      }
      return n;
    };
    assert.equal(await admitted(new QuotaGate(down, log)), 6, "12 a minute over 2 replicas");
    assert.equal(await admitted(new QuotaGate(down, log, undefined, 2)), 3, "12 over 2 replicas of 2 workers each");
  });

  it("admits synchronously when no rule applies", () => {
    const limits = compiled({ rules: [{ name: "bob-only", match: { consumers: ["bob"] }, requestsPerMinute: 1 }] }).limits;
    const ticket = new QuotaGate(undefined, log).admit(limits, subject(), reservation, T0);
    assert.ok(!(ticket instanceof Promise));
    assert.deepEqual(ticket.headers, []);
  });

  it("a request bigger than a whole budget is a 400 that says retrying will not help", () => {
    const limits = compiled({ rules: [{ name: "tiny", usdPerDay: 0.001 }] }).limits;
    assert.throws(
      () => new QuotaGate(undefined, log).admit(limits, subject(), reservation, T0),
      (err: unknown) => err instanceof GatewayError && err.code === "request_over_limit" && err.status === 400 && /tiny/.test(err.detail ?? ""),
    );
  });
});

describe("router phase settlement", () => {
  it("a stream the client abandons is charged for the prompt and the output relayed so far", async () => {
    const doc = examplePolicy() as Record<string, unknown>;
    doc.limits = { rules: [{ name: "alice-tpd", match: { consumers: ["alice"] }, tokensPerDay: 1_000_000 }] };
    const svc = await startTestService(doc);
    const client = new ExtProcTestClient(svc.address);
    try {
      const s = client.open("router");
      await s.send(headersMessage({ ":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json", authorization: "Bearer sk-demo-alice" }));
      const routed = await s.send(bodyMessage(JSON.stringify({ model: "fast", stream: true, messages: [{ role: "user", content: "write a long poem" }] })));
      assert.equal(setHeaders(routed.request_body?.response)["x-llm-router-route"], "fast");
      const h = await s.send({ response_headers: { headers: { headers: [{ key: ":status", raw_value: Buffer.from("200") }, { key: "content-type", raw_value: Buffer.from("text/event-stream") }, { key: "x-llm-router-target", raw_value: Buffer.from("openai-gpt-4o-mini") }] }, end_of_stream: false } });
      assert.equal(h.mode_override?.response_body_mode, "STREAMED");
      const delta = (text: string) => `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: text } }], usage: null })}\n\n`;
      for (const word of ["Roses", " are", " red,", " violets", " are blue and this goes on"]) {
        await s.send({ response_body: { body: Buffer.from(delta(word)), end_of_stream: false } });
      }
      s.cancel();
      await new Promise((r) => setTimeout(r, 50));
      await svc.quota.idle();
      const ledger = await svc.quota.local.ledger(ledgerKey("alice", Date.now()));
      assert.equal(ledger.requests, 1);
      assert.ok((ledger.input_tokens ?? 0) > 0, "the prompt estimate");
      assert.equal(ledger.output_tokens, 12, "5 deltas, 48 characters: max(5, ceil(48 / 4))");
      // 0.15 / 0.6 $ per MTok for gpt-4o-mini
      assert.equal(ledger.nano_usd, Math.round(((ledger.input_tokens ?? 0) * 0.15 + 12 * 0.6) * 1000));
    } finally {
      client.close();
      await svc.stop();
    }
  });
});
