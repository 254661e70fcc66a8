// The admin port's /debug/* endpoints: /debug/explain (what `llm-router explain` prints, against the
// live policy) and /debug/log-level (read or change the logger's level without a restart). Every
// answer is JSON; bad input is a 4xx with {"error"}, never a crash.
import type http from "node:http";
import type { Logger } from "pino";
import { explainRequest, formatExplanation, type ExplainRequest } from "../cli/explain";
import type { CompiledPolicy } from "../policy/compile";
import { debugAccess } from "./debug-access";

export interface DebugState {
  /** The live policy /debug/explain plans against; without it the endpoint is 404. */
  policy?(): CompiledPolicy;
  /** The process logger /debug/log-level reads and sets; without it the endpoint is 404. */
  log?: Logger | undefined;
  /** With a token, /debug/* requires `Authorization: Bearer <token>` from every address. */
  token?: string | undefined;
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
/** Explain requests are samples: a megabyte is far above any useful one. */
export const MAX_DEBUG_BODY_BYTES = 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function isDebugPath(path: string): boolean {
  return path === "/debug" || path.startsWith("/debug/");
}

/** Answers one /debug/* request; never rejects. */
export async function handleDebug(req: http.IncomingMessage, res: http.ServerResponse, path: string, query: URLSearchParams, state: DebugState): Promise<void> {
  const access = debugAccess(req.socket.remoteAddress, req.headers.authorization, state.token);
  if (!access.allowed) {
    sendJson(res, access.status, { error: access.error }, access.status === 401 ? { "www-authenticate": 'Bearer realm="llm-router admin"' } : {});
    return;
  }
  const who = { remoteAddress: req.socket.remoteAddress, via: access.via };
  try {
    if (path === "/debug/explain" && state.policy !== undefined) {
      allowMethods(req, ["GET", "POST"]);
      const input = req.method === "GET" ? explainFromQuery(query) : explainFromBody(query, await readJson(req));
      // Pretty-printed: the same text the CLI prints.
      sendText(res, 200, formatExplanation(await explainRequest(state.policy(), input)));
    } else if (path === "/debug/log-level" && state.log !== undefined) {
      allowMethods(req, ["GET", "PUT", "POST"]);
      sendJson(res, 200, req.method === "GET" ? currentLevel(state.log, query) : setLevel(state.log, requestedLevel(query, await readJson(req)), who));
    } else {
      throw new HttpError(404, "not found");
    }
  } catch (err) {
    if (err instanceof HttpError) {
      sendJson(res, err.status, { error: err.message }, err.headers);
    } else {
      state.log?.error({ err: (err as Error)?.message ?? String(err), path }, "admin /debug request failed");
      sendJson(res, 500, { error: "internal error" });
    }
  }
}

function allowMethods(req: http.IncomingMessage, methods: readonly string[]): void {
  if (!methods.includes(req.method ?? "")) throw new HttpError(405, `use ${methods.join(" or ")}`, { allow: methods.join(", ") });
}

// ---- /debug/explain

const SAMPLE_MESSAGES = [{ role: "user", content: "hi" }];

/** GET ?path=&method=&model=&key=: a chat request for the model, or no body without one. */
function explainFromQuery(query: URLSearchParams): ExplainRequest {
  const q = queryFields(query, ["path", "method", "model", "key"]);
  return {
    method: checkMethod(q.method),
    path: checkPath(q.path),
    key: q.key,
    body: q.model === undefined ? undefined : Buffer.from(JSON.stringify({ model: q.model, messages: SAMPLE_MESSAGES })),
  };
}

/** POST {"method", "path", "headers": {name: value}, "body": <JSON value>, "key"}, all optional. */
function explainFromBody(query: URLSearchParams, json: unknown): ExplainRequest {
  queryFields(query, []);
  const o = jsonObject(json, ["method", "path", "headers", "body", "key"]);
  return {
    method: checkMethod(optionalString(o, "method")),
    path: checkPath(optionalString(o, "path")),
    key: optionalString(o, "key"),
    headers: o.headers === undefined ? undefined : headerPairs(o.headers),
    body: o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body)),
  };
}

function checkMethod(method: string | undefined): string | undefined {
  if (method !== undefined && !/^[A-Z]{1,20}$/.test(method)) throw new HttpError(400, `"method" must be an HTTP method in capitals, e.g. POST (got ${JSON.stringify(method)})`);
  return method;
}

function checkPath(path: string | undefined): string | undefined {
  if (path !== undefined && !/^\/[\x21-\x7e]*$/.test(path)) throw new HttpError(400, `"path" must start with / and hold no spaces or control characters (got ${JSON.stringify(path)})`);
  return path;
}

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

function headerPairs(value: unknown): Array<[string, string]> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new HttpError(400, '"headers" must be an object of name: value strings');
  return Object.entries(value).map(([name, v]): [string, string] => {
    // Pseudo-headers (":path") are not names here: "method" and "path" set those.
    if (!HEADER_NAME.test(name)) throw new HttpError(400, `header name ${JSON.stringify(name)} is not a valid HTTP header name`);
    if (typeof v !== "string" || /[\r\n\0]/.test(v)) throw new HttpError(400, `header ${JSON.stringify(name)} must have a string value without line breaks`);
    return [name, v];
  });
}

// ---- /debug/log-level

function currentLevel(log: Logger, query: URLSearchParams): { level: string } {
  // A GET never changes state, so ?level= on a GET is a mistake worth saying.
  if (query.has("level")) throw new HttpError(400, "use PUT (or POST) to change the level");
  queryFields(query, []);
  return { level: log.level };
}

function requestedLevel(query: URLSearchParams, json: unknown): string {
  const fromQuery = queryFields(query, ["level"]).level;
  const fromBody = json === undefined ? undefined : optionalString(jsonObject(json, ["level"]), "level");
  if (fromQuery !== undefined && fromBody !== undefined) throw new HttpError(400, "give the level in the query or in the body, not both");
  const level = fromQuery ?? fromBody;
  if (level === undefined || !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new HttpError(400, `level must be one of ${LOG_LEVELS.join(", ")}${level === undefined ? "" : ` (got ${JSON.stringify(level)})`}`);
  }
  return level;
}

function setLevel(log: Logger, level: string, who: { remoteAddress: string | undefined; via: string }): { level: string; previous: string } {
  const previous = log.level;
  // Recorded at warn while the more verbose of the two levels is in force, so the line is written
  // whether the change quiets the log or opens it up.
  const record = () => log.warn({ from: previous, to: level, ...who }, "log level changed through the admin port");
  const visibleBefore = log.isLevelEnabled("warn");
  if (visibleBefore) record();
  log.level = level;
  if (!visibleBefore) record();
  return { level, previous };
}

// ---- input

function queryFields<K extends string>(query: URLSearchParams, allowed: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const name of new Set(query.keys())) {
    if (!(allowed as readonly string[]).includes(name)) {
      throw new HttpError(400, `unknown query parameter ${JSON.stringify(name)}${allowed.length > 0 ? ` (allowed: ${allowed.join(", ")})` : ""}`);
    }
    const values = query.getAll(name);
    if (values.length > 1) throw new HttpError(400, `query parameter ${JSON.stringify(name)} given more than once`);
    out[name as K] = values[0];
  }
  return out;
}

function jsonObject(value: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new HttpError(400, `expected a JSON object with ${allowed.join(", ")}`);
  for (const name of Object.keys(value)) {
    if (!allowed.includes(name)) throw new HttpError(400, `unknown field ${JSON.stringify(name)} (allowed: ${allowed.join(", ")})`);
  }
  return value as Record<string, unknown>;
}

function optionalString(o: Record<string, unknown>, name: string): string | undefined {
  const v = o[name];
  if (v !== undefined && typeof v !== "string") throw new HttpError(400, `"${name}" must be a string`);
  return v;
}

/** The body as JSON; undefined when there is none. */
async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const text = (await readBody(req, MAX_DEBUG_BODY_BYTES)).toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(400, `the body is not valid JSON: ${(err as Error).message}`);
  }
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () => new HttpError(413, `the body is larger than ${limit} bytes`);
  if (Number(req.headers["content-length"] ?? 0) > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      if (size > limit) return;
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      // Answer now; the rest is still read and dropped, so a client that is still sending gets the
      // answer instead of a reset connection.
      chunks = [];
      reject(tooLarge());
    });
    req.on("end", () => {
      if (size <= limit) resolve(Buffer.concat(chunks));
    });
    req.on("error", reject);
    req.on("close", () => {
      if (!req.complete) reject(new HttpError(400, "the request ended before its body"));
    });
  });
}

// ---- output

function sendJson(res: http.ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  sendText(res, status, JSON.stringify(body), headers);
}

function sendText(res: http.ServerResponse, status: number, json: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  // Explanations and levels describe this moment; no cache should keep them.
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers }).end(`${json}\n`);
}
