// HTTP admin endpoint: /healthz (process alive), /readyz (serving, not draining), /metrics
// (Prometheus text exposition), and the operator endpoints under /debug/ (debug-endpoints.ts), which
// answer only loopback callers or holders of the admin token.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { handleDebug, isDebugPath, type DebugState } from "./debug-endpoints";

export interface AdminState extends DebugState {
  ready(): boolean;
  policyHash(): string;
  metrics?(): Promise<{ contentType: string; body: string }>;
  /** More of /readyz's answer (`serve --workers N`: how many of them serve). */
  readyDetail?(): Record<string, unknown>;
}

export function startAdminServer(listen: string, state: AdminState): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const [url = "/", query = ""] = (req.url ?? "/").split(/\?(.*)/s);
    if (isDebugPath(url)) {
      void handleDebug(req, res, url, new URLSearchParams(query), state);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (url === "/metrics" && state.metrics !== undefined) {
      state.metrics().then(
        ({ contentType, body }) => res.writeHead(200, { "content-type": contentType }).end(req.method === "HEAD" ? undefined : body),
        () => res.writeHead(500, { "content-type": "text/plain" }).end("metrics unavailable\n"),
      );
    } else if (url === "/readyz") {
      const ready = state.ready();
      res.writeHead(ready ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify({ ready, policyHash: state.policyHash(), ...state.readyDetail?.() }) + "\n");
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  });
  const { host, port } = parseHostPort(listen);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

export function parseHostPort(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(":");
  if (i === -1) throw new Error(`expected host:port, got "${listen}"`);
  const host = listen.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(listen.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port in "${listen}"`);
  return { host: host === "" ? "0.0.0.0" : host, port };
}

export function boundPort(server: http.Server): number {
  return (server.address() as AddressInfo).port;
}
