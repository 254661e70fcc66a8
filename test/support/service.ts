// Starts the real service on port 0 with a policy written to a temp dir.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pino, { type Logger } from "pino";
import { startService, type RunningService } from "../../src/service";

export const TEST_HMAC_KEY = Buffer.alloc(32, 7);
export const REPO_ROOT = path.resolve(__dirname, "../../..");
export const EXAMPLE_POLICY = path.join(REPO_ROOT, "examples/policy.json");

export const TEST_ENV: NodeJS.ProcessEnv = {
  OPENAI_API_KEY: "sk-provider-openai-SECRET",
  ANTHROPIC_API_KEY: "sk-ant-provider-SECRET",
  AZURE_TEST_KEY: "azure-provider-SECRET",
};

export interface TestService extends RunningService {
  address: string;
  policyFile: string;
  stop(): Promise<void>;
}

export async function startTestService(
  policy: object | string = examplePolicy(),
  env: NodeJS.ProcessEnv = TEST_ENV,
  extra: { maxBodyBytes?: number; redisUrl?: string; redisCluster?: boolean; redisKeyPrefix?: string; redisTimeoutMs?: number; observationsSyncMs?: number; adminToken?: string; log?: Logger; logBodyBytes?: number; processesPerReplica?: number } = {},
): Promise<TestService> {
  let policyFile: string;
  const dir = mkdtempSync(path.join(tmpdir(), "llm-router-test-"));
  if (typeof policy === "string") {
    policyFile = policy;
  } else {
    policyFile = path.join(dir, "policy.json");
    writeFileSync(policyFile, JSON.stringify(policy));
  }
  const svc = await startService({
    policyFile,
    grpcListen: "127.0.0.1:0",
    adminListen: "127.0.0.1:0",
    hmacKeys: [TEST_HMAC_KEY],
    contextMaxAgeMs: 60_000,
    maxBodyBytes: extra.maxBodyBytes ?? 16 * 1024 * 1024,
    log: extra.log ?? pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
    watchPolicy: false,
    env,
    redisUrl: extra.redisUrl,
    redisKeyPrefix: extra.redisKeyPrefix,
    redisTimeoutMs: extra.redisTimeoutMs,
    observationsSyncMs: extra.observationsSyncMs,
    redisCluster: extra.redisCluster,
    adminToken: extra.adminToken,
    logBodyBytes: extra.logBodyBytes,
    processesPerReplica: extra.processesPerReplica,
  });
  return { ...svc, address: `127.0.0.1:${svc.grpcPort}`, policyFile, stop: () => svc.shutdown(2000) };
}

/** The example policy as an object, with Azure's key read from the environment instead of a file. */
export function examplePolicy(): Record<string, unknown> & { providers: Record<string, Record<string, unknown>> } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const doc = JSON.parse(JSON.stringify(require(EXAMPLE_POLICY))) as Record<string, unknown> & { providers: Record<string, Record<string, unknown>> };
  doc.providers.azure!.credential = { env: "AZURE_TEST_KEY" };
  return doc;
}
