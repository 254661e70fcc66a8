// A local mock LLM provider: OpenAI (+ Azure OpenAI paths), Anthropic, Gemini and Bedrock shapes, deterministic
// text and usage, recorded requests, and scriptable failures (forced statuses, delayed headers,
// connections reset before any response, dropped streams).
// Used by end-to-end tests and by docker-compose (see main.ts for the CLI).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { messages } from "./anthropic";
import { bedrockConverse, bedrockInvoke } from "./bedrock";
import { type ErrorStyle, type MockHandler, errorBody, errorHeaders, sendError, sendJson } from "./context";
import { gemini } from "./gemini";
import { chatCompletions, completions, embeddings } from "./openai";
import { responses } from "./openai-responses";
import { SseWriter, type StreamCut } from "./sse";

export interface MockProviderOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Delay before every response (time to first byte). */
  latencyMs?: number;
  /** Exact number of content chunks (= words = output tokens) per reply. */
  streamChunks?: number;
  /** Probability (0..1) of answering 503 (529 on /v1/messages) instead of the real response. */
  failureRate?: number;
}

export interface RecordedRequest {
  method: string;
  /** Path including the query string. */
  path: string;
  /** Lowercase names; a header sent more than once is an array (nothing is merged or dropped). */
  headers: Record<string, string | string[]>;
  body: Buffer;
  /** The parsed JSON body, when the body is JSON. */
  json?: unknown;
  /** Date.now() when the request arrived. */
  time: number;
}

export interface ForcedFailureOptions {
  /** Response body; default: an error body in the shape of the endpoint's provider. */
  body?: string;
  headers?: Record<string, string>;
}

export interface MockProvider {
  readonly url: string;
  readonly port: number;
  /** Every request except GET /healthz, in arrival order. */
  readonly requests: RecordedRequest[];
  /** The next `count` requests are answered with `status` (e.g. 429, 503, 529). */
  failNext(count: number, status: number, opts?: ForcedFailureOptions): void;
  /**
   * The next `count` requests wait `ms` before their response headers (after being recorded). The
   * wait ends early, with no response, when the client goes away or the server closes.
   */
  delayNext(count: number, ms: number): void;
  /** The next `count` requests are read, recorded, and then their connection is destroyed unanswered. */
  resetNext(count: number): void;
  /** The next streaming response is cut (socket destroyed) after `afterChunks` SSE events. */
  dropNextStream(afterChunks: number): void;
  /** The next streaming response ends cleanly after `afterChunks` SSE events, without the rest (no terminal event). */
  truncateNextStream(afterChunks: number): void;
  /** Forgets recorded requests and queued failures, delays, resets and drops. */
  reset(): void;
  close(): Promise<void>;
}

interface Route {
  handler: MockHandler;
  style: ErrorStyle;
}

const OPENAI_ROUTES: Record<string, (deployment?: string) => MockHandler> = {
  "chat/completions": chatCompletions,
  completions,
  embeddings,
};

const AZURE_PATH = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|completions|embeddings)$/;
// https://ai.google.dev/api/generate-content ; https://ai.google.dev/api/embeddings
const GEMINI_PATH = /^\/v1(?:beta|alpha)?\/models\/([^/:]+):(generateContent|streamGenerateContent|batchEmbedContents)$/;
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html ;
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html
const BEDROCK_PATH = /^\/model\/([^/]+)\/(converse|converse-stream|invoke)$/;

/** The endpoint for a path; "unknown" for any other path; "azure-version" when api-version is missing. */
function findRoute(url: URL): Route | "unknown" | "azure-version" {
  const path = url.pathname;
  if (path === "/v1/messages") return { handler: messages(), style: "anthropic" };
  if (path === "/v1/responses") return { handler: responses(), style: "openai" };
  if (path.startsWith("/v1/")) {
    const factory = OPENAI_ROUTES[path.slice(4)];
    return factory === undefined ? "unknown" : { handler: factory(), style: "openai" };
  }
  const g = GEMINI_PATH.exec(path);
  if (g !== null) return { handler: gemini(g[2] as "generateContent" | "streamGenerateContent" | "batchEmbedContents", decodeURIComponent(g[1] ?? "")), style: "gemini" };
  const b = BEDROCK_PATH.exec(path);
  if (b !== null) {
    const modelId = decodeURIComponent(b[1] ?? "");
    return { handler: b[2] === "invoke" ? bedrockInvoke(modelId) : bedrockConverse(b[2] === "converse-stream", modelId), style: "bedrock" };
  }
  const azure = AZURE_PATH.exec(path);
  if (azure !== null) {
    // Azure answers requests without ?api-version= with 404 "Resource not found".
    if (!url.searchParams.has("api-version")) return "azure-version";
    const factory = OPENAI_ROUTES[azure[2] ?? ""];
    const deployment = decodeURIComponent(azure[1] ?? "");
    return factory === undefined ? "unknown" : { handler: factory(deployment), style: "openai" };
  }
  return "unknown";
}

function recordHeaders(req: IncomingMessage): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  // headersDistinct keeps repeated headers that req.headers would merge or drop (authorization!).
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    if (values === undefined) continue;
    out[name] = values.length === 1 ? (values[0] ?? "") : [...values];
  }
  return out;
}

function parseJson(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}

/** Resolves true after `ms`, or false as soon as `signal` aborts (the timer is not left behind). */
function waitUnlessAborted(ms: number, signal: AbortSignal): Promise<boolean> {
  return sleep(ms, true, { signal }).catch(() => false);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

interface QueuedFailure {
  status: number;
  opts: ForcedFailureOptions;
}

export async function startMockProvider(opts: MockProviderOptions = {}): Promise<MockProvider> {
  const latencyMs = opts.latencyMs ?? 0;
  const failureRate = opts.failureRate ?? 0;
  const requests: RecordedRequest[] = [];
  const failures: QueuedFailure[] = [];
  const drops: StreamCut[] = [];
  const delays: number[] = [];
  let resets = 0;
  let seq = 0;
  // Aborted by close(): pending delays end at once instead of holding the process open.
  const closing = new AbortController();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://mock");
    const body = await readBody(req);
    if (req.method === "GET" && url.pathname === "/healthz") return sendJson(res, 200, { status: "ok" });

    const json = parseJson(body);
    requests.push({
      method: req.method ?? "GET",
      path: url.pathname + url.search,
      headers: recordHeaders(req),
      body,
      ...(json === undefined ? {} : { json }),
      time: Date.now(),
    });
    if (resets > 0) {
      resets--;
      req.socket.destroy();
      return;
    }
    const delay = delays.shift();
    if (delay !== undefined) {
      const gone = new AbortController();
      const abort = (): void => gone.abort();
      res.on("close", abort);
      closing.signal.addEventListener("abort", abort, { once: true });
      const waited = await waitUnlessAborted(delay, gone.signal);
      res.off("close", abort);
      closing.signal.removeEventListener("abort", abort);
      if (!waited || res.destroyed) return;
    }
    if (latencyMs > 0) await sleep(latencyMs);

    const route = findRoute(url);
    const style: ErrorStyle = typeof route === "object" ? route.style : "openai";
    const forced = failures.shift();
    if (forced !== undefined) {
      const payload = forced.opts.body ?? JSON.stringify(errorBody(style, forced.status, `mock forced failure (${forced.status})`));
      res.writeHead(forced.status, { "content-type": "application/json", ...errorHeaders(style, forced.status), ...forced.opts.headers });
      res.end(payload);
      return;
    }
    if (route === "azure-version") return sendJson(res, 404, { error: { code: "404", message: "Resource not found" } });
    if (route === "unknown") return sendError(res, "openai", 404, `Unknown path: ${url.pathname}`);
    if (req.method !== "POST") return sendError(res, route.style, 405, `Method ${req.method ?? ""} not allowed`);
    if (failureRate > 0 && Math.random() < failureRate) {
      const status = route.style === "anthropic" ? 529 : 503;
      return sendError(res, route.style, status, "mock random failure");
    }
    await route.handler({
      method: req.method,
      url,
      body,
      bodyChars: body.toString("utf8").length,
      json,
      res,
      streamChunks: opts.streamChunks,
      seq: ++seq,
      openStream: (contentType?: string) => new SseWriter(res, drops.shift(), contentType),
    });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, "openai", 500, `mock provider error: ${String(err)}`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = opts.host === undefined || opts.host === "0.0.0.0" || opts.host === "::" ? "127.0.0.1" : opts.host;
  const urlHost = host.includes(":") ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    requests,
    failNext(count, status, failOpts = {}) {
      for (let i = 0; i < count; i++) failures.push({ status, opts: failOpts });
    },
    delayNext(count, ms) {
      for (let i = 0; i < count; i++) delays.push(ms);
    },
    resetNext(count) {
      resets += count;
    },
    dropNextStream(afterChunks) {
      drops.push({ after: afterChunks, how: "drop" });
    },
    truncateNextStream(afterChunks) {
      drops.push({ after: afterChunks, how: "end" });
    },
    reset() {
      requests.length = 0;
      failures.length = 0;
      drops.length = 0;
      delays.length = 0;
      resets = 0;
    },
    close() {
      closing.abort();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
