// Wires the process: policy store, ext_proc gRPC server (both phases), gRPC health, admin HTTP.
import type http from "node:http";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { boundPort, startAdminServer } from "./admin/admin-server";
import { MemoryCacheStore, type CacheStore } from "./cache/cache-store";
import { RedisCacheStore } from "./cache/redis-cache-store";
import { ResponseCache } from "./cache/response-cache";
import { ContextSigner } from "./context/routing-context";
import { loadExtProcService } from "./extproc/proto";
import { serveStream, type ProcessCall } from "./extproc/stream";
import type { StreamProcessor } from "./extproc/messages";
import { logAttempt, logRequest } from "./log";
import { UNKNOWN } from "./metrics/labels";
import { GatewayMetrics } from "./metrics/metrics";
import { PHASE_METADATA_KEY } from "./phases/gateway-headers";
import type { PhaseDeps } from "./phases/phase-deps";
import type { RequestSink } from "./phases/request-summary";
import { LoadShedder } from "./overload/load-shedder";
import { TargetObservations } from "./routing/observations";
import { ObservationExchange } from "./routing/shared-observations";
import { RouterPhase } from "./phases/router-phase";
import { UpstreamPhase } from "./phases/upstream-phase";
import { PolicyStore, type PolicyRequirement } from "./policy/policy-store";
import { QuotaGate } from "./quota/quota-gate";
import { RedisQuotaStore } from "./quota/redis-store";
import { createRedisClient, observeCommands, redisReady } from "./redis/client";
import { openSocketToGroup, removeStaleSocket } from "./unix-socket";

export const EXT_PROC_SERVICE_NAME = "envoy.service.ext_proc.v3.ExternalProcessor";

export interface ServiceOptions {
  policyFile: string;
  /** Rules the policy must meet in this process besides being valid (at start and on reload). */
  policyRequirements?: readonly PolicyRequirement[];
  /**
   * Processes serving this replica's address (`serve --workers N`: N): each takes its share of the
   * replica's `local` quota fallback and of gateway.overload.maxInFlight.
   */
  processesPerReplica?: number;
  /** host:port or unix:/path. Port 0 picks a free port. */
  grpcListen: string;
  /** host:port for /healthz, /readyz; undefined disables it. */
  adminListen: string | undefined;
  hmacKeys: Buffer[];
  contextMaxAgeMs: number;
  maxBodyBytes: number;
  log: Logger;
  watchPolicy: boolean;
  env?: NodeJS.ProcessEnv;
  /** Quota store shared by replicas; undefined keeps quotas in this process's memory. */
  redisUrl?: string | undefined;
  /** redisUrl lists Redis Cluster seed nodes (comma-separated). */
  redisCluster?: boolean | undefined;
  /** Prefix of every Redis key (default "llmr:"). */
  redisKeyPrefix?: string | undefined;
  /** Longest wait for one Redis command before quotas follow their failMode and the cache misses (default 200 ms). */
  redisTimeoutMs?: number | undefined;
  /** Bytes of answers the response cache keeps in memory when there is no Redis (default 64 MiB). */
  cacheMemoryBytes?: number | undefined;
  /**
   * With Redis: how often replicas exchange target observations (default 500 ms); 0 keeps them per
   * replica. Failures and cooldowns are reported as they happen either way when non-zero.
   */
  observationsSyncMs?: number | undefined;
  /** When set, the admin port's /debug/* endpoints require it as a bearer token from every address; otherwise they answer loopback only. */
  adminToken?: string | undefined;
  /** Debug aid: log up to this many bytes of each request and answer body at debug level (default 0: never). */
  logBodyBytes?: number | undefined;
}

export interface RunningService {
  grpcPort: number;
  adminPort: number | undefined;
  policy: PolicyStore;
  quota: QuotaGate;
  cache: ResponseCache;
  observations: TargetObservations;
  metrics: GatewayMetrics;
  /** Undefined without Redis or with observationsSyncMs 0. */
  exchange: ObservationExchange | undefined;
  /** Stops accepting, lets open streams finish within graceMs, then cancels the rest. */
  shutdown(graceMs: number): Promise<void>;
}

/** gRPC framing and the proto envelope around the largest body; headers ride in the same message. */
const MESSAGE_OVERHEAD_BYTES = 1024 * 1024;
export const DEFAULT_CACHE_MEMORY_BYTES = 64 * 1024 * 1024;
export const DEFAULT_OBSERVATIONS_SYNC_MS = 500;

export async function startService(opts: ServiceOptions): Promise<RunningService> {
  const { log } = opts;
  const policy = PolicyStore.open(opts.policyFile, log, opts.env, opts.policyRequirements);
  if (opts.watchPolicy) policy.watch();
  const metrics = new GatewayMetrics();
  metrics.policyLoaded(policy.current.hash);
  metrics.requests.policyLoaded(policy.current);
  policy.onReload((r) => {
    metrics.policyReloaded(!r.ok ? "rejected" : r.changed ? "applied" : "unchanged");
    if (r.ok && r.changed) {
      metrics.policyLoaded(r.policy.hash);
      metrics.requests.policyLoaded(r.policy);
    }
  });
  const signer = new ContextSigner(opts.hmacKeys, opts.contextMaxAgeMs);
  const observations = new TargetObservations(() => policy.current.cooldown);
  let redis: ReturnType<typeof createRedisClient> | undefined;
  let quotaStore: RedisQuotaStore | undefined;
  let cacheStore: CacheStore = new MemoryCacheStore(opts.cacheMemoryBytes ?? DEFAULT_CACHE_MEMORY_BYTES);
  let exchange: ObservationExchange | undefined;
  if (opts.redisUrl !== undefined) {
    const keyPrefix = opts.redisKeyPrefix ?? "llmr:";
    redis = createRedisClient({ url: opts.redisUrl, cluster: opts.redisCluster === true, commandTimeoutMs: opts.redisTimeoutMs ?? 200 });
    observeCommands(redis, (command, seconds, ok) => metrics.requests.redisCommand(command, seconds, ok));
    quotaStore = new RedisQuotaStore({ url: opts.redisUrl, keyPrefix, client: redis });
    cacheStore = new RedisCacheStore(redis, keyPrefix);
    const syncMs = opts.observationsSyncMs ?? DEFAULT_OBSERVATIONS_SYNC_MS;
    // A target id learnt from Redis may come from a replica running another policy version.
    const onSharedCooldown = (id: string) => metrics.requests.cooldownEntered(policy.current.targets.has(id) ? id : UNKNOWN, "shared");
    if (syncMs > 0) exchange = new ObservationExchange({ redis, keyPrefix, observations, intervalMs: syncMs, log, onSharedCooldown });
    // Serving starts either way: until Redis answers, each rule follows its failMode and the cache misses.
    await redisReady(redis, 5000).catch((err: Error) => log.error({ err: err.message }, "Redis (quotas, cache) not reachable at start"));
  }
  exchange?.start();
  const processes = opts.processesPerReplica ?? 1;
  const quota = new QuotaGate(quotaStore, log, { decided: (rule, decision) => metrics.requests.quotaDecided(rule, decision) }, processes);
  const cache = new ResponseCache(cacheStore, log);
  metrics.requests.cacheStats(cache.stats);
  const requests: RequestSink = {
    completed: (s) => {
      metrics.requests.completed(s);
      logRequest(log, s);
    },
    attempted: (a) => {
      metrics.requests.attempted(a);
      logAttempt(log, a);
    },
  };
  const load = new LoadShedder(processes);
  const deps: PhaseDeps = { currentPolicy: () => policy.current, signer, maxBodyBytes: opts.maxBodyBytes, log, now: Date.now, observations, random: Math.random, quota, cache, requests, load, logBodyBytes: opts.logBodyBytes ?? 0 };

  // Raise grpc-js's 4 MiB default: BUFFERED bodies up to Envoy's buffer limit arrive in one message.
  const maxMessage = opts.maxBodyBytes + MESSAGE_OVERHEAD_BYTES;
  const server = new grpc.Server({
    "grpc.max_receive_message_length": maxMessage,
    "grpc.max_send_message_length": maxMessage,
  });
  let draining = false;
  server.addService(loadExtProcService(), {
    Process: (call: ProcessCall) => {
      const phase = call.metadata.get(PHASE_METADATA_KEY)[0]?.toString() ?? "router";
      if (phase !== "router" && phase !== "upstream") {
        call.emit("error", { code: grpc.status.INVALID_ARGUMENT, details: `unknown ${PHASE_METADATA_KEY}` });
        return;
      }
      const processor: StreamProcessor = phase === "router" ? new RouterPhase(deps) : new UpstreamPhase(deps);
      serveStream(call, phase, processor, log, metrics.stream(phase));
    },
  });
  const health = new HealthImplementation({ "": "SERVING", [EXT_PROC_SERVICE_NAME]: "SERVING" });
  health.addToServer(server);

  if (await removeStaleSocket(opts.grpcListen)) log.warn({ grpc: opts.grpcListen }, "removed a stale socket file left by an earlier run");
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(opts.grpcListen, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  await openSocketToGroup(opts.grpcListen);

  let admin: http.Server | undefined;
  if (opts.adminListen !== undefined) {
    admin = await startAdminServer(opts.adminListen, { ready: () => !draining, policyHash: () => policy.current.hash, metrics: () => metrics.text(), policy: () => policy.current, log, token: opts.adminToken });
  }
  log.info({ grpc: opts.grpcListen, grpcPort, admin: opts.adminListen, policyHash: policy.current.hash }, "llm-router serving");

  return {
    grpcPort,
    adminPort: admin ? boundPort(admin) : undefined,
    policy,
    quota,
    cache,
    observations,
    exchange,
    metrics,
    async shutdown(graceMs: number) {
      draining = true;
      health.setStatus("", "NOT_SERVING");
      health.setStatus(EXT_PROC_SERVICE_NAME, "NOT_SERVING");
      policy.close();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log.warn("shutdown grace period over; cancelling open streams");
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await new Promise<void>((resolve) => (admin ? admin.close(() => resolve()) : resolve()));
      // Settlements of the last responses are written before the store goes.
      load.stop();
      await quota.idle();
      await cacheStore.close();
      await exchange?.stop();
      redis?.disconnect();
    },
  };
}
