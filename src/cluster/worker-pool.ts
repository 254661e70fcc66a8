// The primary's workers: N slots, each with one worker process at a time. Forks them, tracks which
// serve (for /readyz and /metrics), replaces one that dies after a backoff (restart-backoff.ts), and
// drains them all on stop. The gRPC address is shared through node:cluster: the primary holds the
// listening socket and hands each new connection to the next worker in turn (round-robin, Node's
// default on Linux), for TCP and Unix sockets alike.
import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import type { ClusterMetrics } from "./cluster-metrics";
import { isFromWorker, type FromWorker, type ToWorker } from "./messages";
import { afterCrash, CRASH_WINDOW_MS } from "./restart-backoff";

/** A worker that outlives its own grace period by this much is killed. */
const KILL_AFTER_GRACE_MS = 10_000;

type Phase = "starting" | "ready" | "draining";

interface Slot {
  index: number;
  worker: Worker | undefined;
  phase: Phase;
  /** Unexpected exits (ms timestamps) within the crash window. */
  exits: number[];
  restart: NodeJS.Timeout | undefined;
}

export interface PoolOptions {
  size: number;
  /** The CLI entry point and its arguments, as the workers run them. */
  exec: string;
  args: string[];
  /** The workers' environment (their marker included). */
  env: NodeJS.ProcessEnv;
  log: Logger;
  metrics: ClusterMetrics;
  /** The log level now (the admin port may have changed it), for a worker that starts. */
  logLevel(): string;
  /** A slot crash-loops: the primary should stop and exit non-zero. */
  onCrashLoop(): void;
}

export class WorkerPool {
  readonly #slots: Slot[];
  readonly #byWorker = new Map<number, Slot>();
  #stopping = false;
  #started = false;
  #resolveStart: (grpcPort: number) => void = () => undefined;
  #rejectStart: (err: Error) => void = () => undefined;
  #allExited: () => void = () => undefined;

  constructor(private readonly opts: PoolOptions) {
    this.#slots = Array.from({ length: opts.size }, (_, index) => ({ index, worker: undefined, phase: "starting", exits: [], restart: undefined }));
  }

  /** Forks every worker; resolves with the gRPC port once all serve, rejects if one exits before. */
  start(): Promise<number> {
    cluster.setupPrimary({ exec: this.opts.exec, args: this.opts.args });
    cluster.on("message", (worker, message: unknown) => this.#message(worker, message));
    cluster.on("exit", (worker, code, signal) => this.#exited(worker, code, signal));
    const started = new Promise<number>((resolve, reject) => {
      this.#resolveStart = resolve;
      this.#rejectStart = reject;
    });
    for (const slot of this.#slots) this.#fork(slot);
    return started;
  }

  /** Every worker serves and none drains. */
  ready(): boolean {
    return !this.#stopping && this.#slots.every((s) => s.worker !== undefined && s.phase === "ready");
  }

  counts(): { ready: number; total: number } {
    return { ready: this.#slots.filter((s) => s.worker !== undefined && s.phase === "ready").length, total: this.#slots.length };
  }

  /** The workers that have streams to count: serving or draining. */
  serving(): Worker[] {
    return this.#slots.flatMap((s) => (s.worker !== undefined && s.phase !== "starting" ? [s.worker] : []));
  }

  /** To every worker that serves (one that starts later reads the file and the level itself). */
  broadcast(message: ToWorker): void {
    for (const s of this.#slots) if (s.worker !== undefined && s.phase === "ready") send(s.worker, message);
  }

  /**
   * Drains every worker (each finishes its open streams within its grace period) and resolves once
   * all have exited: true when one had to be killed.
   */
  stop(graceMs: number): Promise<boolean> {
    this.#stopping = true;
    let killed = false;
    const live = () => this.#slots.flatMap((s) => (s.worker === undefined ? [] : [s.worker]));
    for (const s of this.#slots) clearTimeout(s.restart);
    if (live().length === 0) return Promise.resolve(false);
    const deadline = setTimeout(() => {
      for (const w of live()) {
        this.opts.log.error({ worker: w.id, pid: w.process.pid, graceMs }, "worker still running after its grace period; killing it");
        killed = true;
        w.process.kill("SIGKILL");
      }
    }, graceMs + KILL_AFTER_GRACE_MS);
    for (const w of live()) send(w, { llmr: "drain" }, () => w.process.kill("SIGTERM"));
    return new Promise((resolve) => {
      this.#allExited = () => {
        clearTimeout(deadline);
        resolve(killed);
      };
    });
  }

  #fork(slot: Slot): void {
    slot.restart = undefined;
    slot.phase = "starting";
    const worker = cluster.fork(this.opts.env);
    slot.worker = worker;
    this.#byWorker.set(worker.id, slot);
  }

  #message(worker: Worker, message: unknown): void {
    this.opts.metrics.received(message);
    const slot = this.#byWorker.get(worker.id);
    if (slot === undefined || !isFromWorker(message)) return;
    const m: FromWorker = message;
    if (m.llmr === "ready") {
      slot.phase = "ready";
      // A drain sent while it was still loading found no listener yet.
      if (this.#stopping) send(worker, { llmr: "drain" });
      send(worker, { llmr: "log-level", level: this.opts.logLevel() });
      if (this.#started) {
        this.opts.log.info({ worker: worker.id, pid: worker.process.pid, slot: slot.index }, "worker serving");
      } else if (this.#slots.every((s) => s.phase === "ready")) {
        this.#started = true;
        this.#resolveStart(m.grpcPort);
      }
    } else if (m.llmr === "draining") {
      slot.phase = "draining";
    }
  }

  #exited(worker: Worker, code: number | null, signal: string | null): void {
    this.opts.metrics.exited(worker);
    const slot = this.#byWorker.get(worker.id);
    if (slot === undefined) return;
    this.#byWorker.delete(worker.id);
    slot.worker = undefined;
    const { log } = this.opts;
    const who = { worker: worker.id, pid: worker.process.pid, slot: slot.index, code, signal };
    if (this.#stopping) {
      log.info(who, "worker exited");
      if (this.#slots.every((s) => s.worker === undefined)) this.#allExited();
      return;
    }
    if (!this.#started) {
      this.#rejectStart(new Error(`worker ${worker.id} exited (${signal ?? `code ${code}`}) before it was serving`));
      return;
    }
    slot.phase = "starting";
    const next = afterCrash(slot.exits, Date.now());
    if ("giveUp" in next) {
      log.error({ ...who, exitsInWindow: next.crashesInWindow, windowMs: CRASH_WINDOW_MS }, "worker crash loop: stopping the service");
      this.opts.onCrashLoop();
      return;
    }
    log.error({ ...who, restartInMs: next.restartInMs, exitsInWindow: next.crashesInWindow }, "worker exited unexpectedly; restarting it");
    slot.restart = setTimeout(() => this.#fork(slot), next.restartInMs);
  }
}

/** Sends unless the worker's channel is closed (then `closed` runs instead of an "error" event). */
function send(worker: Worker, message: ToWorker, closed: () => void = () => undefined): void {
  if (!worker.isConnected()) {
    closed();
    return;
  }
  worker.send(message, (err: Error | null) => {
    if (err) closed();
  });
}
