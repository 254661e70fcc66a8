// The admin port's /debug/* endpoints on a real service: /debug/explain answers what `llm-router
// explain` prints, against the live policy and without its credentials; /debug/log-level reads and
// changes the logger; both answer loopback callers, or only token holders once a token is set.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import pino, { type Logger } from "pino";
import { debugAccess } from "../src/admin/debug-access";
import { explain, formatExplanation } from "../src/cli/explain";
import { startTestService, TEST_ENV, type TestService } from "./support/service";

const CHAT = { model: "smart", messages: [{ role: "user", content: "hi" }] };
const PROVIDER_SECRETS = Object.values(TEST_ENV).filter((v): v is string => v !== undefined);
const TOKEN = "admin-token-for-tests-0123456789";

interface Explained {
  decision: string;
  request: { headers: Record<string, string> };
  plan?: { route: string; chain: string[]; cluster: string; order: string[] };
  cluster?: string;
  attempts: Array<{ target: string; upstreamRequest: { path: string; headers: Record<string, string>; body: { model?: string } } }>;
}

async function call(port: number | undefined, path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; text: string; json: unknown }> {
  assert.ok(port !== undefined, "the admin port is on");
  const res = await fetch(`http://127.0.0.1:${port}${path}`, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

const post = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({ method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

/** The router mints an x-request-id for each request without one; the rest of an explanation is deterministic. */
const sameRequestId = (json: string): unknown => JSON.parse(json.replace(/("x-request-id": )"[^"]*"/g, '$1"<id>"'));

/** What the CLI would print for the same request, through explain() itself. */
async function expected(svc: TestService, method: string, path: string, headers: Array<[string, string]>, body: unknown): Promise<unknown> {
  const result = await explain(svc.policy.current, method, path, headers, body === undefined ? undefined : Buffer.from(JSON.stringify(body)));
  return sameRequestId(formatExplanation(result));
}

function assertNoSecrets(text: string): void {
  for (const secret of PROVIDER_SECRETS) assert.ok(!text.includes(secret), `a provider credential leaked: ${secret}`);
  assert.ok(!text.includes("SECRET"), "no part of a provider credential");
}

function assertError(r: { status: number; json: unknown }, status: number, message: RegExp): void {
  assert.equal(r.status, status);
  const error = (r.json as { error?: unknown } | undefined)?.error;
  assert.equal(typeof error, "string", "a JSON {error}");
  assert.match(error as string, message);
}

/** A logger writing JSON lines into an array, so tests see what the service logs. */
function capturingLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

describe("debugAccess", () => {
  const cases: Array<{ name: string; remote: string | undefined; auth: string | undefined; token: string | undefined; want: string }> = [
    { name: "no token: IPv4 loopback", remote: "127.0.0.1", auth: undefined, token: undefined, want: "allowed:loopback" },
    { name: "no token: IPv6 loopback", remote: "::1", auth: undefined, token: undefined, want: "allowed:loopback" },
    { name: "no token: IPv4-mapped loopback", remote: "::ffff:127.0.0.1", auth: undefined, token: undefined, want: "allowed:loopback" },
    { name: "no token: a LAN address", remote: "10.0.0.7", auth: undefined, token: undefined, want: "403" },
    { name: "no token: a mapped LAN address", remote: "::ffff:192.168.1.20", auth: undefined, token: undefined, want: "403" },
    { name: "no token: unknown address", remote: undefined, auth: undefined, token: undefined, want: "403" },
    { name: "no token: a bearer token does not open it remotely", remote: "10.0.0.7", auth: `Bearer ${TOKEN}`, token: undefined, want: "403" },
    { name: "empty token counts as none", remote: "10.0.0.7", auth: "Bearer x", token: "", want: "403" },
    { name: "token: right token from a remote address", remote: "10.0.0.7", auth: `Bearer ${TOKEN}`, token: TOKEN, want: "allowed:token" },
    { name: "token: scheme is case-insensitive", remote: "10.0.0.7", auth: `bearer ${TOKEN}`, token: TOKEN, want: "allowed:token" },
    { name: "token: loopback alone is not enough", remote: "127.0.0.1", auth: undefined, token: TOKEN, want: "401" },
    { name: "token: wrong token", remote: "127.0.0.1", auth: "Bearer nope", token: TOKEN, want: "401" },
    { name: "token: a prefix of the token", remote: "127.0.0.1", auth: `Bearer ${TOKEN.slice(0, -1)}`, token: TOKEN, want: "401" },
    { name: "token: not a bearer scheme", remote: "127.0.0.1", auth: `Basic ${TOKEN}`, token: TOKEN, want: "401" },
    { name: "token: empty bearer", remote: "127.0.0.1", auth: "Bearer ", token: TOKEN, want: "401" },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const a = debugAccess(c.remote, c.auth, c.token);
      assert.equal(a.allowed ? `allowed:${a.via}` : String(a.status), c.want);
    });
  }
});

describe("/debug on the admin port, no token (loopback only)", () => {
  let svc: TestService;
  let port: number | undefined;
  const logged = capturingLogger();

  before(async () => {
    svc = await startTestService(undefined, undefined, { log: logged.log });
    port = svc.adminPort;
  });
  after(() => svc.stop());

  it("GET /debug/explain?model=smart&key=...: the plan, equal to explain() on the live policy", async () => {
    const r = await call(port, "/debug/explain?model=smart&key=sk-demo-alice");
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get("content-type"), "application/json");
    const out = r.json as Explained;
    assert.equal(out.plan?.route, "smart");
    assert.deepEqual(out.plan?.chain, ["openai-gpt-4o", "azure-gpt-4o", "local-llama"]);
    assert.match(out.plan?.cluster ?? "", /^chain_openai-gpt-4o_[0-9a-f]{8}$/);
    assert.equal(out.cluster, out.plan?.cluster);
    assert.match(out.decision, /^consumer alice -> route smart -> target openai-gpt-4o /);
    assert.deepEqual(sameRequestId(r.text), await expected(svc, "POST", "/v1/chat/completions", [["authorization", "Bearer sk-demo-alice"], ["content-type", "application/json"]], CHAT));
  });

  it("the live policy's provider credentials never appear, in any attempt", async () => {
    const r = await call(port, "/debug/explain?model=smart&key=sk-demo-alice");
    assertNoSecrets(r.text);
    assert.ok(!r.text.includes("sk-demo-alice"), "the client's key is not echoed");
    const [openai, azure, local] = (r.json as Explained).attempts;
    assert.equal(openai?.upstreamRequest.headers.authorization, "[redacted]");
    assert.equal(azure?.upstreamRequest.headers["api-key"], "[redacted]");
    assert.equal(local?.upstreamRequest.headers.authorization, undefined);
    // Passthrough: OpenAI answers /v1/models with the gateway's own key.
    const models = await call(port, "/debug/explain?method=GET&path=/v1/models&key=sk-demo-alice");
    assert.equal(models.status, 200, models.text);
    assertNoSecrets(models.text);
    assert.equal((models.json as Explained).attempts[0]?.upstreamRequest.headers.authorization, "[redacted]");
  });

  it("a credential anywhere else in the output is scrubbed too", async () => {
    // A value the client sends is echoed as is, unless it is one of the live credentials.
    const r = await call(port, "/debug/explain", post({ key: "sk-demo-alice", headers: { "x-probe": `k=${TEST_ENV.OPENAI_API_KEY}` }, body: CHAT }));
    assert.equal(r.status, 200, r.text);
    assertNoSecrets(r.text);
    assert.equal((r.json as Explained).request.headers["x-probe"], "k=[redacted]");
  });

  it("POST /debug/explain with headers and body", async () => {
    const body = { model: "smart", messages: [{ role: "user", content: "fix the build" }] };
    const r = await call(port, "/debug/explain", post({ method: "POST", path: "/v1/chat/completions", headers: { "x-llm-task": "coding" }, body, key: "sk-demo-ci" }));
    assert.equal(r.status, 200, r.text);
    const out = r.json as Explained;
    assert.equal(out.plan?.route, "smart-coding-ci");
    assert.deepEqual(out.plan?.chain, ["local-llama"]);
    assert.equal(out.attempts[0]?.upstreamRequest.body.model, "meta-llama/Llama-3.1-8B-Instruct");
    assert.deepEqual(sameRequestId(r.text), await expected(svc, "POST", "/v1/chat/completions", [["x-llm-task", "coding"], ["authorization", "Bearer sk-demo-ci"], ["content-type", "application/json"]], body));
    assertNoSecrets(r.text);
  });

  it("a request the router refuses is explained with 200 and the refusal", async () => {
    const r = await call(port, "/debug/explain", post({ key: "sk-demo-bob", body: { model: "smart" } }));
    assert.equal(r.status, 200, r.text);
    assert.match((r.json as Explained).decision, /^rejected: 403 llm_router_route_not_allowed/);
  });

  it("bad input is a 400 with a JSON error", async () => {
    assertError(await call(port, "/debug/explain", { method: "POST", body: "{not json" }), 400, /not valid JSON/);
    assertError(await call(port, "/debug/explain", { method: "POST" }), 400, /expected a JSON object/);
    assertError(await call(port, "/debug/explain", post(["model", "smart"])), 400, /expected a JSON object/);
    assertError(await call(port, "/debug/explain", post({ model: "smart" })), 400, /unknown field "model"/);
    assertError(await call(port, "/debug/explain", post({ headers: [["a", "b"]] })), 400, /"headers" must be an object/);
    assertError(await call(port, "/debug/explain", post({ headers: { a: 1 } })), 400, /string value/);
    assertError(await call(port, "/debug/explain", post({ headers: { ":path": "/x" } })), 400, /not a valid HTTP header name/);
    assertError(await call(port, "/debug/explain", post({ key: 42 })), 400, /"key" must be a string/);
    assertError(await call(port, "/debug/explain", post({ path: "v1/chat" })), 400, /"path" must start with \//);
    assertError(await call(port, "/debug/explain?method=post"), 400, /"method" must be an HTTP method/);
    assertError(await call(port, "/debug/explain?modle=smart"), 400, /unknown query parameter "modle"/);
    assertError(await call(port, "/debug/explain?model=a&model=b"), 400, /more than once/);
  });

  it("a body over 1 MiB is refused (413), declared or streamed", async () => {
    const big = JSON.stringify({ body: { text: "x".repeat(2 * 1024 * 1024) } });
    assertError(await call(port, "/debug/explain", { method: "POST", body: big }), 413, /larger than 1048576 bytes/);
    // Chunked, without content-length: refused once the bytes read pass the limit.
    const streamed = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path: "/debug/explain", method: "POST" }, (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on("error", reject);
      for (let i = 0; i < 40; i++) req.write(Buffer.alloc(64 * 1024, 0x20));
      req.end();
    });
    assert.equal(streamed.status, 413);
    assert.match(streamed.text, /larger than/);
    // The server is still fine.
    assert.equal((await call(port, "/debug/log-level")).status, 200);
  });

  it("methods: 405 with Allow, on /debug and on the open endpoints", async () => {
    const del = await call(port, "/debug/explain", { method: "DELETE" });
    assertError(del, 405, /use GET or POST/);
    assert.equal(del.headers.get("allow"), "GET, POST");
    const put = await call(port, "/debug/explain", { method: "PUT", body: "{}" });
    assert.equal(put.status, 405);
    const logDelete = await call(port, "/debug/log-level", { method: "DELETE" });
    assert.equal(logDelete.status, 405);
    assert.equal(logDelete.headers.get("allow"), "GET, PUT, POST");
    const healthz = await call(port, "/healthz", { method: "POST" });
    assert.equal(healthz.status, 405);
    assert.equal(healthz.headers.get("allow"), "GET, HEAD");
    assertError(await call(port, "/debug/nothing-here"), 404, /not found/);
  });

  it("log level: read, set through the body and the query, refuse an unknown level", async () => {
    assert.deepEqual((await call(port, "/debug/log-level")).json, { level: "info" });

    const set = await call(port, "/debug/log-level", { method: "PUT", body: JSON.stringify({ level: "debug" }) });
    assert.equal(set.status, 200, set.text);
    assert.deepEqual(set.json, { level: "debug", previous: "info" });
    assert.equal(logged.log.level, "debug", "the service's logger changed");
    assert.ok(logged.log.isLevelEnabled("debug"));
    const line = logged.lines.find((l) => l.msg === "log level changed through the admin port");
    assert.ok(line, "the change is logged");
    assert.equal(line.level, 40, "at warn");
    assert.equal(line.from, "info");
    assert.equal(line.to, "debug");
    assert.equal(line.remoteAddress, "127.0.0.1");
    assert.equal(line.via, "loopback");

    const quiet = await call(port, "/debug/log-level?level=error", { method: "POST" });
    assert.deepEqual(quiet.json, { level: "error", previous: "debug" });
    assert.equal(logged.log.level, "error");
    assert.ok(logged.lines.some((l) => l.from === "debug" && l.to === "error"), "a change that quiets the log is still logged");

    const bad = await call(port, "/debug/log-level", { method: "PUT", body: JSON.stringify({ level: "loud" }) });
    assertError(bad, 400, /level must be one of fatal, error, warn, info, debug, trace, silent \(got "loud"\)/);
    assertError(await call(port, "/debug/log-level", { method: "PUT" }), 400, /level must be one of/);
    assertError(await call(port, "/debug/log-level", { method: "PUT", body: JSON.stringify({ level: 3 }) }), 400, /"level" must be a string/);
    assertError(await call(port, "/debug/log-level?level=debug", { method: "PUT", body: JSON.stringify({ level: "info" }) }), 400, /not both/);
    assertError(await call(port, "/debug/log-level?level=debug"), 400, /use PUT/);
    assert.equal(logged.log.level, "error", "refused changes leave the level alone");

    await call(port, "/debug/log-level", { method: "PUT", body: JSON.stringify({ level: "info" }) });
    assert.equal(logged.log.level, "info");
  });

  it("/healthz, /readyz and /metrics stay open", async () => {
    assert.equal((await call(port, "/healthz")).status, 200);
    assert.equal((await call(port, "/readyz")).status, 200);
    assert.equal((await call(port, "/metrics")).status, 200);
  });
});

describe("/debug on the admin port, with an admin token", () => {
  let svc: TestService;
  let port: number | undefined;

  before(async () => {
    svc = await startTestService(undefined, undefined, { adminToken: TOKEN });
    port = svc.adminPort;
  });
  after(() => svc.stop());

  it("no token or a wrong one: 401, even from loopback", async () => {
    const none = await call(port, "/debug/explain?model=smart&key=sk-demo-alice");
    assertError(none, 401, /admin token is required/);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer /);
    assertError(await call(port, "/debug/explain?model=smart", { headers: { authorization: "Bearer wrong" } }), 401, /wrong admin token/);
    assertError(await call(port, "/debug/log-level", { method: "PUT", body: '{"level":"trace"}', headers: { authorization: `Bearer ${TOKEN}x` } }), 401, /wrong/);
    // Refused before routing: an unknown path does not answer 404 to a stranger.
    assert.equal((await call(port, "/debug/nothing-here")).status, 401);
  });

  it("the right token: 200", async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const r = await call(port, "/debug/explain?model=smart&key=sk-demo-alice", { headers: auth });
    assert.equal(r.status, 200, r.text);
    assert.equal((r.json as Explained).plan?.route, "smart");
    assertNoSecrets(r.text);
    assert.ok(!r.text.includes(TOKEN));
    assert.deepEqual((await call(port, "/debug/log-level", { headers: auth })).json, { level: "silent" });
  });

  it("the open endpoints need no token", async () => {
    assert.equal((await call(port, "/healthz")).status, 200);
    assert.equal((await call(port, "/metrics")).status, 200);
  });
});
