// The HTTP connection manager's own work before and after the filter chain: HTTP/1.1 codec limits,
// the request header map Envoy builds (pseudo-headers, no `host`), header sanitising, request ids,
// and the response headers it adds.
import { randomUUID } from "node:crypto";
import type { HcmModel } from "./bootstrap";
import { HeaderMap, type HeaderRecord } from "./header-map";
import { type LocalReply, localReply } from "./local-reply";
import { HOP_BY_HOP } from "./upstream-http";

export interface HarnessRequest {
  method?: string;
  /** Path including the query string. */
  path: string;
  headers?: HeaderRecord;
  body?: Buffer | string;
}

export type PreparedRequest = { ok: true; headers: HeaderMap; body: Buffer } | { ok: false; reply: LocalReply };

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);

export function prepareRequest(hcm: HcmModel, req: HarnessRequest): PreparedRequest {
  const body = typeof req.body === "string" ? Buffer.from(req.body) : (req.body ?? Buffer.alloc(0));
  const method = (req.method ?? "GET").toUpperCase();
  const client = HeaderMap.fromRecord(req.headers ?? {});

  // Codec limits (HTTP/1.1): too many or too large headers -> 431.
  if (client.size > hcm.maxHeadersCount) return { ok: false, reply: localReply(431, "", "http1.too_many_headers") };
  const size = client.byteSize() + method.length + req.path.length;
  if (size > hcm.maxRequestHeadersKb * 1024) return { ok: false, reply: localReply(431, "", "http1.headers_too_large") };

  const headers = new HeaderMap();
  // Envoy's HTTP/1.1 codec turns Host into :authority: the map has no `host` header.
  headers.add(":authority", client.get("host") ?? "localhost");
  headers.add(":path", req.path);
  headers.add(":method", method);
  headers.add(":scheme", "http");
  for (const [name, value] of client.entries()) {
    if (name === "host" || HOP_BY_HOP.includes(name)) continue;
    if (name.includes("_")) {
      if (hcm.headersWithUnderscoresAction === "REJECT_REQUEST") {
        return { ok: false, reply: localReply(400, "", "http1.unexpected_underscore") };
      }
      if (hcm.headersWithUnderscoresAction === "DROP_HEADER") continue;
    }
    // External clients may not set Envoy-internal headers.
    if (name.startsWith("x-envoy-")) continue;
    headers.add(name, value);
  }
  const chunked = (client.get("transfer-encoding") ?? "").toLowerCase().includes("chunked");
  if (!chunked && (body.length > 0 || BODY_METHODS.has(method) || client.has("content-length"))) {
    // The codec frames the body by content-length; the harness always knows the real length.
    headers.set("content-length", String(body.length));
  }
  if (!headers.has("x-forwarded-proto")) headers.add("x-forwarded-proto", "http");
  if (hcm.generateRequestId && !headers.has("x-request-id")) headers.add("x-request-id", randomUUID());
  return { ok: true, headers, body };
}

/** Response headers the HCM sets on every response, proxied or local. */
export function finalizeResponseHeaders(hcm: HcmModel, response: HeaderMap, requestHeaders: HeaderMap | undefined): void {
  response.set("server", hcm.serverName);
  const requestId = requestHeaders?.get("x-request-id");
  if (hcm.alwaysSetRequestIdInResponse && requestId !== undefined) response.set("x-request-id", requestId);
}
