// The routing decision: a pure function of the request's facts and the compiled policy.
// Routes are tried in file order; the first whose match holds wins.
import { GatewayError } from "../api/errors";
import type { Operation } from "../api/operations";
import type { CompiledConsumer, CompiledPolicy, CompiledRoute } from "../policy/compile";

export interface RequestFacts {
  operation: Operation;
  /** The `model` the client sent. */
  model: string;
  header(name: string): string | undefined;
  consumer: CompiledConsumer;
}

/** The route for a request; which of its targets serves it is the plan's business (plan.ts). */
export function decideRoute(facts: RequestFacts, policy: CompiledPolicy): CompiledRoute {
  const candidates = policy.routesForModel(facts.model);
  const route = candidates.find((r) => routeMatches(r, facts));
  if (route === undefined) {
    const known = candidates.some((r) => r.config.match.models?.includes(facts.model));
    throw new GatewayError("model_not_found", known ? `No route serves \`${clip(facts.model)}\` for this request.` : `Unknown model \`${clip(facts.model)}\`.`);
  }
  const { consumer } = facts;
  if (consumer.allowModels && !consumer.allowModels.has(facts.model)) throw new GatewayError("model_not_allowed");
  if (consumer.allowRoutes && !consumer.allowRoutes.has(route.name)) throw new GatewayError("route_not_allowed");
  return route;
}

export function routeMatches(route: CompiledRoute, facts: RequestFacts): boolean {
  if (route.operations && !route.operations.has(facts.operation)) return false;
  if (route.consumers && !route.consumers.has(facts.consumer.id)) return false;
  if (route.teams && (facts.consumer.team === undefined || !route.teams.has(facts.consumer.team))) return false;
  for (const [name, values] of route.headers) {
    const v = facts.header(name);
    if (v === undefined || !values.has(v)) return false;
  }
  for (const [k, v] of route.labels) if (facts.consumer.labels[k] !== v) return false;
  return true;
}

/** Echoing a client's model name back is fine, but never an unbounded one. */
function clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
}

/** The passthrough rule covering a non-LLM path, if any. */
export function decidePassthrough(pathname: string, policy: CompiledPolicy): CompiledPolicy["passthrough"][number] | undefined {
  return policy.passthrough.find((p) => pathname === p.prefix || pathname.startsWith(p.prefix.endsWith("/") ? p.prefix : `${p.prefix}/`) || pathname.startsWith(`${p.prefix}?`));
}
