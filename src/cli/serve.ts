// `llm-router serve`: flags and environment into one ServeConfig, then one process (--workers 1,
// the default) or a primary with N worker processes sharing the gRPC address (src/cluster/).
import cluster from "node:cluster";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { Logger } from "pino";
import { runPrimary } from "../cluster/primary";
import { isClusterWorker, runWorker } from "../cluster/worker";
import { parseKeys } from "../context/routing-context";
import { createLogger } from "../log";
import { preloadTokenizers } from "../routing/request-features";
import { startService, type RunningService, type ServiceOptions } from "../service";
import { nonNegativeInt, parseOptions, positiveInt, requireString, UsageError, type OptionSpec } from "./options";

export const SERVE_OPTIONS: OptionSpec = {
  policy: { type: "string", env: "LLM_ROUTER_POLICY" },
  "grpc-listen": { type: "string", env: "LLM_ROUTER_GRPC_LISTEN", default: "0.0.0.0:50051" },
  "admin-listen": { type: "string", env: "LLM_ROUTER_ADMIN_LISTEN", default: "0.0.0.0:9090" },
  "admin-token": { type: "string", env: "LLM_ROUTER_ADMIN_TOKEN" },
  "admin-token-file": { type: "string", env: "LLM_ROUTER_ADMIN_TOKEN_FILE" },
  "hmac-keys": { type: "string", env: "LLM_ROUTER_HMAC_KEYS" },
  "hmac-key-file": { type: "string", env: "LLM_ROUTER_HMAC_KEY_FILE" },
  "max-body-bytes": { type: "string", env: "LLM_ROUTER_MAX_BODY_BYTES", default: String(16 * 1024 * 1024) },
  "context-max-age-seconds": { type: "string", env: "LLM_ROUTER_CONTEXT_MAX_AGE_SECONDS", default: "3600" },
  "shutdown-grace-seconds": { type: "string", env: "LLM_ROUTER_SHUTDOWN_GRACE_SECONDS", default: "30" },
  "log-level": { type: "string", env: "LLM_ROUTER_LOG_LEVEL", default: "info" },
  "no-watch": { type: "boolean", env: "LLM_ROUTER_NO_WATCH" },
  "redis-url": { type: "string", env: "LLM_ROUTER_REDIS_URL" },
  "redis-cluster": { type: "boolean", env: "LLM_ROUTER_REDIS_CLUSTER" },
  "redis-key-prefix": { type: "string", env: "LLM_ROUTER_REDIS_KEY_PREFIX", default: "llmr:" },
  "redis-timeout-ms": { type: "string", env: "LLM_ROUTER_REDIS_TIMEOUT_MS", default: "200" },
  "cache-memory-mb": { type: "string", env: "LLM_ROUTER_CACHE_MEMORY_MB", default: "64" },
  "observations-sync-ms": { type: "string", env: "LLM_ROUTER_OBSERVATIONS_SYNC_MS", default: "500" },
  "log-bodies": { type: "string", env: "LLM_ROUTER_LOG_BODIES", default: "0" },
  workers: { type: "string", env: "LLM_ROUTER_WORKERS", default: "1" },
};

/** Everything `serve` was told, checked. */
export interface ServeConfig {
  /** startService's options but the logger, which each process makes for itself. */
  service: Omit<ServiceOptions, "log">;
  logLevel: string;
  graceMs: number;
  /** Processes serving ext_proc: 1 is one process and no cluster. */
  workers: number;
}

export async function serveCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const config = serveConfig(argv, env);
  if (isClusterWorker(env)) return runWorker(config, startServing);
  if (config.workers > 1) return runPrimary(config, argv, env);

  const log = createLogger(config.logLevel);
  const service = await startServing(config, log);
  const { graceMs } = config;
  process.on("SIGHUP", () => void service.policy.reload());
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, graceMs }, "draining: no new streams, waiting for open ones");
    void service.shutdown(graceMs).then(() => {
      log.info("stopped");
      log.flush?.();
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

function serveConfig(argv: string[], env: NodeJS.ProcessEnv): ServeConfig {
  const o = parseOptions(argv, SERVE_OPTIONS, env);
  const policyFile = requireString(o, "policy", "the routing policy JSON file; or LLM_ROUTER_POLICY");
  let keyText = typeof o["hmac-keys"] === "string" ? o["hmac-keys"] : undefined;
  if (keyText === undefined && typeof o["hmac-key-file"] === "string") keyText = readFileSync(o["hmac-key-file"], "utf8");
  if (keyText === undefined) {
    throw new UsageError("an HMAC key shared by all replicas is required: --hmac-keys / LLM_ROUTER_HMAC_KEYS or --hmac-key-file (e.g. `openssl rand -hex 32`)");
  }
  const adminListen = String(o["admin-listen"]);
  return {
    service: {
      policyFile,
      grpcListen: String(o["grpc-listen"]),
      adminListen: adminListen === "off" ? undefined : adminListen,
      hmacKeys: parseKeys(keyText),
      contextMaxAgeMs: positiveInt(o, "context-max-age-seconds") * 1000,
      maxBodyBytes: positiveInt(o, "max-body-bytes"),
      watchPolicy: o["no-watch"] !== true,
      env,
      redisUrl: typeof o["redis-url"] === "string" ? o["redis-url"] : undefined,
      redisCluster: o["redis-cluster"] === true,
      redisKeyPrefix: String(o["redis-key-prefix"]),
      redisTimeoutMs: positiveInt(o, "redis-timeout-ms"),
      cacheMemoryBytes: positiveInt(o, "cache-memory-mb") * 1024 * 1024,
      observationsSyncMs: nonNegativeInt(o, "observations-sync-ms"),
      logBodyBytes: nonNegativeInt(o, "log-bodies"),
      adminToken: adminToken(o),
    },
    logLevel: String(o["log-level"]),
    graceMs: positiveInt(o, "shutdown-grace-seconds") * 1000,
    workers: workerCount(o, env),
  };
}

/** What every serving process does, the only one or each worker: load the tokenizers, then serve. */
export function startServing(config: ServeConfig, log: Logger, overrides: Partial<ServiceOptions> = {}): Promise<RunningService> {
  // The context-window guard tokenizes requests near a window; load the tables before traffic
  // (~250 ms, ~110 MB) instead of on the first such request.
  preloadTokenizers();
  return startService({ ...config.service, log, ...overrides });
}

/** --workers: a positive integer, or `auto` for one per core Node may use. */
function workerCount(o: Record<string, unknown>, env: NodeJS.ProcessEnv): number {
  const text = String(o.workers);
  const n = text === "auto" ? availableParallelism() : Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--workers must be a positive integer or "auto" (got ${text})`);
  if (n > 1 && !cluster.isPrimary && !isClusterWorker(env)) {
    // Inside someone else's cluster (pm2's cluster mode runs apps as cluster workers): forking
    // workers of our own is not possible there.
    throw new UsageError("--workers above 1 cannot run inside another cluster's worker (e.g. pm2 cluster mode): use that cluster's instances with --workers 1");
  }
  return n;
}

/** The admin token for /debug/*, from the flag or a file (which keeps it out of `ps`); undefined: loopback only. */
function adminToken(o: Record<string, unknown>): string | undefined {
  let text = typeof o["admin-token"] === "string" ? o["admin-token"] : undefined;
  if (text === undefined && typeof o["admin-token-file"] === "string") text = readFileSync(o["admin-token-file"], "utf8");
  if (text === undefined) return undefined;
  const token = text.trim();
  if (token === "") throw new UsageError("the admin token (--admin-token / --admin-token-file) is empty");
  return token;
}
