// The policy and phase dependencies the fuzz suites drive the service with: the example policy plus
// routes that reach every translation (Anthropic, Gemini, Bedrock targets for OpenAI clients), a
// cached route, a quota rule, and a route header outside the x-llm-router- prefix (so stripping
// client-sent routing headers is tested on a configured name too).
import pino from "pino";
import { MemoryCacheStore } from "../../src/cache/cache-store";
import { ResponseCache } from "../../src/cache/response-cache";
import { ContextSigner } from "../../src/context/routing-context";
import type { PhaseDeps } from "../../src/phases/phase-deps";
import { compilePolicyText, type CompiledPolicy } from "../../src/policy/compile";
import { QuotaGate } from "../../src/quota/quota-gate";
import { LoadShedder } from "../../src/overload/load-shedder";
import { TargetObservations } from "../../src/routing/observations";
import { examplePolicy, TEST_ENV, TEST_HMAC_KEY } from "./service";

export const FUZZ_ENV: NodeJS.ProcessEnv = { ...TEST_ENV, GEMINI_KEY: "gemini-provider-SECRET", AWS_AK: "AKIDEXAMPLE", AWS_SK: "aws-secret-SECRET" };

/** Provider credentials the fuzz policy resolves: none may ever appear in what a client gets. */
export const PROVIDER_SECRETS = ["sk-provider-openai-SECRET", "sk-ant-provider-SECRET", "azure-provider-SECRET", "gemini-provider-SECRET", "aws-secret-SECRET"];

export const FUZZ_ROUTE_HEADER = "x-gw-route";

export function fuzzPolicyDocument(): Record<string, unknown> {
  const doc = examplePolicy() as Record<string, unknown> & { routes: unknown[]; targets: Record<string, unknown>; providers: Record<string, unknown>; gateway: Record<string, unknown> };
  doc.gateway.routeHeader = FUZZ_ROUTE_HEADER;
  doc.providers.gemini = { type: "gemini", credential: { env: "GEMINI_KEY" } };
  doc.providers.bedrock = { type: "bedrock", region: "us-east-1", awsCredentials: { accessKeyId: { env: "AWS_AK" }, secretAccessKey: { env: "AWS_SK" } } };
  doc.targets["gemini-flash"] = { provider: "gemini", model: "gemini-2.5-flash", capabilities: ["tools", "vision", "json", "streaming"] };
  doc.targets["gemini-embed"] = { provider: "gemini", model: "gemini-embedding-001", capabilities: ["embeddings"] };
  doc.targets["bedrock-claude"] = { provider: "bedrock", model: "anthropic.claude-3-5-sonnet-20240620-v1:0", capabilities: ["tools", "vision", "streaming"] };
  doc.routes.push(
    { name: "claude-chat", match: { models: ["claude-chat"], paths: ["/v1/chat/completions"] }, targets: ["claude-sonnet"] },
    { name: "gemini-chat", match: { models: ["gemini"], paths: ["/v1/chat/completions"] }, targets: ["gemini-flash"] },
    { name: "gemini-embed", match: { models: ["gemini-embed"], paths: ["/v1/embeddings"] }, targets: ["gemini-embed"] },
    { name: "bedrock-chat", match: { models: ["bedrock"], paths: ["/v1/chat/completions"] }, targets: ["bedrock-claude"] },
    { name: "gpt-for-claude-clients", match: { models: ["gpt-4o-mini-msg"], paths: ["/v1/messages"] }, targets: ["openai-gpt-4o-mini"] },
    { name: "cached", match: { models: ["cached"] }, targets: ["openai-gpt-4o-mini"], cache: { ttl: "1m", coalesce: false, scope: "all" } },
  );
  doc.limits = { rules: [{ name: "generous", requestsPerMinute: 1_000_000_000, concurrent: 1_000_000 }] };
  return doc;
}

export function fuzzPolicy(): CompiledPolicy {
  return compilePolicyText(JSON.stringify(fuzzPolicyDocument()), { file: "fuzz-policy.json", resolveSecrets: true, env: FUZZ_ENV });
}

const silent = pino({ level: "silent" });

/** Phase dependencies as service.ts wires them, in memory and silent. */
export function fuzzDeps(policy: CompiledPolicy, now: () => number = Date.now): PhaseDeps {
  return {
    currentPolicy: () => policy,
    signer: new ContextSigner([TEST_HMAC_KEY], 60_000),
    maxBodyBytes: 1024 * 1024,
    log: silent,
    now,
    observations: new TargetObservations(() => policy.cooldown),
    random: () => 0.5,
    quota: new QuotaGate(undefined, silent),
    cache: new ResponseCache(new MemoryCacheStore(1024 * 1024), silent),
    requests: { completed: () => undefined, attempted: () => undefined },
    load: new LoadShedder(),
  };
}

/** The model names the fuzz policy routes, with the client path each is meant for. */
export const ROUTED_MODELS: ReadonlyArray<readonly [model: string, path: string]> = [
  ["smart", "/v1/chat/completions"],
  ["fast", "/v1/chat/completions"],
  ["fast", "/v1/responses"],
  ["fast", "/v1/completions"],
  ["embed", "/v1/embeddings"],
  ["claude", "/v1/messages"],
  ["claude-chat", "/v1/chat/completions"],
  ["gemini", "/v1/chat/completions"],
  ["gemini-embed", "/v1/embeddings"],
  ["bedrock", "/v1/chat/completions"],
  ["gpt-4o-mini-msg", "/v1/messages"],
  ["cached", "/v1/chat/completions"],
  ["llama", "/v1/chat/completions"],
];

/** Gateway keys of the example consumers. */
export const CLIENT_KEYS = ["sk-demo-alice", "sk-demo-bob", "sk-demo-ci"];
