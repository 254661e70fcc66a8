// Envoy local replies (sendLocalReply): a response Envoy makes up itself instead of proxying one.
import type { HeaderMutationMsg } from "./ext-proc-types";
import { HeaderMap } from "./header-map";

export interface LocalReply {
  status: number;
  body: Buffer;
  /** Envoy's response code details (what %RESPONSE_CODE_DETAILS% would log). */
  details: string;
  /** ImmediateResponse.headers, applied before the default content-type. */
  headerMutation?: HeaderMutationMsg;
  /** Headers the router's modify_headers callback sets (x-envoy-attempt-count). */
  routerHeaders?: ReadonlyArray<readonly [string, string]>;
}

export function localReply(status: number, body: string, details: string): LocalReply {
  return { status, body: Buffer.from(body), details };
}

/**
 * Response headers of a local reply: :status, then the caller's header changes, then
 * content-length and (only when absent) content-type text/plain, as Utility::sendLocalReply does.
 */
export function localReplyHeaders(reply: LocalReply, mutate?: (headers: HeaderMap) => void): HeaderMap {
  const headers = new HeaderMap();
  headers.add(":status", String(reply.status));
  mutate?.(headers);
  for (const [name, value] of reply.routerHeaders ?? []) headers.set(name, value);
  headers.set("content-length", String(reply.body.length));
  if (reply.body.length > 0 && !headers.has("content-type")) headers.set("content-type", "text/plain");
  return headers;
}
