// Route matching (virtual host by :authority, then the first matching route) and cluster choice.
// The result is what Envoy caches per request: the cluster of a cluster_header route is read from
// the headers AT MATCH TIME, so changing the header later has no effect unless the route cache is
// cleared (ext_proc clear_route_cache) and the route is matched again.
import type { RouteConfigModel, RouteMatchModel, RouteModel, VirtualHostModel } from "./bootstrap-routes";
import type { HeaderMap } from "./header-map";

export interface RouteDecision {
  route: RouteModel;
  virtualHost: VirtualHostModel;
  /** route actions: the cluster named by `cluster` or by the cluster_header value (may not exist). */
  clusterName?: string;
}

/** Envoy's domain order: exact, then suffix wildcards, then prefix wildcards (longest first), then "*". */
function findVirtualHost(config: RouteConfigModel, authority: string): VirtualHostModel | undefined {
  const host = authority.toLowerCase();
  let best: { vh: VirtualHostModel; rank: number; len: number } | undefined;
  for (const vh of config.virtualHosts) {
    for (const raw of vh.domains) {
      const d = raw.toLowerCase();
      let rank = -1;
      if (d === host) rank = 3;
      else if (d === "*") rank = 0;
      else if (d.startsWith("*") && host.endsWith(d.slice(1)) && host.length > d.length - 1) rank = 2;
      else if (d.endsWith("*") && host.startsWith(d.slice(0, -1)) && host.length > d.length - 1) rank = 1;
      if (rank < 0) continue;
      if (best === undefined || rank > best.rank || (rank === best.rank && d.length > best.len)) best = { vh, rank, len: d.length };
    }
  }
  return best?.vh;
}

function pathMatches(match: RouteMatchModel, fullPath: string): boolean {
  // `path` and `safe_regex` compare the path without its query string; `prefix` the raw :path.
  const bare = fullPath.split(/[?#]/)[0] ?? "";
  const norm = (s: string): string => (match.caseSensitive ? s : s.toLowerCase());
  if (match.prefix !== undefined) return norm(fullPath).startsWith(norm(match.prefix));
  if (match.path !== undefined) return norm(bare) === norm(match.path);
  if (match.safeRegex !== undefined) return match.safeRegex.test(bare);
  return false;
}

export function matchRoute(config: RouteConfigModel, headers: HeaderMap): RouteDecision | undefined {
  const vh = findVirtualHost(config, headers.get(":authority") ?? "");
  if (vh === undefined) return undefined;
  const path = headers.get(":path") ?? "/";
  for (const route of vh.routes) {
    if (!pathMatches(route.match, path)) continue;
    if (!route.match.headers.every((m) => m.test(headers.getJoined(m.name)))) continue;
    const decision: RouteDecision = { route, virtualHost: vh };
    if (route.action.type === "route") {
      const name = route.action.cluster ?? (route.action.clusterHeader !== undefined ? headers.get(route.action.clusterHeader) : undefined);
      if (name !== undefined && name !== "") decision.clusterName = name;
    }
    return decision;
  }
  return undefined;
}
