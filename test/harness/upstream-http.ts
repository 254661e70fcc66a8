// The upstream codec: one HTTP/1.1 request to an endpoint with node:http, on a fresh connection
// (no pooling, so nothing keeps the test process alive).
import { request } from "node:http";
import { HeaderMap } from "./header-map";

export interface UpstreamTarget {
  host: string;
  port: number;
  /** Unix socket path instead of host/port. */
  socketPath?: string;
}

export interface UpstreamRequest {
  method: string;
  path: string;
  /** Goes out as the Host header. */
  authority: string;
  /** Regular headers only (no pseudo-headers). */
  headers: HeaderMap;
  body: Buffer;
}

export type UpstreamOutcome =
  | { kind: "response"; headers: HeaderMap; chunks: Buffer[]; complete: boolean; chunked: boolean }
  | { kind: "connect_failure"; error: string }
  | { kind: "reset"; error: string };

/** Connection-specific headers an HTTP/1.1 proxy never forwards. */
export const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];
const CONNECT_ERRORS = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ENOENT"]);
const SAFETY_TIMEOUT_MS = 60_000;

/** The headers that go on the wire: regular headers, Host, and a content-length that is right. */
export function wireHeaders(req: UpstreamRequest): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of req.headers.entries()) {
    if (name.startsWith(":") || name === "host" || name === "content-length" || HOP_BY_HOP.includes(name)) continue;
    const prev = headers[name];
    headers[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  headers["host"] = req.authority;
  if (req.body.length > 0 || req.headers.has("content-length") || ["POST", "PUT", "PATCH"].includes(req.method)) {
    headers["content-length"] = String(req.body.length);
  }
  return headers;
}

export interface SendOptions {
  /** Aborting destroys the request (Envoy resetting the upstream stream). */
  signal?: AbortSignal;
  /** Called when the response headers arrive (per-try timers stop there). */
  onHeaders?: () => void;
}

export function sendUpstream(target: UpstreamTarget, req: UpstreamRequest, opts: SendOptions = {}): Promise<UpstreamOutcome> {
  const headers = wireHeaders(req);
  return new Promise((resolve) => {
    let settled = false;
    const done = (outcome: UpstreamOutcome): void => {
      if (!settled) {
        settled = true;
        resolve(outcome);
      }
    };
    const r = request(
      {
        ...(target.socketPath !== undefined ? { socketPath: target.socketPath } : { host: target.host, port: target.port }),
        method: req.method,
        path: req.path,
        headers,
        agent: false,
        timeout: SAFETY_TIMEOUT_MS,
      },
      (res) => {
        opts.onHeaders?.();
        const map = new HeaderMap();
        map.add(":status", String(res.statusCode ?? 0));
        const raw = res.rawHeaders;
        for (let i = 0; i + 1 < raw.length; i += 2) {
          const name = (raw[i] ?? "").toLowerCase();
          if (!HOP_BY_HOP.includes(name)) map.add(name, raw[i + 1] ?? "");
        }
        const chunks: Buffer[] = [];
        const chunked = res.headers["content-length"] === undefined;
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => done({ kind: "response", headers: map, chunks, complete: true, chunked }));
        // A connection that dies mid-body: the client gets what arrived, then a reset.
        res.on("close", () => done({ kind: "response", headers: map, chunks, complete: res.complete, chunked }));
        res.on("error", () => undefined);
      },
    );
    r.on("timeout", () => r.destroy(new Error("harness safety timeout")));
    const signal = opts.signal;
    if (signal !== undefined) {
      const abort = (): void => {
        done({ kind: "reset", error: "aborted by Envoy (local reset)" });
        r.destroy();
      };
      if (signal.aborted) abort();
      else signal.addEventListener("abort", abort, { once: true });
      r.on("close", () => signal.removeEventListener("abort", abort));
    }
    r.on("error", (err: NodeJS.ErrnoException) => {
      const code = err.code ?? "";
      done(CONNECT_ERRORS.has(code) ? { kind: "connect_failure", error: `${code} ${err.message}` } : { kind: "reset", error: `${code} ${err.message}`.trim() });
    });
    r.end(req.body);
  });
}
