// Messages between the bench driver (bench/run.ts) and a server child (bench/server-*.ts), and the
// limits both servers share so that the only difference between them is the work the service does.

/** The service's maxBodyBytes (the CLI default). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;
/** grpc-js message limit of both servers: what src/service.ts derives from maxBodyBytes. */
export const SERVER_MAX_MESSAGE_BYTES = MAX_BODY_BYTES + 1024 * 1024;
/** grpc-js message limit of the bench client. */
export const CLIENT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** `memory` with `gc`: a full GC first (the child needs --expose-gc), so heapUsed is live data. */
export type ToServer = { type: "cpu"; id: number } | { type: "memory"; id: number; gc: boolean } | { type: "stop" };

export type FromServer =
  | { type: "ready"; port: number }
  | { type: "cpu"; id: number; user: number; system: number }
  | { type: "memory"; id: number; rss: number; heapUsed: number; heapTotal: number; external: number; gcRan: boolean }
  | { type: "failed"; message: string };

/**
 * Wires a server child: answers CPU and memory queries, stops on request, exits when the driver
 * goes away. `otherCpuUs`: CPU of processes serving with it (a cluster's workers), added to its own
 * user time.
 */
export function serveIpc(stop: () => Promise<void>, otherCpuUs: () => number = () => 0): void {
  const send = (m: FromServer) => process.send?.(m);
  process.on("message", (raw: unknown) => {
    const m = raw as ToServer;
    if (m.type === "cpu") {
      const u = process.cpuUsage();
      send({ type: "cpu", id: m.id, user: u.user + otherCpuUs(), system: u.system });
    } else if (m.type === "memory") {
      const gc = m.gc ? globalThis.gc : undefined;
      gc?.();
      const u = process.memoryUsage();
      send({ type: "memory", id: m.id, rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, gcRan: gc !== undefined });
    } else if (m.type === "stop") {
      void stop().finally(() => process.exit(0));
    }
  });
  process.on("disconnect", () => process.exit(0));
}

export function reportReady(port: number): void {
  process.send?.({ type: "ready", port } satisfies FromServer);
}

export function reportFailure(err: unknown): void {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  if (process.send) process.send({ type: "failed", message } satisfies FromServer, () => process.exit(1));
  else {
    console.error(message);
    process.exit(1);
  }
}
