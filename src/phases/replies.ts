import { GatewayError, renderError } from "../api/errors";
import type { ApiFormat } from "../api/operations";
import type { PhaseReply } from "../extproc/messages";

/** An error answered to the client by Envoy on our behalf, in the client's API format. */
export function errorReply(error: GatewayError, format: ApiFormat): PhaseReply {
  const r = renderError(error, format);
  return { kind: "immediate", status: r.status, headers: r.headers, body: r.body, details: `llm_router_${error.code}` };
}

/**
 * Runs a handler step, turning a GatewayError into the client error reply. Anything else is a bug:
 * it is logged by the stream loop, which ends only this stream.
 */
export function answering(format: () => ApiFormat, step: () => PhaseReply): PhaseReply;
export function answering(format: () => ApiFormat, step: () => PhaseReply | Promise<PhaseReply>): PhaseReply | Promise<PhaseReply>;
export function answering(format: () => ApiFormat, step: () => PhaseReply | Promise<PhaseReply>): PhaseReply | Promise<PhaseReply> {
  const asReply = (err: unknown): PhaseReply => {
    if (err instanceof GatewayError) return errorReply(err, format());
    throw err;
  };
  try {
    const reply = step();
    return reply instanceof Promise ? reply.catch(asReply) : reply;
  } catch (err) {
    return asReply(err);
  }
}
