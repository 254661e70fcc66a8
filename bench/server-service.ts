// Bench child: the real service (src/service.ts) on 127.0.0.1:0 with the example policy (as
// bench/policy.ts adapts it: one more route, for translated requests).
// `--limits` adds a quota rule for the bench's consumer (so that every request is admitted against
// the store, one call per request); `--cache` gives the bench's route a response cache;
// `--redis-url URL --redis-prefix P` keeps quotas and cached answers in Redis instead of this
// process's memory. `--soak-limited-rpm N` runs the soak's policy instead (bench/policy.ts
// soakPolicy: consumer ci limited to N requests per minute, a cached route, no cooldowns).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pino from "pino";
import { createLogger } from "../src/log";
import { startService } from "../src/service";
import { MAX_BODY_BYTES, reportFailure, reportReady, serveIpc } from "./ipc";
import { benchPolicy, EXAMPLE_POLICY, PASSTHROUGH_ROUTE, soakPolicy } from "./policy";

/** Dummy provider credentials: the bench never reaches a provider. */
export const BENCH_ENV: NodeJS.ProcessEnv = {
  OPENAI_API_KEY: "sk-bench-openai",
  ANTHROPIC_API_KEY: "sk-ant-bench",
  AZURE_BENCH_KEY: "azure-bench",
};

/**
 * One rule with three limits (token buckets for requests and tokens, a daily window for dollars),
 * so one admission checks three counters; limits no bench run can reach, because the bench measures
 * what admitting costs, never a refusal. failMode closed: were Redis to fail, requests would get 503
 * and the bench would stop, instead of quietly measuring the in-memory fallback.
 */
const BENCH_LIMITS = {
  rules: [
    {
      name: "bench-alice",
      per: "consumer",
      match: { consumers: ["alice"] },
      requestsPerMinute: 1_000_000_000,
      tokensPerMinute: 1_000_000_000_000,
      usdPerDay: 1_000_000,
      failMode: "closed",
    },
  ],
};

/** The route the bench's chat requests match (see UPSTREAM_CLUSTER in envoy-client.ts). */
const BENCH_ROUTE = PASSTHROUGH_ROUTE;

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: { limits: { type: "boolean" }, cache: { type: "boolean" }, "redis-url": { type: "string" }, "redis-prefix": { type: "string" }, "soak-limited-rpm": { type: "string" } },
  });
  const soakRpm = args["soak-limited-rpm"];
  const policy = soakRpm === undefined ? benchPolicy() : soakPolicy(Number(soakRpm));
  if (args.limits) policy.limits = BENCH_LIMITS;
  if (args.cache) {
    const route = policy.routes.find((r) => r.name === BENCH_ROUTE);
    if (route === undefined) throw new Error(`${EXAMPLE_POLICY} has no route "${BENCH_ROUTE}"`);
    // Shared by every consumer: the bench measures a hit, not who may see it.
    route.cache = { ttl: "1h", scope: "all" };
  }
  const dir = mkdtempSync(path.join(tmpdir(), "llm-router-bench-"));
  const policyFile = path.join(dir, "policy.json");
  writeFileSync(policyFile, JSON.stringify(policy));

  const svc = await startService({
    policyFile,
    grpcListen: "127.0.0.1:0",
    adminListen: undefined,
    hmacKeys: [Buffer.alloc(32, 0x5a)],
    contextMaxAgeMs: 3600 * 1000,
    maxBodyBytes: MAX_BODY_BYTES,
    // As in production: the per-request line at info, through the service's own logger (redaction
    // included), written asynchronously; to /dev/null so the bench's output stays readable.
    log: createLogger("info", pino.destination({ dest: "/dev/null", sync: false })),
    watchPolicy: false,
    env: BENCH_ENV,
    redisUrl: args["redis-url"],
    redisKeyPrefix: args["redis-prefix"],
  });
  serveIpc(async () => {
    await svc.shutdown(1000);
    rmSync(dir, { recursive: true, force: true });
  });
  reportReady(svc.grpcPort);
}

main().catch(reportFailure);
