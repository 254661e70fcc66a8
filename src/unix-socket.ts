// grpc-js binds unix: addresses with net.Server.listen(path), which fails with EADDRINUSE while the
// socket file exists, and nothing removes the file when a process dies without closing (OOM kill,
// SIGKILL). A sidecar restarted in the same Pod would then crash-loop on the file its previous run
// left in the shared emptyDir. So before binding, a socket file nobody answers on is removed; one
// that accepts a connection is live (another replica, or the cluster primary's shared listener) and
// is left for bind to report.
import { lstat, unlink, chmod } from "node:fs/promises";
import net from "node:net";

/** The filesystem path of a grpc-js `unix:` listen address (unix:/abs, unix:rel, unix:///abs); undefined for TCP. */
export function unixSocketPath(listen: string): string | undefined {
  if (!listen.startsWith("unix:")) return undefined;
  const rest = listen.slice("unix:".length);
  return rest.startsWith("//") ? rest.slice(2) : rest;
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Removes a stale socket file at a unix: listen address; anything that is not a socket is left alone. */
export async function removeStaleSocket(listen: string): Promise<boolean> {
  const path = unixSocketPath(listen);
  if (path === undefined) return false;
  const stat = await lstat(path).catch(() => undefined);
  if (stat === undefined || !stat.isSocket()) return false;
  if (await answers(path)) return false;
  await unlink(path).catch(() => undefined);
  return true;
}

/**
 * Lets the socket's group connect (0660): Envoy in a sidecar usually runs as another user, and the
 * two containers share a group (the Pod's fsGroup) rather than a uid.
 */
export async function openSocketToGroup(listen: string): Promise<void> {
  const path = unixSocketPath(listen);
  if (path !== undefined) await chmod(path, 0o660).catch(() => undefined);
}
