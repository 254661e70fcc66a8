// One worker of `serve --workers N`: what a single `serve` process does (tokenizer preload, the
// ext_proc server on the shared gRPC address, the policy file watch, Redis), without the admin
// port, which the primary serves for all workers. The primary drives it over the cluster IPC
// channel (messages.ts): metrics, log level, reload, drain.
import cluster from "node:cluster";
import type { Logger } from "pino";
import { UsageError } from "../cli/options";
import type { ServeConfig } from "../cli/serve";
import { createLogger } from "../log";
import { PolicyError } from "../policy/policy-error";
import type { RunningService, ServiceOptions } from "../service";
import { isToWorker, type FromWorker, type ToWorker } from "./messages";
import { clusterRequirements } from "./quota-needs-redis";

/**
 * Set by the primary in its workers' environment. Being a cluster worker is not enough: pm2's
 * cluster mode, for one, runs an app as a cluster worker of its own primary, which speaks no
 * llm-router messages.
 */
export const WORKER_ENV = "LLM_ROUTER_CLUSTER_WORKER";

export function isClusterWorker(env: NodeJS.ProcessEnv): boolean {
  return cluster.isWorker && env[WORKER_ENV] === "1";
}

/** What `serve` runs in every serving process (src/cli/serve.ts startServing). */
export type StartServing = (config: ServeConfig, log: Logger, overrides: Partial<ServiceOptions>) => Promise<RunningService>;

export async function runWorker(config: ServeConfig, startServing: StartServing): Promise<void> {
  const id = cluster.worker?.id;
  // Every line says which process wrote it: the workers share stdout.
  const log = createLogger(config.logLevel).child({ worker: id, pid: process.pid });
  const send = (m: FromWorker) => {
    if (process.connected) process.send?.(m, undefined, {}, () => undefined);
  };
  let service: RunningService | undefined;
  let draining = false;
  const drain = (why: string) => {
    if (draining) return;
    draining = true;
    // Still starting: nothing is open yet.
    if (service === undefined) process.exit(0);
    send({ llmr: "draining" });
    log.info({ why, graceMs: config.graceMs }, "draining: no new streams, waiting for open ones");
    void service.shutdown(config.graceMs).then(() => {
      log.info("stopped");
      log.flush?.();
      process.exit(0);
    });
  };
  // Before starting: a signal to the whole process group (Ctrl-C, a hangup) may come meanwhile,
  // and SIGHUP's default action would end the process.
  process.on("SIGHUP", () => void service?.policy.reload());
  process.on("SIGTERM", () => drain("SIGTERM"));
  process.on("SIGINT", () => drain("SIGINT"));
  // The primary is gone (killed): nobody would restart, scrape or stop this worker.
  process.on("disconnect", () => drain("the primary went away"));
  process.on("message", (raw: unknown) => {
    if (isToWorker(raw)) answer(raw, service, log, send, drain).catch((err: Error) => log.error({ err: err.message, message: raw.llmr }, "worker could not answer the primary"));
  });

  try {
    service = await startServing(config, log, { adminListen: undefined, policyRequirements: clusterRequirements(config), processesPerReplica: config.workers });
  } catch (err) {
    // The primary sees the exit before the worker was ready and stops; the reason goes to stderr
    // as `serve` writes it.
    const known = err instanceof PolicyError || err instanceof UsageError;
    process.stderr.write(`${known ? err.message : `llm-router: worker ${id}: ${(err as Error)?.stack ?? String(err)}`}\n`);
    log.flush?.();
    process.exit(1);
  }
  send({ llmr: "ready", grpcPort: service.grpcPort, policyHash: service.policy.current.hash });
}

async function answer(m: ToWorker, service: RunningService | undefined, log: Logger, send: (m: FromWorker) => void, drain: (why: string) => void): Promise<void> {
  switch (m.llmr) {
    case "metrics":
      send({ llmr: "metrics", id: m.id, metrics: service === undefined ? [] : await service.metrics.registry.getMetricsAsJSON() });
      break;
    case "log-level":
      log.level = m.level;
      break;
    case "reload":
      await service?.policy.reload();
      break;
    case "drain":
      drain("the primary is stopping");
      break;
  }
}
