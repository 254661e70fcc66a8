// route_config (virtual hosts, routes, retry policies) -> typed model.
// https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto
import {
  BootstrapError,
  arr,
  obj,
  optBool,
  optDurationMs,
  optNum,
  optObj,
  optStr,
  rejectUnmodelled,
  str,
  strList,
} from "./yaml-access";

export interface HeaderMatcherModel {
  name: string;
  /** Returns whether the (comma-joined) value matches; `undefined` value = header absent. */
  test: (value: string | undefined) => boolean;
}

export interface RouteMatchModel {
  prefix?: string;
  path?: string;
  safeRegex?: RegExp;
  caseSensitive: boolean;
  headers: HeaderMatcherModel[];
}

export interface ResetHeaderModel {
  /** Lowercase header name. */
  name: string;
  format: "SECONDS" | "UNIX_TIMESTAMP";
}

export interface RetryPolicyModel {
  retryOn: ReadonlySet<string>;
  retriableStatusCodes: readonly number[];
  numRetries: number;
  baseIntervalMs: number;
  maxIntervalMs: number;
  perTryTimeoutMs?: number;
  perTryIdleTimeoutMs?: number;
  retryHostPredicates: readonly string[];
  retryPriority?: string;
  /** previous_priorities update_frequency (1 when the priority plugin has no typed_config). */
  priorityUpdateFrequency: number;
  /** 0 in the config means "retry host selection once" (route_components.proto). */
  hostSelectionRetryMaxAttempts: number;
  rateLimitedBackOff?: { resetHeaders: readonly ResetHeaderModel[]; maxIntervalMs: number };
}

export type RouteActionModel =
  | {
      type: "route";
      cluster?: string;
      clusterHeader?: string;
      clusterNotFoundCode: number;
      autoHostRewrite: boolean;
      retryPolicy?: RetryPolicyModel;
      /** Route timeout spanning all attempts; 0 disables it (Envoy default 15 s). */
      timeoutMs: number;
      idleTimeoutMs?: number;
    }
  | { type: "direct_response"; status: number; body: string };

export interface RouteModel {
  name: string;
  match: RouteMatchModel;
  action: RouteActionModel;
}

export interface VirtualHostModel {
  name: string;
  domains: string[];
  routes: RouteModel[];
  /** x-envoy-attempt-count on upstream requests. */
  includeRequestAttemptCount: boolean;
  /** x-envoy-attempt-count on the response the client gets. */
  includeAttemptCountInResponse: boolean;
  /** x-envoy-is-timeout-retry on retried upstream requests. */
  includeIsTimeoutRetryHeader: boolean;
}

export interface RouteConfigModel {
  name: string;
  virtualHosts: VirtualHostModel[];
}

const NOT_FOUND_CODES: Record<string, number> = {
  SERVICE_UNAVAILABLE: 503,
  NOT_FOUND: 404,
  INTERNAL_SERVER_ERROR: 500,
};

/** type.matcher.v3.StringMatcher -> predicate. */
function stringMatcher(raw: unknown, path: string): (v: string) => boolean {
  const m = obj(raw, path);
  const ignoreCase = optBool(m["ignore_case"], `${path}.ignore_case`) ?? false;
  const norm = (s: string): string => (ignoreCase ? s.toLowerCase() : s);
  const exact = optStr(m["exact"], `${path}.exact`);
  if (exact !== undefined) return (v) => norm(v) === norm(exact);
  const prefix = optStr(m["prefix"], `${path}.prefix`);
  if (prefix !== undefined) return (v) => norm(v).startsWith(norm(prefix));
  const suffix = optStr(m["suffix"], `${path}.suffix`);
  if (suffix !== undefined) return (v) => norm(v).endsWith(norm(suffix));
  const contains = optStr(m["contains"], `${path}.contains`);
  if (contains !== undefined) return (v) => norm(v).includes(norm(contains));
  const regex = optObj(m["safe_regex"], `${path}.safe_regex`);
  if (regex !== undefined) {
    const re = new RegExp(`^(?:${str(regex["regex"], `${path}.safe_regex.regex`)})$`);
    return (v) => re.test(v);
  }
  throw new BootstrapError(path, "string matcher kind is not modelled");
}

/** config.route.v3.HeaderMatcher. Envoy matches a repeated header against its comma-joined values. */
function headerMatcher(raw: unknown, path: string): HeaderMatcherModel {
  const h = obj(raw, path);
  rejectUnmodelled(h, ["range_match"], path);
  const name = str(h["name"], `${path}.name`).toLowerCase();
  const invert = optBool(h["invert_match"], `${path}.invert_match`) ?? false;
  const missingAsEmpty = optBool(h["treat_missing_header_as_empty"], `${path}.treat_missing_header_as_empty`) ?? false;
  let valueTest: ((v: string) => boolean) | undefined;
  const present = optBool(h["present_match"], `${path}.present_match`);
  if (h["string_match"] !== undefined) valueTest = stringMatcher(h["string_match"], `${path}.string_match`);
  else if (h["exact_match"] !== undefined) {
    const exact = str(h["exact_match"], `${path}.exact_match`);
    valueTest = (v) => v === exact;
  } else if (h["prefix_match"] !== undefined) {
    const prefix = str(h["prefix_match"], `${path}.prefix_match`);
    valueTest = (v) => v.startsWith(prefix);
  } else if (h["suffix_match"] !== undefined) {
    const suffix = str(h["suffix_match"], `${path}.suffix_match`);
    valueTest = (v) => v.endsWith(suffix);
  } else if (h["safe_regex_match"] !== undefined) {
    valueTest = stringMatcher({ safe_regex: h["safe_regex_match"] }, `${path}.safe_regex_match`);
  }
  const test = (value: string | undefined): boolean => {
    const v = value === undefined && missingAsEmpty ? "" : value;
    let matched: boolean;
    if (valueTest !== undefined) matched = v !== undefined && valueTest(v);
    else if (present === false) matched = v === undefined;
    else matched = v !== undefined; // present_match: true, or no matcher at all: presence
    return invert ? !matched : matched;
  };
  return { name, test };
}

function parseMatch(raw: unknown, path: string): RouteMatchModel {
  const m = obj(raw, path);
  rejectUnmodelled(m, ["query_parameters", "grpc", "runtime_fraction", "path_separated_prefix", "path_match_policy", "dynamic_metadata"], path);
  const match: RouteMatchModel = {
    caseSensitive: optBool(m["case_sensitive"], `${path}.case_sensitive`) ?? true,
    headers: arr(m["headers"], `${path}.headers`).map((h, i) => headerMatcher(h, `${path}.headers[${i}]`)),
  };
  const prefix = optStr(m["prefix"], `${path}.prefix`);
  const exact = optStr(m["path"], `${path}.path`);
  const regex = optObj(m["safe_regex"], `${path}.safe_regex`);
  if (prefix !== undefined) match.prefix = prefix;
  else if (exact !== undefined) match.path = exact;
  else if (regex !== undefined) match.safeRegex = new RegExp(`^(?:${str(regex["regex"], `${path}.safe_regex.regex`)})$`);
  else throw new BootstrapError(path, "needs prefix, path or safe_regex");
  return match;
}

const RESET_FORMATS: Record<string, ResetHeaderModel["format"]> = { SECONDS: "SECONDS", UNIX_TIMESTAMP: "UNIX_TIMESTAMP", "0": "SECONDS", "1": "UNIX_TIMESTAMP" };

function parseRateLimitedBackOff(raw: unknown, path: string): RetryPolicyModel["rateLimitedBackOff"] {
  const r = optObj(raw, path);
  if (r === undefined) return undefined;
  const resetHeaders = arr(r["reset_headers"], `${path}.reset_headers`).map((h, i): ResetHeaderModel => {
    const hp = `${path}.reset_headers[${i}]`;
    const header = obj(h, hp);
    const rawFormat = header["format"];
    const formatName = typeof rawFormat === "number" ? String(rawFormat) : (optStr(rawFormat, `${hp}.format`) ?? "SECONDS");
    const format = RESET_FORMATS[formatName];
    if (format === undefined) throw new BootstrapError(`${hp}.format`, `unknown value "${formatName}"`);
    return { name: str(header["name"], `${hp}.name`).toLowerCase(), format };
  });
  // The proto requires at least one reset header.
  if (resetHeaders.length === 0) throw new BootstrapError(`${path}.reset_headers`, "needs at least one entry");
  // max_interval defaults to 300 s (route_components.proto RateLimitedRetryBackOff).
  return { resetHeaders, maxIntervalMs: optDurationMs(r["max_interval"], `${path}.max_interval`) ?? 300_000 };
}

function parseRetryPolicy(raw: unknown, path: string): RetryPolicyModel {
  const r = obj(raw, path);
  rejectUnmodelled(r, ["retry_options_predicates", "retriable_headers", "retriable_request_headers"], path);
  const backOff = optObj(r["retry_back_off"], `${path}.retry_back_off`) ?? {};
  const base = optDurationMs(backOff["base_interval"], `${path}.retry_back_off.base_interval`) ?? 25;
  const policy: RetryPolicyModel = {
    retryOn: parseRetryOn(optStr(r["retry_on"], `${path}.retry_on`) ?? ""),
    retriableStatusCodes: arr(r["retriable_status_codes"], `${path}.retriable_status_codes`).map(
      (c, i) => optNum(c, `${path}.retriable_status_codes[${i}]`) ?? 0,
    ),
    // num_retries defaults to 1 when a retry policy is present (route_components.proto).
    numRetries: optNum(r["num_retries"], `${path}.num_retries`) ?? 1,
    baseIntervalMs: base,
    maxIntervalMs: optDurationMs(backOff["max_interval"], `${path}.retry_back_off.max_interval`) ?? base * 10,
    retryHostPredicates: arr(r["retry_host_predicate"], `${path}.retry_host_predicate`).map((p, i) =>
      str(obj(p, `${path}.retry_host_predicate[${i}]`)["name"], `${path}.retry_host_predicate[${i}].name`),
    ),
    priorityUpdateFrequency: 1,
    hostSelectionRetryMaxAttempts: optNum(r["host_selection_retry_max_attempts"], `${path}.host_selection_retry_max_attempts`) ?? 0,
  };
  const perTry = optDurationMs(r["per_try_timeout"], `${path}.per_try_timeout`);
  const perTryIdle = optDurationMs(r["per_try_idle_timeout"], `${path}.per_try_idle_timeout`);
  const priority = optObj(r["retry_priority"], `${path}.retry_priority`);
  if (perTry !== undefined && perTry > 0) policy.perTryTimeoutMs = perTry;
  if (perTryIdle !== undefined && perTryIdle > 0) policy.perTryIdleTimeoutMs = perTryIdle;
  if (priority !== undefined) {
    policy.retryPriority = str(priority["name"], `${path}.retry_priority.name`);
    const tc = optObj(priority["typed_config"], `${path}.retry_priority.typed_config`) ?? {};
    const frequency = optNum(tc["update_frequency"], `${path}.retry_priority.typed_config.update_frequency`);
    if (frequency !== undefined) {
      // PreviousPrioritiesConfig.update_frequency: int32, gt 0.
      if (!Number.isInteger(frequency) || frequency <= 0) {
        throw new BootstrapError(`${path}.retry_priority.typed_config.update_frequency`, "must be an integer > 0");
      }
      policy.priorityUpdateFrequency = frequency;
    }
  }
  const rateLimited = parseRateLimitedBackOff(r["rate_limited_retry_back_off"], `${path}.rate_limited_retry_back_off`);
  if (rateLimited !== undefined) policy.rateLimitedBackOff = rateLimited;
  return policy;
}

/** retry_on / x-envoy-retry-on: comma-separated, whitespace around tokens ignored. */
export function parseRetryOn(value: string): Set<string> {
  return new Set(value.split(",").map((s) => s.trim()).filter((s) => s !== ""));
}

function parseAction(r: Record<string, unknown>, path: string, vhostRetry: RetryPolicyModel | undefined): RouteActionModel {
  rejectUnmodelled(r, ["redirect", "filter_action", "non_forwarding_action"], path);
  const direct = optObj(r["direct_response"], `${path}.direct_response`);
  if (direct !== undefined) {
    const body = optObj(direct["body"], `${path}.direct_response.body`) ?? {};
    return {
      type: "direct_response",
      status: optNum(direct["status"], `${path}.direct_response.status`) ?? 200,
      body: optStr(body["inline_string"], `${path}.direct_response.body.inline_string`) ?? "",
    };
  }
  const a = obj(r["route"], `${path}.route`);
  const ap = `${path}.route`;
  rejectUnmodelled(
    a,
    ["weighted_clusters", "cluster_specifier_plugin", "inline_cluster_specifier_plugin", "prefix_rewrite", "regex_rewrite", "path_rewrite_policy", "host_rewrite_literal", "host_rewrite_header", "host_rewrite_path_regex", "hash_policy", "request_mirror_policies", "hedge_policy"],
    ap,
  );
  const codeName = optStr(a["cluster_not_found_response_code"], `${ap}.cluster_not_found_response_code`) ?? "SERVICE_UNAVAILABLE";
  const code = NOT_FOUND_CODES[codeName];
  if (code === undefined) throw new BootstrapError(`${ap}.cluster_not_found_response_code`, `unknown value "${codeName}"`);
  const action: RouteActionModel = {
    type: "route",
    clusterNotFoundCode: code,
    autoHostRewrite: optBool(a["auto_host_rewrite"], `${ap}.auto_host_rewrite`) ?? false,
    timeoutMs: optDurationMs(a["timeout"], `${ap}.timeout`) ?? 15000,
  };
  const cluster = optStr(a["cluster"], `${ap}.cluster`);
  const clusterHeader = optStr(a["cluster_header"], `${ap}.cluster_header`);
  if (cluster !== undefined) action.cluster = cluster;
  else if (clusterHeader !== undefined) action.clusterHeader = clusterHeader.toLowerCase();
  else throw new BootstrapError(ap, "needs cluster or cluster_header");
  const idle = optDurationMs(a["idle_timeout"], `${ap}.idle_timeout`);
  if (idle !== undefined) action.idleTimeoutMs = idle;
  // A route-level retry_policy replaces the virtual host's one.
  const retry = a["retry_policy"] !== undefined ? parseRetryPolicy(a["retry_policy"], `${ap}.retry_policy`) : vhostRetry;
  if (retry !== undefined) action.retryPolicy = retry;
  return action;
}

export function parseRouteConfig(raw: unknown, path: string): RouteConfigModel {
  const rc = obj(raw, path);
  return {
    name: optStr(rc["name"], `${path}.name`) ?? "",
    virtualHosts: arr(rc["virtual_hosts"], `${path}.virtual_hosts`).map((vhRaw, i) => {
      const vp = `${path}.virtual_hosts[${i}]`;
      const vh = obj(vhRaw, vp);
      rejectUnmodelled(vh, ["hedge_policy"], vp);
      const vhostRetry = vh["retry_policy"] !== undefined ? parseRetryPolicy(vh["retry_policy"], `${vp}.retry_policy`) : undefined;
      return {
        name: optStr(vh["name"], `${vp}.name`) ?? "",
        domains: strList(vh["domains"], `${vp}.domains`),
        includeRequestAttemptCount: optBool(vh["include_request_attempt_count"], `${vp}.include_request_attempt_count`) ?? false,
        includeAttemptCountInResponse: optBool(vh["include_attempt_count_in_response"], `${vp}.include_attempt_count_in_response`) ?? false,
        includeIsTimeoutRetryHeader: optBool(vh["include_is_timeout_retry_header"], `${vp}.include_is_timeout_retry_header`) ?? false,
        routes: arr(vh["routes"], `${vp}.routes`).map((routeRaw, j) => {
          const rp = `${vp}.routes[${j}]`;
          const r = obj(routeRaw, rp);
          return {
            name: optStr(r["name"], `${rp}.name`) ?? "",
            match: parseMatch(r["match"], `${rp}.match`),
            action: parseAction(r, rp, vhostRetry),
          };
        }),
      };
    }),
  };
}
