// The primary of `serve --workers N`: forks the workers (worker-pool.ts), which serve ext_proc on
// the shared gRPC address, and serves the admin port once for all of them: /healthz (the primary is
// alive), /readyz (every worker serves, none drains), /metrics (every worker's, added up:
// cluster-metrics.ts) and /debug/*. Signals: SIGTERM/SIGINT drain every worker, then exit 0;
// SIGHUP reloads the policy in every worker.
//
// /debug/* is answered here, from the primary's own copy of the policy, not relayed to a worker:
// /debug/explain plans as a replica with no observations (README "Operator endpoints"), so any
// process that compiled the same file answers the same; the primary compiles it as the workers do
// (same file, same requirements, reloaded on the same watch and SIGHUP), and /readyz reports that
// hash. /debug/log-level sets the primary's level, which is passed on to every worker.
import type http from "node:http";
import path from "node:path";
import { boundPort, startAdminServer } from "../admin/admin-server";
import type { ServeConfig } from "../cli/serve";
import { createLogger } from "../log";
import { PolicyStore } from "../policy/policy-store";
import { ClusterMetrics } from "./cluster-metrics";
import { clusterRequirements } from "./quota-needs-redis";
import { WORKER_ENV } from "./worker";
import { WorkerPool } from "./worker-pool";

/** The CLI entry point the workers run (this file is dist/src/cluster/primary.js). */
const CLI_MAIN = path.resolve(__dirname, "../cli/main.js");

export async function runPrimary(config: ServeConfig, argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const log = createLogger(config.logLevel);
  const { service } = config;
  // Throws PolicyError (start refused) before any worker is forked.
  const policy = PolicyStore.open(service.policyFile, log, env, clusterRequirements(config));
  const metrics = new ClusterMetrics();
  let stopping: Promise<void> | undefined;
  const pool = new WorkerPool({
    size: config.workers,
    exec: CLI_MAIN,
    args: ["serve", ...argv],
    env: { ...env, [WORKER_ENV]: "1" },
    log,
    metrics,
    logLevel: () => log.level,
    onCrashLoop: () => stop("worker crash loop", 1),
  });

  let admin: http.Server | undefined;
  if (service.adminListen !== undefined) {
    admin = await startAdminServer(service.adminListen, {
      ready: () => stopping === undefined && pool.ready(),
      readyDetail: () => ({ workers: pool.counts() }),
      policyHash: () => policy.current.hash,
      metrics: () => metrics.text(pool.serving()),
      policy: () => policy.current,
      log,
      token: service.adminToken,
    });
  }
  if (service.watchPolicy) policy.watch();
  log.on("level-change", (level) => pool.broadcast({ llmr: "log-level", level }));

  const stop = (why: string, exitCode: number) => {
    if (stopping !== undefined) return;
    log.info({ why, graceMs: config.graceMs }, "draining every worker");
    stopping = pool.stop(config.graceMs).then(async (killed) => {
      await new Promise<void>((resolve) => (admin ? admin.close(() => resolve()) : resolve()));
      policy.close();
      log.info({ exitCode: killed ? 1 : exitCode }, "stopped");
      log.flush?.();
      process.exit(killed ? 1 : exitCode);
    });
  };
  process.on("SIGTERM", () => stop("SIGTERM", 0));
  process.on("SIGINT", () => stop("SIGINT", 0));
  process.on("SIGHUP", () => {
    void policy.reload();
    pool.broadcast({ llmr: "reload" });
  });

  let grpcPort: number;
  try {
    grpcPort = await pool.start();
  } catch (err) {
    log.error({ err: (err as Error).message }, "a worker failed to start; stopping");
    stop("a worker failed to start", 1);
    return;
  }
  log.info(
    { workers: config.workers, grpc: service.grpcListen, grpcPort, admin: service.adminListen, adminPort: admin ? boundPort(admin) : undefined, policyHash: policy.current.hash },
    "all workers serving",
  );
}
