// Fault injection on the policy file while the service watches it (the directory watch of
// PolicyStore.watch, as `serve` runs it): the file deleted, half written then completed, replaced
// by invalid JSON, by JSON the schema refuses, and replaced atomically by a rename. A bad file is
// rejected with a log line naming the problem and a `rejected` reload in the metrics; the last good
// policy keeps serving every request; the next good file is picked up by itself.
import assert from "node:assert/strict";
import { appendFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { sum } from "./support/exposition";
import { bodyMessage, ExtProcTestClient, headersMessage, setHeaders } from "./support/ext-proc-client";
import { CHAT_HEADERS, chatBody, healthyStreams, KEYS, metricSamples, routeRequest, settledService, waitFor, within } from "./support/ext-proc-flows";
import { examplePolicy, startTestService, type TestService } from "./support/service";

type Doc = ReturnType<typeof examplePolicy> & { routes: Array<Record<string, unknown>> };

/** Two good policies that differ in one visible way: where the `llama` alias goes. */
function version(which: "A" | "B"): string {
  const doc = examplePolicy() as Doc;
  const local = doc.routes.find((r) => r.name === "local")!;
  local.targets = which === "A" ? ["local-llama"] : ["openai-gpt-4o-mini"];
  return JSON.stringify(doc, null, 2);
}
const CLUSTER = { A: "tgt_local-llama", B: "tgt_openai-gpt-4o-mini" } as const;

describe("faults: the policy file broken while the service watches it", () => {
  let svc: TestService;
  let client: ExtProcTestClient;
  const lines: Array<Record<string, unknown>> = [];
  let live: "A" | "B" = "A";

  before(async () => {
    const log = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    svc = await startTestService(JSON.parse(version("A")) as object, undefined, { log });
    svc.policy.watch(50);
    client = new ExtProcTestClient(svc.address);
  });
  after(async () => {
    client.close();
    await svc.stop();
  });

  /** The cluster the live policy sends `llama` to. */
  async function llamaCluster(): Promise<string> {
    const r = await routeRequest(client, { ...CHAT_HEADERS, authorization: KEYS.alice }, chatBody("llama"));
    assert.ok("bodyReply" in r, "routed");
    const ended = r.router.status();
    r.router.end();
    await within(ended, 5000, "router stream end");
    return r.cluster;
  }

  async function reloads(result: string): Promise<number> {
    return sum(await metricSamples(svc), "llm_router_policy_reloads_total", { result });
  }

  /**
   * After `breakIt`, a reload is rejected (metric and log line matching `error`), the last good
   * policy keeps serving, and streams complete; after `fixIt` the other good version is live.
   */
  async function rejectedThenRecovered(breakIt: () => void, error: RegExp, fixIt: (next: string) => void): Promise<void> {
    const hash = svc.policy.current.hash;
    const rejected = await reloads("rejected");
    const logged = lines.length;
    breakIt();
    await waitFor(async () => (await reloads("rejected")) > rejected, 5000, "the bad file is seen and rejected");
    const line = lines.slice(logged).find((l) => l.msg === "policy reload rejected; keeping the last good policy");
    assert.ok(line, "the rejection is logged");
    assert.match(String(line.policyError), error);
    assert.equal(line.keptPolicyHash, hash);
    assert.equal(line.level, 50, "at error level");
    assert.equal(svc.policy.current.hash, hash, "the last good policy stays live");
    assert.equal((await metricSamples(svc)).get(`llm_router_policy_info{hash="${hash}"}`), 1);
    assert.equal(await llamaCluster(), CLUSTER[live], "requests are served by the last good policy");
    await healthyStreams(client, 4);

    const next = live === "A" ? "B" : "A";
    fixIt(version(next));
    await waitFor(() => svc.policy.current.hash !== hash, 5000, "the next good file is picked up by itself");
    live = next;
    assert.equal(await llamaCluster(), CLUSTER[next]);
    const s = await metricSamples(svc);
    assert.equal(s.get(`llm_router_policy_info{hash="${svc.policy.current.hash}"}`), 1);
    assert.equal(s.get(`llm_router_policy_info{hash="${hash}"}`), undefined, "one policy_info series");
    await settledService(svc);
  }

  it("the file is deleted", async () => {
    await rejectedThenRecovered(() => rmSync(svc.policyFile), /ENOENT/, (next) => writeFileSync(svc.policyFile, next));
  });

  it("half a file is written, then the rest", async () => {
    let rest = "";
    await rejectedThenRecovered(
      () => {
        const whole = version(live === "A" ? "B" : "A");
        rest = whole.slice(Math.floor(whole.length / 2));
        writeFileSync(svc.policyFile, whole.slice(0, Math.floor(whole.length / 2)));
      },
      /not valid JSON/,
      () => appendFileSync(svc.policyFile, rest),
    );
  });

  it("invalid JSON is written", async () => {
    await rejectedThenRecovered(() => writeFileSync(svc.policyFile, '{ "version": 1, "providers": { // not JSON'), /not valid JSON/, (next) => writeFileSync(svc.policyFile, next));
  });

  it("JSON the schema refuses is written (a route naming an unknown target)", async () => {
    const bad = examplePolicy() as Doc;
    bad.routes.find((r) => r.name === "local")!.targets = ["no-such-target"];
    await rejectedThenRecovered(() => writeFileSync(svc.policyFile, JSON.stringify(bad)), /targets\[0\]: unknown target \(got "no-such-target"\)/, (next) => writeFileSync(svc.policyFile, next));
  });

  it("a new file is renamed over it (atomic replace): applied with no rejection, and a request in flight finishes on the policy it started with", async () => {
    const rejected = await reloads("rejected");
    const applied = await reloads("applied");
    const hash = svc.policy.current.hash;
    const next = live === "A" ? "B" : "A";
    // A request whose headers reached the service before the reload...
    const inFlight = client.open("router");
    await within(inFlight.send(headersMessage({ ...CHAT_HEADERS, authorization: KEYS.alice })), 5000, "request_headers");
    const tmp = path.join(path.dirname(svc.policyFile), ".policy.json.tmp");
    writeFileSync(tmp, version(next));
    renameSync(tmp, svc.policyFile);
    await waitFor(() => svc.policy.current.hash !== hash, 5000, "the renamed file is picked up");
    // ...is routed by the policy it started with; new requests by the new one.
    const b = await within(inFlight.send(bodyMessage(chatBody("llama"))), 5000, "request_body");
    inFlight.end();
    assert.equal(setHeaders(b.request_body?.response)["x-llm-router-cluster"], CLUSTER[live]);
    live = next;
    assert.equal(await llamaCluster(), CLUSTER[next]);
    assert.equal(await reloads("rejected"), rejected, "an atomic replace is never seen half written");
    assert.ok((await reloads("applied")) > applied);
    await healthyStreams(client, 4);
    await settledService(svc);
  });
});
