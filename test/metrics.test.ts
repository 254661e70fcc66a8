// /metrics on the admin port: the exposition parses with Prometheus's own parser (promtool), every
// series of the router's metrics exists from the start, and e2e traffic through the Envoy harness
// moves the ext_proc stream, message-time and policy metrics as it should.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { GatewayMetrics } from "../src/metrics/metrics";
import { examplePolicy } from "./support/service";
import { startStack, type Doc, type Stack } from "./support/stack";

/** promtool's lint findings about prom-client's own Node metrics (gauges named *_total), not ours. */
const FOREIGN_LINT = /^nodejs_active_(handles|requests|resources)_total /;

const promtool = (() => {
  const r = spawnSync("promtool", ["--version"], { encoding: "utf8" });
  if (r.status === 0) return true;
  if (process.env.LLM_ROUTER_REQUIRE_PROMTOOL === "1") throw new Error("promtool required (LLM_ROUTER_REQUIRE_PROMTOOL=1) but not on PATH");
  return false;
})();
const NO_PROMTOOL = promtool ? false : "promtool (Prometheus's parser and linter) not on PATH: apt-get install prometheus";

/** Parses and lints with Prometheus's Go parser; returns the findings other than FOREIGN_LINT. */
function promtoolFindings(text: string): string[] {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status === 1) throw new Error(`promtool could not parse the exposition: ${out}`);
  return out.split("\n").filter((l) => l.trim() !== "" && !FOREIGN_LINT.test(l));
}

/** Sample values by series (`name{labels}` exactly as exposed). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function scrape(port: number | undefined): Promise<{ type: string | null; text: string }> {
  assert.ok(port !== undefined, "the admin port is on");
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  return { type: res.headers.get("content-type"), text: await res.text() };
}

describe("GatewayMetrics", () => {
  it("exposes every router series from the start, and the exposition parses and lints clean", { skip: NO_PROMTOOL }, async () => {
    const m = new GatewayMetrics();
    m.policyLoaded("h1");
    const { body } = await m.text();
    const s = samples(body);
    for (const phase of ["router", "upstream"]) {
      for (const end of ["ok", "cancelled", "error"]) assert.equal(s.get(`llm_router_ext_proc_streams_total{phase="${phase}",end="${end}"}`), 0);
      assert.equal(s.get(`llm_router_ext_proc_streams_active{phase="${phase}"}`), 0);
    }
    for (const result of ["applied", "unchanged", "rejected"]) assert.equal(s.get(`llm_router_policy_reloads_total{result="${result}"}`), 0);
    assert.equal(s.get('llm_router_policy_info{hash="h1"}'), 1);
    assert.deepEqual(promtoolFindings(body), []);
  });

  it("counts a stream's messages and end, and keeps one policy_info series", async () => {
    const m = new GatewayMetrics({ processMetrics: false });
    const st = m.stream("upstream");
    st.opened();
    st.answered("request_headers", 0.00003);
    st.answered("request_headers", 0.002);
    assert.equal(samples((await m.text()).body).get('llm_router_ext_proc_streams_active{phase="upstream"}'), 1);
    st.ended("cancelled");
    m.policyLoaded("h1");
    m.policyLoaded("h2");
    const s = samples((await m.text()).body);
    assert.equal(s.get('llm_router_ext_proc_streams_active{phase="upstream"}'), 0);
    assert.equal(s.get('llm_router_ext_proc_streams_total{phase="upstream",end="cancelled"}'), 1);
    assert.equal(s.get('llm_router_ext_proc_message_duration_seconds_count{phase="upstream",message="request_headers"}'), 2);
    assert.equal(s.get('llm_router_ext_proc_message_duration_seconds_bucket{le="0.00005",phase="upstream",message="request_headers"}'), 1);
    assert.equal(s.get('llm_router_policy_info{hash="h1"}'), undefined, "the old policy's series is gone");
    assert.equal(s.get('llm_router_policy_info{hash="h2"}'), 1);
  });
});

describe("/metrics after traffic through the Envoy harness", () => {
  let s: Stack;
  const ALICE = { "content-type": "application/json", authorization: "Bearer sk-demo-alice" };
  const chat = JSON.stringify({ model: "smart", messages: [{ role: "user", content: "hi" }] });
  before(async () => {
    s = await startStack(examplePolicy() as Doc);
  });
  after(() => s.close());

  it("counts both phases' streams and messages, and policy reloads by result", { skip: NO_PROMTOOL }, async () => {
    const before = samples((await scrape(s.svc.adminPort)).text);
    for (let i = 0; i < 3; i++) assert.equal((await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat })).status, 200);
    const refused = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: { ...ALICE, authorization: "Bearer nope" }, body: chat });
    assert.equal(refused.status, 401);
    // A rejected reload (invalid JSON), then the original content again (unchanged).
    const original = JSON.stringify(examplePolicy());
    writeFileSync(s.svc.policyFile, "{ not json");
    assert.equal((await s.svc.policy.reload()).ok, false);
    writeFileSync(s.svc.policyFile, original);
    await s.svc.policy.reload();

    const { type, text } = await scrape(s.svc.adminPort);
    assert.match(type ?? "", /^text\/plain; version=0\.0\.4/);
    assert.deepEqual(promtoolFindings(text), []);
    const after = samples(text);
    const delta = (series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0);
    // Four router streams (three routed, one refused on its headers), three upstream attempts.
    assert.equal(delta('llm_router_ext_proc_streams_total{phase="router",end="ok"}'), 4);
    assert.equal(delta('llm_router_ext_proc_streams_total{phase="upstream",end="ok"}'), 3);
    assert.equal(delta('llm_router_ext_proc_message_duration_seconds_count{phase="router",message="request_headers"}'), 4);
    assert.equal(delta('llm_router_ext_proc_message_duration_seconds_count{phase="router",message="request_body"}'), 3);
    assert.equal(delta('llm_router_ext_proc_message_duration_seconds_count{phase="upstream",message="response_headers"}'), 3);
    assert.equal(after.get('llm_router_ext_proc_streams_active{phase="router"}'), 0);
    assert.equal(delta('llm_router_policy_reloads_total{result="rejected"}'), 1);
    assert.equal(after.get(`llm_router_policy_info{hash="${s.svc.policy.current.hash}"}`), 1);
    assert.ok(after.has("process_cpu_seconds_total"), "Node process metrics under their usual names");
  });
});
