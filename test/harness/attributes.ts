// ext_proc request_attributes / response_attributes: Envoy evaluates each configured CEL expression
// and sends the results in ProcessingRequest.attributes["envoy.filters.http.ext_proc"], a Struct
// keyed by the expression text. Only the expressions below are modelled; any other expression is
// omitted (as Envoy omits attributes that do not evaluate).
// https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes
import type { StructMsg } from "./ext-proc-types";
import type { HeaderMap } from "./header-map";
import { toStruct } from "./struct";

export interface AttributeFacts {
  requestHeaders: HeaderMap;
  responseHeaders?: HeaderMap;
  /** The matched route's name ("" when unnamed); undefined when no route matched. */
  routeName?: string;
  /** The routed cluster (downstream) or this attempt's cluster (upstream), when known. */
  clusterName?: string;
  /** filter_metadata of the chosen endpoint (upstream filters only). */
  upstreamHostMetadata?: Record<string, unknown>;
}

const HOST_METADATA = /^xds\.upstream_host_metadata\.filter_metadata\[(['"])(.+?)\1\](?:\[(['"])(.+?)\3\])?$/;

function evaluate(expr: string, facts: AttributeFacts): unknown {
  const h = facts.requestHeaders;
  const path = h.get(":path");
  switch (expr) {
    case "request.path":
      return path;
    case "request.url_path":
      return path?.split("?")[0];
    case "request.query":
      return path === undefined ? undefined : (path.split("?")[1] ?? "");
    case "request.method":
      return h.get(":method");
    case "request.host":
      return h.get(":authority");
    case "request.scheme":
      return h.get(":scheme");
    case "request.id":
      return h.get("x-request-id");
    case "request.protocol":
      return "HTTP/1.1";
    case "request.headers": {
      const out: Record<string, string> = {};
      for (const [k] of h.entries()) out[k] = h.getJoined(k) ?? "";
      return out;
    }
    case "response.code": {
      const status = facts.responseHeaders?.get(":status");
      return status === undefined ? undefined : Number(status);
    }
    case "xds.cluster_name":
      return facts.clusterName;
    case "xds.route_name":
      return facts.routeName;
  }
  const m = HOST_METADATA.exec(expr);
  if (m !== null && facts.upstreamHostMetadata !== undefined) {
    const ns = facts.upstreamHostMetadata[m[2] ?? ""];
    if (m[4] === undefined) return ns;
    return typeof ns === "object" && ns !== null ? (ns as Record<string, unknown>)[m[4]] : undefined;
  }
  return undefined;
}

/** The Struct Envoy sends for these expressions; undefined values are left out. */
export function evaluateAttributes(expressions: readonly string[], facts: AttributeFacts): StructMsg {
  const values: Record<string, unknown> = {};
  for (const expr of expressions) {
    const value = evaluate(expr, facts);
    if (value !== undefined) values[expr] = value;
  }
  return toStruct(values);
}
