import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import pino from "pino";
import { compilePolicyText } from "../src/policy/compile";
import { PolicyError } from "../src/policy/policy-error";
import { PolicyStore } from "../src/policy/policy-store";
import { policyJsonSchema } from "../src/policy/schema";
import { EXAMPLE_POLICY, examplePolicy } from "./support/service";

const compile = (doc: unknown, env: NodeJS.ProcessEnv = {}) => compilePolicyText(typeof doc === "string" ? doc : JSON.stringify(doc), { file: "p.json", resolveSecrets: true, env });
function issues(doc: unknown): string {
  try {
    compile(doc, { OPENAI_API_KEY: "x", ANTHROPIC_API_KEY: "x", AZURE_TEST_KEY: "x" });
  } catch (e) {
    assert.ok(e instanceof PolicyError);
    return e.message;
  }
  assert.fail("expected a PolicyError");
}

describe("policy", () => {
  it("the annotated example policy validates", () => {
    const p = compilePolicyText(readFileSync(EXAMPLE_POLICY, "utf8"), { file: EXAMPLE_POLICY, resolveSecrets: false });
    assert.equal(p.routes.length, 7);
    assert.match(p.hash, /^[0-9a-f]{64}$/);
  });

  it("a route's paths may be served through translation (OpenAI chat on an Anthropic chain)", () => {
    const d = examplePolicy();
    (d.routes as Array<Record<string, unknown>>)[5]!.match = { paths: ["/v1/chat/completions", "/v1/messages"] };
    const p = compilePolicyText(JSON.stringify(d), { file: "p.json", resolveSecrets: false });
    assert.deepEqual([...(p.routes[5]!.operations ?? [])], ["chat.completions", "messages"]);
  });

  it("errors name the file, the JSON path, the bad value and the fix", () => {
    const doc = examplePolicy();
    (doc.routes as Array<Record<string, unknown>>)[1]!.targets = ["openai-gpt-4o", "no-such-target"];
    const msg = issues(doc);
    assert.match(msg, /p\.json: routes\[1\]\.targets\[1\]: unknown target \(got "no-such-target"\)\. Fix: use one of the keys of "targets"/);
  });

  const table: Array<[string, (d: ReturnType<typeof examplePolicy>) => void, RegExp]> = [
    ["misspelled key", (d) => ((d.routes as Array<Record<string, unknown>>)[0]!.tagret = "x"), /routes\[0\]: Unrecognized key.*Fix: remove or rename "tagret"/],
    ["wrong provider type", (d) => (d.providers.openai!.type = "opneai"), /providers\.openai/],
    ["bad key hash", (d) => ((d.consumers as Array<Record<string, unknown>>)[0]!.keySha256 = ["abc"]), /consumers\[0\]\.keySha256\[0\]: 64 lowercase hex characters \(a SHA-256 digest\) \(got "abc"\)/],
    ["unknown provider in a target", (d) => ((d.targets as Record<string, Record<string, unknown>>)["local-llama"]!.provider = "nope"), /targets\["local-llama"\]\.provider: unknown provider/],
    ["duplicate route name", (d) => ((d.routes as Array<Record<string, unknown>>)[2]!.name = "smart"), /routes\[2\]\.name: duplicate route name/],
    ["route path its target cannot serve, natively or translated", (d) => ((d.routes as Array<Record<string, unknown>>)[5]!.match = { paths: ["/v1/responses"] }), /routes\[5\]\.match\.paths: target "claude-sonnet" \(anthropic\) cannot serve \/v1\/responses.*restrict the route to \/v1\/chat\/completions, \/v1\/messages/],
    ["allow-list naming an unknown route", (d) => ((d.consumers as Array<Record<string, unknown>>)[1]!.allow = { routes: ["nope"] }), /consumers\[1\]\.allow\.routes: unknown route/],
    ["same key for two consumers", (d) => ((d.consumers as Array<{ keySha256: string[] }>)[1]!.keySha256 = (d.consumers as Array<{ keySha256: string[] }>)[0]!.keySha256), /already belongs to a consumer/],
    ["passthrough over an LLM path", (d) => (d.passthrough = [{ pathPrefix: "/v1/chat", target: "openai-gpt-4o" }]), /passthrough\[0\]\.pathPrefix: covers an LLM path/],
    ["wrong version", (d) => (d.version = 2), /version/],
    ["a target twice in a chain", (d) => ((d.routes as Array<Record<string, unknown>>)[2]!.targets = ["openai-gpt-4o-mini", "openai-gpt-4o-mini"]), /routes\[2\]\.targets\[1\]: target listed twice in the chain/],
    ["an empty chain", (d) => ((d.routes as Array<Record<string, unknown>>)[2]!.targets = []), /routes\[2\]\.targets/],
    ["a bedrock provider with both AWS keys and an API key", (d) => ((d.providers as Record<string, unknown>).aws = { type: "bedrock", region: "us-east-1", credential: { env: "K" }, awsCredentials: { accessKeyId: { env: "A" }, secretAccessKey: { env: "S" } } }), /providers\.aws: set awsCredentials \(SigV4\) or credential \(a Bedrock API key\), not both/],
    ["a bedrock provider with a malformed region", (d) => ((d.providers as Record<string, unknown>).aws = { type: "bedrock", region: "US East" }), /providers\.aws\.region: an AWS region such as us-east-1/],
    ["a chain target that cannot serve the route's paths", (d) => ((d.routes as Array<Record<string, unknown>>)[3]!.targets = ["openai-embed-small", "claude-sonnet"]), /routes\[3\]\.match\.paths: target "claude-sonnet" \(anthropic\) cannot serve \/v1\/embeddings/],
    ["a strategy naming a target outside the chain", (d) => ((d.routes as Array<Record<string, unknown>>)[1]!.strategy = { type: "weighted", weights: { "openai-gpt-4o": 1, "claude-sonnet": 1 } }), /routes\[1\]\.strategy\.weights/],
    ["a provider without an endpoint", (d) => delete d.providers.azure!.endpoint, /providers\.azure\.endpoint: a azure-openai provider needs an endpoint/],
    ["an endpoint with a path", (d) => (d.providers.openai!.endpoint = "https://api.openai.com/v1"), /providers\.openai\.endpoint: scheme:\/\/host\[:port\] only/],
    ["a bad duration", (d) => ((d.routes as Array<Record<string, unknown>>)[1]!.retry = { perTryIdleTimeout: "soon" }), /routes\[1\]\.retry\.perTryIdleTimeout: a duration such as/],
    ["a cache without ttl", (d) => ((d.routes as Array<Record<string, unknown>>)[2]!.cache = { scope: "all" }), /routes\[2\]\.cache\.ttl/],
    ["a cache with an unknown scope", (d) => ((d.routes as Array<Record<string, unknown>>)[2]!.cache = { ttl: "1m", scope: "user" }), /routes\[2\]\.cache\.scope/],
    ["a cache entry bound over 16 MiB", (d) => ((d.routes as Array<Record<string, unknown>>)[2]!.cache = { ttl: "1m", maxEntryBytes: 32 * 1024 * 1024 }), /routes\[2\]\.cache\.maxEntryBytes/],
  ];
  for (const [name, mutate, expected] of table) {
    it(`rejects ${name}`, () => {
      const d = examplePolicy();
      mutate(d);
      assert.match(issues(d), expected);
    });
  }

  it("reports invalid JSON with a hint", () => assert.match(issues("{ // comment\n}"), /not valid JSON.*"\$comment"/));

  it("reports a missing credential by source, never a value", () => {
    const d = examplePolicy();
    assert.throws(() => compile(d, { ANTHROPIC_API_KEY: "sk-ant-zzz", AZURE_TEST_KEY: "x" }), (e: unknown) => {
      assert.ok(e instanceof PolicyError);
      assert.match(e.message, /providers\.openai\.credential: environment variable OPENAI_API_KEY is not set/);
      assert.ok(!e.message.includes("sk-ant-zzz"));
      return true;
    });
  });

  it("reads a credential from a file", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "llm-router-"));
    const file = path.join(dir, "key");
    writeFileSync(file, "from-file\n");
    const d = examplePolicy();
    d.providers.azure!.credential = { file };
    const p = compile(d, { OPENAI_API_KEY: "x", ANTHROPIC_API_KEY: "x" });
    assert.equal(p.targets.get("azure-gpt-4o")?.provider.credential?.reveal(), "from-file");
  });

  it("prints a JSON Schema that describes the document", () => {
    const schema = policyJsonSchema() as { properties: Record<string, unknown>; required: string[] };
    assert.ok(schema.properties.routes && schema.properties.targets && schema.properties.consumers);
    assert.ok(schema.required.includes("version"));
  });
});

describe("policy reload", () => {
  const env = { OPENAI_API_KEY: "x", ANTHROPIC_API_KEY: "x", AZURE_TEST_KEY: "x" };
  const setup = () => {
    const dir = mkdtempSync(path.join(tmpdir(), "llm-router-reload-"));
    const file = path.join(dir, "policy.json");
    writeFileSync(file, JSON.stringify(examplePolicy()));
    return { dir, file, store: PolicyStore.open(file, pino({ level: "silent" }), env) };
  };

  it("keeps the last good policy when the new file is bad, and takes a good one", async () => {
    const { file, store } = setup();
    const first = store.current;
    writeFileSync(file, '{"version": 1, "providers": {');
    const bad = await store.reload();
    assert.equal(bad.ok, false);
    assert.equal(store.current, first);
    const d = examplePolicy();
    (d.routes as Array<Record<string, unknown>>).reverse();
    writeFileSync(file, JSON.stringify(d));
    const good = await store.reload();
    assert.ok(good.ok && good.changed);
    assert.notEqual(store.current, first);
    assert.equal(first.routes[0]?.name, "smart-coding-ci", "a captured policy object never changes under a request");
  });

  it("reloads on file replacement (rename) through the directory watch", async () => {
    const { dir, file, store } = setup();
    store.watch(20);
    // The watcher does not hold the process open (the gRPC server does in production).
    const keepAlive = setInterval(() => undefined, 1000);
    const reloaded = new Promise<void>((resolve) => store.onReload((r) => r.ok && r.changed && resolve()));
    const d = examplePolicy();
    d.$comment = "changed";
    const tmp = path.join(dir, ".policy.json.tmp");
    writeFileSync(tmp, JSON.stringify(d));
    renameSync(tmp, file);
    await reloaded;
    clearInterval(keepAlive);
    assert.equal(store.current.document.$comment, "changed");
    store.close();
  });

  it("keeps serving when the file is deleted", async () => {
    const { file, store } = setup();
    const first = store.current;
    rmSync(file);
    assert.equal((await store.reload()).ok, false);
    assert.equal(store.current, first);
  });
});

describe("published JSON Schema", () => {
  it("examples/policy.schema.json equals `llm-router schema` (regenerate it when the schema changes)", () => {
    const file = path.join(path.dirname(EXAMPLE_POLICY), "policy.schema.json");
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), policyJsonSchema());
  });
});
