// Reads an Envoy bootstrap YAML (anchors and merge keys resolved) into the typed model the
// harness runs on. Only what the harness models is read; anything that would change behaviour in a
// way the harness cannot follow is rejected with the path of the offending key.
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { type HttpFilterModel, parseHttpFilter } from "./bootstrap-filters";
import { type ClusterModel, DEFAULT_BUFFER_LIMIT, parseCluster } from "./bootstrap-clusters";
import { type RouteConfigModel, parseRouteConfig } from "./bootstrap-routes";
import { BootstrapError, arr, obj, optBool, optNum, optObj, optStr, rejectUnmodelled } from "./yaml-access";

export type { ClusterModel, EndpointModel, TransportSocketModel } from "./bootstrap-clusters";

export type UnderscoreAction = "ALLOW" | "REJECT_REQUEST" | "DROP_HEADER";

export interface HcmModel {
  generateRequestId: boolean;
  alwaysSetRequestIdInResponse: boolean;
  maxRequestHeadersKb: number;
  maxHeadersCount: number;
  headersWithUnderscoresAction: UnderscoreAction;
  serverName: string;
  routeConfig: RouteConfigModel;
  httpFilters: HttpFilterModel[];
}

export interface ListenerModel {
  name: string;
  bufferLimitBytes: number;
  hcm: HcmModel;
}

export interface Bootstrap {
  listener: ListenerModel;
  clusters: ReadonlyMap<string, ClusterModel>;
}

const HCM_NAME = "envoy.filters.network.http_connection_manager";

function parseHcm(raw: unknown, path: string): HcmModel {
  const h = obj(raw, path);
  rejectUnmodelled(h, ["rds", "scoped_routes", "internal_address_config", "request_id_extension"], path);
  const common = optObj(h["common_http_protocol_options"], `${path}.common_http_protocol_options`) ?? {};
  const underscores = optStr(common["headers_with_underscores_action"], `${path}.common_http_protocol_options.headers_with_underscores_action`) ?? "ALLOW";
  if (underscores !== "ALLOW" && underscores !== "REJECT_REQUEST" && underscores !== "DROP_HEADER") {
    throw new BootstrapError(`${path}.common_http_protocol_options.headers_with_underscores_action`, `unknown value "${underscores}"`);
  }
  const filters = arr(h["http_filters"], `${path}.http_filters`).map((f, i) => parseHttpFilter(f, `${path}.http_filters[${i}]`));
  const last = filters[filters.length - 1];
  if (last === undefined || last.kind !== "router") throw new BootstrapError(`${path}.http_filters`, "must end with envoy.filters.http.router");
  return {
    generateRequestId: optBool(h["generate_request_id"], `${path}.generate_request_id`) ?? true,
    alwaysSetRequestIdInResponse: optBool(h["always_set_request_id_in_response"], `${path}.always_set_request_id_in_response`) ?? false,
    maxRequestHeadersKb: optNum(h["max_request_headers_kb"], `${path}.max_request_headers_kb`) ?? 60,
    maxHeadersCount: optNum(common["max_headers_count"], `${path}.common_http_protocol_options.max_headers_count`) ?? 100,
    headersWithUnderscoresAction: underscores,
    serverName: optStr(h["server_name"], `${path}.server_name`) ?? "envoy",
    routeConfig: parseRouteConfig(h["route_config"], `${path}.route_config`),
    httpFilters: filters,
  };
}

function parseListener(raw: unknown, path: string): ListenerModel {
  const l = obj(raw, path);
  const chains = arr(l["filter_chains"], `${path}.filter_chains`);
  for (let c = 0; c < chains.length; c++) {
    const chain = obj(chains[c], `${path}.filter_chains[${c}]`);
    const filters = arr(chain["filters"], `${path}.filter_chains[${c}].filters`);
    for (let f = 0; f < filters.length; f++) {
      const fp = `${path}.filter_chains[${c}].filters[${f}]`;
      const filter = obj(filters[f], fp);
      if (filter["name"] !== HCM_NAME) continue;
      return {
        name: optStr(l["name"], `${path}.name`) ?? "",
        bufferLimitBytes: optNum(l["per_connection_buffer_limit_bytes"], `${path}.per_connection_buffer_limit_bytes`) ?? DEFAULT_BUFFER_LIMIT,
        hcm: parseHcm(filter["typed_config"], `${fp}.typed_config`),
      };
    }
  }
  throw new BootstrapError(path, `has no ${HCM_NAME}`);
}

export function parseBootstrap(text: string, source: string): Bootstrap {
  let doc: unknown;
  try {
    // merge: true resolves `<<:` keys; aliases (`*upstream_phase`) come back as plain values.
    doc = parse(text, { merge: true, maxAliasCount: -1 });
  } catch (err) {
    throw new BootstrapError(source, `YAML error: ${err instanceof Error ? err.message : String(err)}`);
  }
  const root = obj(doc, source);
  const sr = obj(root["static_resources"], `${source}: static_resources`);
  const listeners = arr(sr["listeners"], "static_resources.listeners");
  if (listeners.length === 0) throw new BootstrapError("static_resources.listeners", "is empty");
  const clusters = new Map<string, ClusterModel>();
  arr(sr["clusters"], "static_resources.clusters").forEach((c, i) => {
    const cluster = parseCluster(c, `static_resources.clusters[${i}]`);
    clusters.set(cluster.name, cluster);
  });
  return { listener: parseListener(listeners[0], "static_resources.listeners[0]"), clusters };
}

export function loadBootstrap(file: string): Bootstrap {
  return parseBootstrap(readFileSync(file, "utf8"), file);
}
