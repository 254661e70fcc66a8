// The CLI as users run it: a child process of dist/src/cli/main.js.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { HealthClient } from "./support/health-client";
import { EXAMPLE_POLICY, examplePolicy, REPO_ROOT, TEST_ENV } from "./support/service";

const MAIN = path.join(REPO_ROOT, "dist/src/cli/main.js");
const ENVOY = path.join(REPO_ROOT, "envoy/envoy.yaml");
const run = promisify(execFile);

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH, ...env } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("cli", () => {
  it("validate: example policy against envoy.yaml", async () => {
    const r = await cli(["validate", "--policy", EXAMPLE_POLICY, "--envoy", ENVOY]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /consistent with the policy/);
  });

  it("validate: a chain envoy.yaml lacks, a new route and a wrong routing header fail", async () => {
    const d = examplePolicy();
    const routes = d.routes as Array<Record<string, unknown>>;
    routes[2]!.targets = ["openai-gpt-4o-mini", "azure-gpt-4o"];
    routes.push({ name: "brand-new", match: { models: ["new"] }, targets: ["local-llama"] });
    (d.gateway as Record<string, unknown>).clusterHeader = "x-other";
    const file = path.join(mkdtempSync(path.join(tmpdir(), "llm-router-cli-")), "p.json");
    writeFileSync(file, JSON.stringify(d));
    const r = await cli(["validate", "--policy", file, "--envoy", ENVOY]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /cluster "chain_openai-gpt-4o-mini_[0-9a-f]{8}" \(targets openai-gpt-4o-mini -> azure-gpt-4o\) is not defined in envoy\.yaml \(render it again/);
    assert.match(r.stdout, /route brand-new: no Envoy route with cluster_header x-other matches x-llm-router-route: brand-new/);
    assert.match(r.stdout, /cluster_header "x-llm-router-cluster" but the policy sets "x-other"/);
  });

  it("render-envoy: prints the committed envoy.yaml for the example policy", async () => {
    const r = await cli(["render-envoy", "--policy", "examples/policy.json", "--base", "envoy/envoy.base.yaml"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(`${r.stdout.trimEnd()}\n`, readFileSync(ENVOY, "utf8"));
  });

  it("validate: a bad policy exits 1 with the path", async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "llm-router-cli-")), "p.json");
    writeFileSync(file, JSON.stringify({ version: 1, providers: {}, targets: {}, routes: [{ name: "r", targets: ["t"] }] }));
    const r = await cli(["validate", "--policy", file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /routes\[0\]\.targets\[0\]: unknown target/);
  });

  it("explain: prints the decision without network or provider keys", async () => {
    const r = await cli(["explain", "--policy", EXAMPLE_POLICY, "--key", "sk-demo-alice", "--body", '{"model":"smart","messages":[]}']);
    assert.equal(r.code, 0, r.stderr);
    type Attempt = { target: string; upstreamRequest: { path: string; headers: Record<string, string>; body: { model: string } } };
    const out = JSON.parse(r.stdout) as { decision: string; plan: { chain: string[]; order: string[]; retries: number; why: string }; attempts: Attempt[] };
    assert.match(out.decision, /^consumer alice -> route smart -> target openai-gpt-4o \(cluster chain_openai-gpt-4o_[0-9a-f]{8}, then azure-gpt-4o, local-llama\) -> POST \/v1\/chat\/completions$/);
    assert.deepEqual(out.plan.chain, ["openai-gpt-4o", "azure-gpt-4o", "local-llama"]);
    assert.deepEqual(out.plan.order, out.plan.chain);
    assert.equal(out.plan.retries, 2);
    const [first, second, third] = out.attempts;
    assert.equal(first!.upstreamRequest.body.model, "gpt-4o");
    assert.equal(first!.upstreamRequest.headers.authorization, "Bearer <credential from env OPENAI_API_KEY>");
    // The fallback attempts: Azure's deployment path and api-key, then the local model without credentials.
    assert.equal(second!.target, "azure-gpt-4o");
    assert.equal(second!.upstreamRequest.path, "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21");
    assert.equal(second!.upstreamRequest.headers["api-key"], "<credential from file /run/secrets/azure-openai-key>");
    assert.equal(second!.upstreamRequest.headers.authorization, undefined);
    assert.equal(third!.upstreamRequest.body.model, "meta-llama/Llama-3.1-8B-Instruct");
    assert.equal(third!.upstreamRequest.headers["api-key"], undefined);
    assert.ok(!r.stdout.includes("sk-demo-alice"), "the client's key is not echoed");
  });

  it("explain: a rejected request exits 2 and shows the error", async () => {
    const r = await cli(["explain", "--policy", EXAMPLE_POLICY, "--key", "sk-demo-bob", "--body", '{"model":"smart"}']);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /rejected: 403 llm_router_route_not_allowed/);
  });

  it("schema: prints JSON Schema", async () => {
    const r = await cli(["schema"]);
    assert.equal(r.code, 0);
    assert.equal((JSON.parse(r.stdout) as { type: string }).type, "object");
  });

  it("serve: refuses to start without an HMAC key", async () => {
    const r = await cli(["serve", "--policy", EXAMPLE_POLICY], TEST_ENV);
    assert.equal(r.code, 64);
    assert.match(r.stderr, /HMAC key shared by all replicas is required/);
  });

  it("serve: env configuration, health, SIGHUP reload, SIGTERM drains and exits 0", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "llm-router-serve-"));
    const policy = path.join(dir, "policy.json");
    writeFileSync(policy, JSON.stringify(examplePolicy()));
    const sock = path.join(dir, "grpc.sock");
    const child = spawn(process.execPath, [MAIN, "serve"], {
      env: {
        PATH: process.env.PATH,
        ...TEST_ENV,
        LLM_ROUTER_POLICY: policy,
        LLM_ROUTER_GRPC_LISTEN: `unix:${sock}`,
        LLM_ROUTER_ADMIN_LISTEN: "127.0.0.1:0",
        LLM_ROUTER_HMAC_KEYS: "k".repeat(32),
        LLM_ROUTER_NO_WATCH: "true",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let logs = "";
    child.stdout.on("data", (d: Buffer) => (logs += d.toString()));
    child.stderr.on("data", (d: Buffer) => (logs += d.toString()));
    const waitFor = async (re: RegExp) => {
      for (let i = 0; i < 200 && !re.test(logs); i++) await new Promise((r) => setTimeout(r, 25));
      assert.match(logs, re);
    };
    await waitFor(/llm-router serving/);
    assert.equal(await new HealthClient(`unix:${sock}`).check(""), "SERVING");
    const d = examplePolicy();
    d.$comment = "v2";
    writeFileSync(policy, JSON.stringify(d));
    child.kill("SIGHUP");
    await waitFor(/policy reloaded/);
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.ok(!logs.includes("sk-provider-openai-SECRET"), "provider credentials never reach the logs");
  });
});
