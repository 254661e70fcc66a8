// `llm-router serve --workers N` as users run it: the CLI in a child process, whose workers serve
// real ext_proc streams on one gRPC address while the primary serves the admin port.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { afterCrash, CRASH_LIMIT, CRASH_WINDOW_MS } from "../src/cluster/restart-backoff";
import { envoyExtProcDefinition } from "./support/envoy-protos";
import { bodyMessage, ExtProcStream, headersMessage, type EnvoyResponse } from "./support/ext-proc-client";
import { NO_PROMTOOL, promtoolFindings, samples, sum } from "./support/exposition";
import { HealthClient } from "./support/health-client";
import { describeWithRedis } from "./support/redis";
import { examplePolicy, TEST_ENV } from "./support/service";

/** The CLI built next to this test (dist/ or a dist-*\/ of its own). */
const MAIN = path.resolve(__dirname, "../src/cli/main.js");
const HMAC = "k".repeat(32);

type LogLine = Record<string, unknown> & { msg?: string; pid?: number };

/** `serve` in a child process: its JSON log lines, its stderr, its exit. */
class Served {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  #partial = "";

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [MAIN, "serve", ...args], { env: { PATH: process.env.PATH, ...TEST_ENV, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout!.on("data", (d: Buffer) => {
      const text = this.#partial + d.toString();
      const parts = text.split("\n");
      this.#partial = parts.pop() ?? "";
      for (const line of parts) if (line.startsWith("{")) this.lines.push(JSON.parse(line) as LogLine);
    });
    this.child.stderr!.on("data", (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  /** The first line (from `from` on) that matches; fails after `ms`. */
  async line(match: (l: LogLine) => boolean, ms = 30_000, from = 0): Promise<LogLine> {
    const end = Date.now() + ms;
    for (;;) {
      const found = this.lines.slice(from).find(match);
      if (found) return found;
      if (Date.now() > end || this.child.exitCode !== null) assert.fail(`no matching log line within ${ms} ms; stderr: ${this.stderr}\nlog: ${this.lines.map((l) => JSON.stringify(l)).join("\n")}`);
      await sleep(25);
    }
  }

  /** Lines of message `msg`. */
  all(msg: string, from = 0): LogLine[] {
    return this.lines.slice(from).filter((l) => l.msg === msg);
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function get(port: number, urlPath: string, method = "GET"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .request({ host: "127.0.0.1", port, path: urlPath, method }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject)
      .end();
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail(`${what} within ${ms} ms`);
    await sleep(50);
  }
}

type ProcessClient = grpc.Client & { Process(md: grpc.Metadata): grpc.ClientDuplexStream<object, EnvoyResponse> };

/**
 * ext_proc clients with a connection each: the primary hands out connections, not streams, in
 * turn, so spreading requests over several connections reaches every worker. (grpc-js shares one
 * connection between clients of the same address unless each has its own subchannel pool.)
 */
function clients(address: string, n: number): ProcessClient[] {
  const pkg = grpc.loadPackageDefinition(envoyExtProcDefinition()) as unknown as { envoy: { service: { ext_proc: { v3: { ExternalProcessor: new (a: string, c: grpc.ChannelCredentials, o: object) => ProcessClient } } } } };
  const Ctor = pkg.envoy.service.ext_proc.v3.ExternalProcessor;
  return Array.from({ length: n }, () => new Ctor(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }));
}

const CHAT = { ":method": "POST", ":path": "/v1/chat/completions", ":authority": "gw", "content-type": "application/json" };

/** One request without a gateway key: refused with 401 (a request the metrics and the request log count). */
async function refusedRequest(client: ProcessClient): Promise<void> {
  const md = new grpc.Metadata();
  md.set("x-llm-router-phase", "router");
  const s = new ExtProcStream(client.Process(md));
  const status = s.status();
  let reply = await s.send(headersMessage(CHAT));
  if (reply.immediate_response === undefined) reply = await s.send(bodyMessage(JSON.stringify({ model: "smart", messages: [] })));
  // Envoy's StatusCode enum by name (401).
  assert.equal(reply.immediate_response?.status?.code, "Unauthorized");
  s.end();
  assert.equal((await status).code, grpc.status.OK);
}

/** A request alice may make, up to its routing (the router phase's reply to the body). */
async function routedRequest(client: ProcessClient): Promise<void> {
  const md = new grpc.Metadata();
  md.set("x-llm-router-phase", "router");
  const s = new ExtProcStream(client.Process(md));
  const status = s.status();
  await s.send(headersMessage({ ...CHAT, authorization: "Bearer sk-demo-alice" }));
  const reply = await s.send(bodyMessage(JSON.stringify({ model: "smart", messages: [{ role: "user", content: "hi" }] })));
  assert.equal(reply.response, "request_body");
  s.end();
  await status;
}

/** `n` refused requests, spread over the clients. */
async function refused(cs: ProcessClient[], n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, i) => refusedRequest(cs[i % cs.length]!)));
}

/** The pids whose request log lines (from line `from` on) number `n` in all. */
async function requestPids(served: Served, n: number, from = 0): Promise<Set<number>> {
  await until(`${n} request log lines`, async () => (served.all("request", from).length >= n ? true : undefined));
  return new Set(served.all("request", from).map((l) => Number(l.pid)));
}

function writePolicy(dir: string, doc: object): string {
  const file = path.join(dir, "policy.json");
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

const withLimits = (doc: Record<string, unknown>) => ({ ...doc, limits: { rules: [{ name: "alice-rate", per: "consumer", match: { consumers: ["alice"] }, requestsPerMinute: 600 }] } });

describe("serve --workers", () => {
  const running: Served[] = [];
  after(() => running.forEach((s) => s.stop()));
  const serve = (args: string[], env?: NodeJS.ProcessEnv) => {
    const s = new Served(args, env);
    running.push(s);
    return s;
  };

  it("refuses a policy with quota rules without Redis, naming the fix", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "llm-router-workers-"));
    const s = serve(["--workers", "2", "--policy", writePolicy(dir, withLimits(examplePolicy())), "--hmac-keys", HMAC, "--grpc-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    const { code } = await s.exited;
    assert.equal(code, 1);
    assert.match(s.stderr, /limits\.rules: quota rules are counted in each process's memory without Redis: with --workers 2 every worker would admit up to the whole limit \(2x the limit in total\)/);
    assert.match(s.stderr, /Fix: set --redis-url \(LLM_ROUTER_REDIS_URL\)/);
    assert.equal(s.all("all workers serving").length, 0, "no worker was started");
  });

  it("refuses a --workers that is not a count", async () => {
    const s = serve(["--workers", "two", "--policy", "p.json", "--hmac-keys", HMAC]);
    assert.equal((await s.exited).code, 64);
    assert.match(s.stderr, /--workers must be a positive integer or "auto" \(got two\)/);
  });

  it("serves from every worker, aggregates /metrics, restarts a killed worker, reloads, drains on SIGTERM", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "llm-router-workers-"));
    const policyFile = writePolicy(dir, examplePolicy());
    // Through the environment, as a container would set it.
    const s = serve(["--policy", policyFile, "--hmac-keys", HMAC, "--grpc-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--no-watch", "--shutdown-grace-seconds", "5"], { LLM_ROUTER_WORKERS: "2" });
    const serving = await s.line((l) => l.msg === "all workers serving");
    const grpcPort = Number(serving.grpcPort);
    const adminPort = Number(serving.adminPort);
    const address = `127.0.0.1:${grpcPort}`;
    const workerPids = new Set(s.all("llm-router serving").map((l) => Number(l.pid)));
    assert.equal(workerPids.size, 2, "two workers, each its own process");
    assert.ok(!workerPids.has(s.child.pid!), "the primary serves no ext_proc");

    const ready = await get(adminPort, "/readyz");
    assert.equal(ready.status, 200, ready.body);
    assert.deepEqual((JSON.parse(ready.body) as { workers: unknown }).workers, { ready: 2, total: 2 });
    assert.equal((await get(adminPort, "/healthz")).status, 200);
    assert.equal(await new HealthClient(address).check(""), "SERVING");

    // K requests over several connections: both workers answer some.
    const K = 24;
    let cs = clients(address, 6);
    await refused(cs, K);
    const pids = await requestPids(s, K);
    assert.equal(pids.size, 2, `requests served by both workers (pids ${[...pids].join(", ")})`);
    for (const pid of pids) assert.ok(workerPids.has(pid));

    // /metrics on the primary: the counts of both workers added up, the policy's info not.
    let m = await get(adminPort, "/metrics");
    assert.equal(m.status, 200);
    let all = samples(m.body);
    assert.equal(sum(all, "llm_router_requests_total"), K);
    assert.equal(sum(all, "llm_router_requests_total", { outcome: "refused" }), K);
    assert.equal(sum(all, "llm_router_gateway_errors_total", { code: "missing_api_key" }), K);
    assert.equal(sum(all, "llm_router_ext_proc_streams_total", { phase: "router", end: "ok" }), K);
    assert.equal(sum(all, "llm_router_ext_proc_streams_active"), 0);
    const hash = String(serving.policyHash);
    assert.equal(all.get(`llm_router_policy_info{hash="${hash}"}`), 1, "one series at 1, not one per worker");
    assert.equal(sum(all, "llm_router_policy_info"), 1);
    assert.ok(sum(all, "process_cpu_seconds_total") > 0);
    for (const series of all.keys()) assert.doesNotMatch(series, /worker=/, "no worker label");
    if (!NO_PROMTOOL) assert.deepEqual(promtoolFindings(m.body), []);

    // /debug/* on the primary, from its own copy of the policy.
    const explain = await get(adminPort, "/debug/explain?model=smart&key=sk-demo-alice");
    assert.equal(explain.status, 200, explain.body);
    assert.match(explain.body, /consumer alice -> route smart -> target openai-gpt-4o/);

    // A worker killed outright is replaced; its counts stay in the totals.
    const victim = [...pids][0]!;
    const killedAt = s.lines.length;
    process.kill(victim, "SIGKILL");
    const exit = await s.line((l) => l.msg === "worker exited unexpectedly; restarting it", 10_000, killedAt);
    assert.equal(exit.pid, victim);
    assert.equal(exit.signal, "SIGKILL");
    assert.equal(exit.level, 50, "logged at error");
    const replacement = await s.line((l) => l.msg === "worker serving", 30_000, killedAt);
    const newPid = Number(replacement.pid);
    assert.ok(!workerPids.has(newPid));
    await until("/readyz 200 again", async () => ((await get(adminPort, "/readyz")).status === 200 ? true : undefined));
    cs.forEach((c) => c.close());
    const before = s.lines.length;
    cs = clients(address, 6);
    const K2 = 12;
    await refused(cs, K2);
    const after2 = await requestPids(s, K2, before);
    assert.ok(after2.has(newPid), `the new worker serves (pids ${[...after2].join(", ")})`);
    assert.ok(!after2.has(victim));
    m = await get(adminPort, "/metrics");
    all = samples(m.body);
    assert.equal(sum(all, "llm_router_requests_total"), K + K2, "a restart does not take the dead worker's counts away");

    // SIGHUP: a reload that adds quota rules without Redis is rejected everywhere, like an invalid file.
    const hupAt = s.lines.length;
    writeFileSync(policyFile, JSON.stringify(withLimits(examplePolicy())));
    s.child.kill("SIGHUP");
    await until("three rejections (primary and both workers)", async () => (s.all("policy reload rejected; keeping the last good policy", hupAt).length === 3 ? true : undefined));
    assert.match(String(s.all("policy reload rejected; keeping the last good policy", hupAt)[0]!.policyError), /--redis-url/);
    all = samples((await get(adminPort, "/metrics")).body);
    assert.equal(all.get(`llm_router_policy_info{hash="${hash}"}`), 1, "the last good policy stays");
    assert.equal(all.get('llm_router_policy_reloads_total{result="rejected"}'), 1, "one reload, not one per worker");

    // SIGHUP with a good policy: applied in every worker.
    const v2 = examplePolicy();
    v2.$comment = "v2";
    writeFileSync(policyFile, JSON.stringify(v2));
    const hup2 = s.lines.length;
    s.child.kill("SIGHUP");
    await until("three reloads", async () => (s.all("policy reloaded", hup2).length === 3 ? true : undefined));
    all = samples((await get(adminPort, "/metrics")).body);
    assert.equal(sum(all, "llm_router_policy_info"), 1, "one live hash");
    assert.equal(all.get(`llm_router_policy_info{hash="${hash}"}`), undefined);
    assert.equal(all.get('llm_router_policy_reloads_total{result="applied"}'), 1);

    // /debug/log-level changes the primary's level and is passed on.
    const level = await new Promise<{ status: number; body: string }>((resolve, reject) =>
      http
        .request({ host: "127.0.0.1", port: adminPort, path: "/debug/log-level?level=debug", method: "PUT" }, (res) => {
          let body = "";
          res.on("data", (d: Buffer) => (body += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on("error", reject)
        .end(),
    );
    assert.equal(level.status, 200, level.body);
    assert.equal(JSON.parse((await get(adminPort, "/debug/log-level")).body).level, "debug");
    // ... and every worker logs at debug: routed requests get their "routed" line from both.
    const levelAt = s.lines.length;
    const live = new Set([...workerPids, newPid].filter((p) => p !== victim));
    await until("a debug line from every worker", async () => {
      await Promise.all(cs.map((c) => routedRequest(c)));
      const from = new Set(s.all("routed", levelAt).map((l) => Number(l.pid)));
      return [...live].every((p) => from.has(p)) ? true : undefined;
    });

    // SIGTERM: every worker drains, the primary exits 0.
    cs.forEach((c) => c.close());
    const termAt = s.lines.length;
    s.child.kill("SIGTERM");
    const { code } = await s.exited;
    assert.equal(code, 0, s.stderr);
    const exits = s.all("worker exited", termAt);
    assert.equal(exits.length, 2);
    for (const e of exits) assert.equal(e.code, 0);
    assert.equal(s.all("stopped", termAt).at(-1)?.exitCode, 0);
    assert.ok(!s.lines.some((l) => JSON.stringify(l).includes("sk-provider-openai-SECRET")), "provider credentials never reach the logs");
  });

  it("shares a Unix socket between the workers", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "llm-router-workers-"));
    const sock = path.join(dir, "grpc.sock");
    const s = serve(["--workers", "2", "--policy", writePolicy(dir, examplePolicy()), "--hmac-keys", HMAC, "--grpc-listen", `unix:${sock}`, "--admin-listen", "off", "--no-watch"]);
    await s.line((l) => l.msg === "all workers serving");
    assert.equal(await new HealthClient(`unix:${sock}`).check(""), "SERVING");
    const cs = clients(`unix:${sock}`, 6);
    await refused(cs, 12);
    assert.equal((await requestPids(s, 12)).size, 2, "requests served by both workers");
    cs.forEach((c) => c.close());
    s.child.kill("SIGTERM");
    assert.equal((await s.exited).code, 0);
    assert.ok(!existsSync(sock), "the socket file is removed");
  });

  it("exits non-zero when a worker crash-loops", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "llm-router-workers-"));
    const policyFile = writePolicy(dir, examplePolicy());
    const s = serve(["--workers", "2", "--policy", policyFile, "--hmac-keys", HMAC, "--grpc-listen", "127.0.0.1:0", "--admin-listen", "off", "--no-watch"]);
    await s.line((l) => l.msg === "all workers serving");
    // Replacements cannot start on a broken file: each exits at once, until the primary gives up.
    writeFileSync(policyFile, "{ not json");
    process.kill(Number(s.all("llm-router serving")[0]!.pid), "SIGKILL");
    const { code } = await s.exited;
    assert.equal(code, 1);
    const restarts = s.all("worker exited unexpectedly; restarting it");
    assert.equal(restarts.length, CRASH_LIMIT - 1);
    assert.deepEqual(
      restarts.map((l) => l.restartInMs),
      [250, 500, 1000, 2000],
    );
    const loop = await s.line((l) => l.msg === "worker crash loop: stopping the service");
    assert.equal(loop.exitsInWindow, CRASH_LIMIT);
    assert.match(s.stderr, /invalid policy/);
  });
});

describeWithRedis("serve --workers with Redis", (redis) => {
  it("starts with quota rules when the workers share Redis", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "llm-router-workers-"));
    const s = new Served(["--workers", "2", "--policy", writePolicy(dir, withLimits(examplePolicy())), "--hmac-keys", HMAC, "--grpc-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--no-watch", "--redis-url", redis.url, "--redis-key-prefix", redis.prefix()]);
    try {
      const serving = await s.line((l) => l.msg === "all workers serving");
      assert.equal((await get(Number(serving.adminPort), "/readyz")).status, 200);
      s.child.kill("SIGTERM");
      assert.equal((await s.exited).code, 0);
    } finally {
      s.stop();
    }
  });
});

describe("restart backoff", () => {
  const table: Array<{ name: string; earlier: number[]; now: number; want: ReturnType<typeof afterCrash> }> = [
    { name: "first exit: a quarter second", earlier: [], now: 100_000, want: { restartInMs: 250, crashesInWindow: 1 } },
    { name: "third in the window: doubled twice", earlier: [90_000, 95_000], now: 100_000, want: { restartInMs: 1000, crashesInWindow: 3 } },
    { name: "exits older than the window are forgotten", earlier: [10_000, 20_000, 30_000, 95_000], now: 100_000, want: { restartInMs: 500, crashesInWindow: 2 } },
    { name: "the limit within the window: give up", earlier: [60_000, 70_000, 80_000, 90_000], now: 100_000, want: { giveUp: true, crashesInWindow: CRASH_LIMIT } },
    { name: "exactly one window ago is outside it", earlier: [100_000 - CRASH_WINDOW_MS, 70_000, 80_000, 90_000], now: 100_000, want: { restartInMs: 2000, crashesInWindow: 4 } },
  ];
  for (const t of table) {
    it(t.name, () => {
      const history = [...t.earlier];
      assert.deepEqual(afterCrash(history, t.now), t.want);
      assert.ok(history.every((at) => at > t.now - CRASH_WINDOW_MS));
    });
  }
});
