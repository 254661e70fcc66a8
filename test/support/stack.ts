// The whole path for end-to-end tests: client -> Envoy harness (a bootstrap rendered from the policy
// by render-envoy on envoy/envoy.base.yaml) -> llm-router (both phases, real gRPC) -> one mock
// provider per provider host of the example policy.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Logger } from "pino";
import { renderEnvoy } from "../../src/envoy/render";
import { startMockProvider, type MockProvider } from "../../src/mock-provider/server";
import { compilePolicyText } from "../../src/policy/compile";
import { EnvoyHarness } from "../harness/envoy-harness";
import { type examplePolicy, REPO_ROOT, startTestService, type TestService } from "./service";

export type Doc = ReturnType<typeof examplePolicy> & { routes: Array<Record<string, unknown>> };

export interface Stack {
  svc: TestService;
  envoy: EnvoyHarness;
  openai: MockProvider;
  azure: MockProvider;
  vllm: MockProvider;
  anthropic: MockProvider;
  close(): Promise<void>;
}

export interface StackOptions {
  /** Provider hosts that get no endpoint (connect failures). */
  unreachable?: string[];
  redisUrl?: string;
  redisKeyPrefix?: string;
  /** redisUrl lists Redis Cluster seed nodes. */
  redisCluster?: boolean;
  /** Redis command timeout of the service (default 200 ms). */
  redisTimeoutMs?: number;
  /** How often replicas exchange target observations through Redis (default 500 ms). */
  observationsSyncMs?: number;
  streamChunks?: number;
  /** Mock latency before each answer (ms). */
  latencyMs?: number;
  /** The service's logger (default: silent). */
  log?: Logger;
  /** The service's --log-bodies. */
  logBodyBytes?: number;
}

/** Writes envoy.yaml rendered from `doc` into a temp dir and returns its path. */
export function renderedEnvoyYaml(doc: object): string {
  const dir = mkdtempSync(path.join(tmpdir(), "llm-router-stack-"));
  const policy = compilePolicyText(JSON.stringify(doc), { file: "policy.json", resolveSecrets: false });
  const envoyYaml = path.join(dir, "envoy.yaml");
  writeFileSync(envoyYaml, renderEnvoy(policy, readFileSync(path.join(REPO_ROOT, "envoy/envoy.base.yaml"), "utf8"), { policyFile: "policy.json", baseFile: "envoy.base.yaml" }));
  return envoyYaml;
}

export async function startStack(doc: Doc, opts: StackOptions = {}): Promise<Stack> {
  const envoyYaml = renderedEnvoyYaml(doc);
  const extra = {
    ...(opts.redisUrl ? { redisUrl: opts.redisUrl } : {}),
    ...(opts.redisKeyPrefix ? { redisKeyPrefix: opts.redisKeyPrefix } : {}),
    ...(opts.redisTimeoutMs ? { redisTimeoutMs: opts.redisTimeoutMs } : {}),
    ...(opts.redisCluster ? { redisCluster: true } : {}),
    ...(opts.observationsSyncMs !== undefined ? { observationsSyncMs: opts.observationsSyncMs } : {}),
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.logBodyBytes ? { logBodyBytes: opts.logBodyBytes } : {}),
  };
  const svc = await startTestService(doc, undefined, extra);
  const chunks = opts.streamChunks ?? 4;
  const mock = () => startMockProvider({ streamChunks: chunks, latencyMs: opts.latencyMs ?? 0 });
  const [openai, azure, vllm, anthropic] = await Promise.all([mock(), mock(), mock(), mock()]);
  const hosts: Record<string, string> = { "api.openai.com": openai.url, "my-resource.openai.azure.com": azure.url, "vllm.internal": vllm.url, "api.anthropic.com": anthropic.url };
  for (const h of opts.unreachable ?? []) delete hosts[h];
  const envoy = await EnvoyHarness.start({ envoyYaml, extProcAddress: svc.address, hostEndpoints: hosts });
  return {
    svc,
    envoy,
    openai,
    azure,
    vllm,
    anthropic,
    async close() {
      await envoy.close();
      await Promise.all([openai.close(), azure.close(), vllm.close(), anthropic.close()]);
      await svc.stop();
    },
  };
}
