// Request-level metrics: the router's own (`llm_router_`) and the OpenTelemetry GenAI instruments in
// the form OTel's Prometheus exporter gives them, with the names and attributes Envoy AI Gateway
// emits (so its Grafana dashboards and queries work unchanged; README "Metrics" lists both).
// Everything is recorded from a finished RequestSummary / AttemptSummary, off the message path.
//
// Children are memoised per label combination: prom-client's labels() validates and hashes the
// values on every call, which at a dozen series per request would be a visible share of the
// router's CPU. The memo maps are bounded because every label value is (see labels.ts).
import { Counter, type Registry } from "prom-client";
import { ERROR_CATALOGUE } from "../api/errors";
import type { CacheStats } from "../cache/response-cache";
import type { CompiledPolicy, CompiledTarget } from "../policy/compile";
import type { AttemptSummary, RequestSummary } from "../phases/request-summary";
import type { Usage } from "../usage/usage";
import { BucketHistogram, type Observer } from "./bucket-histogram";
import { genAiOperation, genAiProvider, modelLabel, NONE, PREFIX, ResponseModelLabels, statusClass } from "./labels";

const NANO = 1e-9;

/**
 * Time the gateway adds over a whole request (router phase: all its messages) or one attempt
 * (upstream phase), seconds. Sub-millisecond is the norm; admissions and coalesced cache waits
 * reach milliseconds to seconds.
 */
const OVERHEAD_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30];
/** Time to a provider's response headers: a few ms (cached, small models) to minutes (long reasoning). */
const UPSTREAM_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** One Redis round trip: ~0.1-1 ms on a LAN; the command timeout (default 200 ms) bounds the tail. */
const REDIS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

// The GenAI buckets are the ones the OTel semantic conventions (token usage) and Envoy AI Gateway
// (durations) specify, so that histograms from both aggregate together.
const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
const REQUEST_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
const TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5];

const GEN_AI_LABELS = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_original_model", "gen_ai_request_model", "gen_ai_response_model"] as const;

export const QUOTA_OUTCOMES = ["admitted", "rejected", "fail_open", "fail_closed"] as const;
export type QuotaOutcome = (typeof QUOTA_OUTCOMES)[number];
export type CooldownSource = "local" | "shared";

interface Inc {
  inc(v?: number): void;
}
type Observe = Observer;

/** Children of the GenAI histograms for one combination of the five GenAI labels. */
interface GenAiSeries {
  tokens: Map<string, Observe>;
  duration: Map<string, Observe>;
  ttft: Observe;
  tpot: Observe;
}

function memo<K, T>(map: Map<K, T>, key: K, make: () => T): T {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

export class RequestMetrics {
  readonly #requests: Counter<string>;
  readonly #refusals: Counter<string>;
  readonly #fallbacks: Counter<string>;
  readonly #truncated: Counter<string>;
  readonly #attempts: Counter<string>;
  readonly #upstreamLatency: BucketHistogram;
  readonly #overhead: BucketHistogram;
  readonly #quota: Counter<string>;
  readonly #reservedTokens: Counter<string>;
  readonly #settledTokens: Counter<string>;
  readonly #reservedUsd: Counter<string>;
  readonly #settledUsd: Counter<string>;
  readonly #cost: Counter<string>;
  readonly #consumerCost: Counter<string>;
  readonly #consumerTokens: Counter<string>;
  readonly #cacheLookups: Counter<string>;
  readonly #cooldowns: Counter<string>;
  #cacheStats: CacheStats | undefined;
  readonly #redisTime: BucketHistogram;
  readonly #redisErrors: Counter<string>;
  readonly #genAiTokens: BucketHistogram;
  readonly #genAiDuration: BucketHistogram;
  readonly #genAiTtft: BucketHistogram;
  readonly #genAiTpot: BucketHistogram;

  readonly #responseModels = new ResponseModelLabels();
  /** Children by metric, then by label values. */
  readonly #children = new Map<Counter<string> | BucketHistogram, Map<string, Inc | Observe>>();
  readonly #genAi = new Map<string, GenAiSeries>();
  readonly #routerOverhead: Observe;
  readonly #upstreamOverhead: Observe;

  constructor(registry: Registry) {
    const registers = [registry];
    const counter = (name: string, help: string, labelNames: string[]) => new Counter({ name, help, labelNames, registers });
    const histogram = (name: string, help: string, labelNames: readonly string[], buckets: number[]) => new BucketHistogram({ name, help, labelNames, buckets, registers });

    this.#requests = counter(`${PREFIX}requests_total`, "Requests by route, answering target and provider, outcome (success, upstream_error, refused, cache_hit, truncated, cancelled, error) and status class", ["route", "target", "provider", "outcome", "status_class"]);
    this.#refusals = counter(`${PREFIX}gateway_errors_total`, "Errors the gateway answered itself, by error-catalogue code (README \"Errors\")", ["code"]);
    this.#fallbacks = counter(`${PREFIX}fallbacks_total`, "Requests answered by a target other than the one the plan started with, by route and answering target", ["route", "target"]);
    this.#truncated = counter(`${PREFIX}truncated_streams_total`, "Successful streams that ended without their terminal event (the client got a final error event)", ["route", "target", "provider"]);
    this.#attempts = counter(`${PREFIX}upstream_attempts_total`, "Upstream attempts (retries and fallbacks included) by route, target, provider and status class (none: no response)", ["route", "target", "provider", "status_class"]);
    this.#upstreamLatency = histogram(`${PREFIX}upstream_latency_seconds`, "Time from an attempt leaving to its response headers, by target and provider", ["target", "provider"], UPSTREAM_LATENCY_BUCKETS);
    this.#overhead = histogram(`${PREFIX}request_overhead_seconds`, "Time the gateway spent answering Envoy for one request (router phase) or one attempt (upstream phase)", ["phase"], OVERHEAD_BUCKETS);
    this.#quota = counter(`${PREFIX}quota_decisions_total`, "Quota rule decisions: admitted, rejected, fail_open / fail_closed (store unreachable, by the rule's failMode)", ["rule", "outcome"]);
    this.#reservedTokens = counter(`${PREFIX}quota_reserved_tokens_total`, "Tokens reserved at admission (prompt estimate plus output allowance), by route", ["route"]);
    this.#settledTokens = counter(`${PREFIX}quota_settled_tokens_total`, "Tokens settled when the answer ended (reported usage, else estimated), by route", ["route"]);
    this.#reservedUsd = counter(`${PREFIX}quota_reserved_usd_total`, "Dollars reserved at admission at the first target's price, by route", ["route"]);
    this.#settledUsd = counter(`${PREFIX}quota_settled_usd_total`, "Dollars settled at the answering target's price, by route", ["route"]);
    this.#cost = counter(`${PREFIX}cost_usd_total`, "Cost of answers in dollars at the policy's prices, by provider and upstream model", ["provider", "model"]);
    this.#consumerCost = counter(`${PREFIX}consumer_cost_usd_total`, "Cost of answers in dollars by consumer (policy metrics.perConsumer)", ["consumer"]);
    this.#consumerTokens = counter(`${PREFIX}consumer_tokens_total`, "Tokens by consumer and type (policy metrics.perConsumer)", ["consumer", "type"]);
    this.#cacheLookups = counter(`${PREFIX}cache_lookups_total`, "Response-cache lookups on routes with a cache: hit, miss, bypass (cache-control or a non-cacheable request)", ["route", "result"]);
    const cacheEvents = (): Array<[string, number]> => {
      const stats = this.#cacheStats;
      return [["coalesced_hit", stats?.coalescedHits ?? 0], ["stored", stats?.fills ?? 0], ["wait_timeout", stats?.waitTimeouts ?? 0], ["store_error", stats?.storeErrors ?? 0]];
    };
    new Counter({
      name: `${PREFIX}cache_events_total`,
      help: "Response-cache events inside the cache: coalesced_hit (waited for an identical request's answer), stored, wait_timeout, store_error",
      labelNames: ["event"],
      registers,
      // Counted by the cache itself (process totals); read at scrape time.
      collect() {
        this.reset();
        for (const [event, n] of cacheEvents()) this.labels(event).inc(n);
      },
    });
    this.#cooldowns = counter(`${PREFIX}cooldowns_total`, "Cooldowns entered by target: local (this replica's failures or retry-after), shared (learnt from another replica)", ["target", "source"]);
    this.#redisTime = histogram(`${PREFIX}redis_command_duration_seconds`, "Redis round trips by command (quotas, cache, shared observations), errors included", ["command"], REDIS_BUCKETS);
    this.#redisErrors = counter(`${PREFIX}redis_command_errors_total`, "Redis commands that failed or timed out, by command", ["command"]);

    this.#genAiTokens = histogram("gen_ai_client_token_usage_token", "Number of tokens processed (OTel gen_ai.client.token.usage)", [...GEN_AI_LABELS, "gen_ai_token_type"], TOKEN_BUCKETS);
    this.#genAiDuration = histogram("gen_ai_server_request_duration_seconds", "Generative AI server request duration such as time-to-last byte or last output token (OTel gen_ai.server.request.duration)", [...GEN_AI_LABELS, "error_type"], REQUEST_DURATION_BUCKETS);
    this.#genAiTtft = histogram("gen_ai_server_time_to_first_token_seconds", "Time to receive first token in streaming responses (OTel gen_ai.server.time_to_first_token)", GEN_AI_LABELS, TTFT_BUCKETS);
    this.#genAiTpot = histogram("gen_ai_server_time_per_output_token_seconds", "Time per output token generated after the first token for successful responses (OTel gen_ai.server.time_per_output_token)", GEN_AI_LABELS, TPOT_BUCKETS);

    this.#routerOverhead = this.#overhead.labels("router");
    this.#upstreamOverhead = this.#overhead.labels("upstream");
    // Fixed label sets exist from the start, so rate() and alerts see the first event.
    for (const code of Object.keys(ERROR_CATALOGUE)) this.#refusals.labels(code).inc(0);
  }

  /** Series a policy makes likely: each route's targets answering successfully, and its rules. */
  policyLoaded(policy: CompiledPolicy): void {
    for (const route of policy.routes) {
      for (const t of route.chain) this.#child(this.#requests, route.name, t.id, t.provider.id, "success", "2xx").inc(0);
    }
    for (const rule of policy.limits.rules) for (const outcome of QUOTA_OUTCOMES) this.#child(this.#quota, rule.name, outcome).inc(0);
  }

  completed(s: RequestSummary): void {
    const route = s.route ?? NONE;
    const target = s.target;
    const targetId = target?.id ?? NONE;
    const providerId = target?.provider.id ?? NONE;
    this.#child(this.#requests, route, targetId, providerId, s.outcome, statusClass(s.status)).inc();
    this.#routerOverhead.observe(s.overheadMs / 1000);
    if (s.outcome === "refused" && s.errorCode !== undefined) this.#child(this.#refusals, s.errorCode).inc();
    if (s.cache !== undefined) this.#child(this.#cacheLookups, route, s.cache).inc();
    if (target === undefined || s.outcome === "cache_hit" || s.outcome === "refused") return;
    if (s.outcome === "truncated") this.#child(this.#truncated, route, targetId, providerId).inc();
    if (s.firstTarget !== undefined && s.attempts !== undefined && target !== s.firstTarget) this.#child(this.#fallbacks, route, targetId).inc();

    if (s.reserved !== undefined) {
      this.#child(this.#reservedTokens, route).inc(s.reserved.tokens);
      this.#child(this.#reservedUsd, route).inc(s.reserved.nanoUsd * NANO);
      const usage = s.usage;
      this.#child(this.#settledTokens, route).inc(usage === undefined ? 0 : usage.inputTokens + usage.outputTokens);
      this.#child(this.#settledUsd, route).inc(s.nanoUsd * NANO);
    }
    if (s.nanoUsd > 0) this.#child(this.#cost, providerId, target.config.model).inc(s.nanoUsd * NANO);
    if (s.policy.perConsumerMetrics && s.consumer !== undefined) this.#perConsumer(s.consumer.id, s.nanoUsd, s.usage);
    if (s.operation !== undefined) this.#genAiRecord(s, target);
  }

  attempted(a: AttemptSummary): void {
    const provider = a.target.provider.id;
    this.#child(this.#attempts, a.route ?? NONE, a.target.id, provider, statusClass(a.status)).inc();
    this.#upstreamOverhead.observe(a.overheadMs / 1000);
    if (a.latencyMs !== undefined) this.#child(this.#upstreamLatency, a.target.id, provider).observe(a.latencyMs / 1000);
    if (a.cooldownEntered) this.cooldownEntered(a.target.id, "local");
  }

  /** The response cache whose own counters cache_events_total exposes. */
  cacheStats(stats: CacheStats): void {
    this.#cacheStats = stats;
  }

  quotaDecided(rule: string, outcome: QuotaOutcome): void {
    this.#child(this.#quota, rule, outcome).inc();
  }

  cooldownEntered(targetId: string, source: CooldownSource): void {
    this.#child(this.#cooldowns, targetId, source).inc();
  }

  /** One Redis command's round trip (`command` is one the service sends: a fixed set). */
  redisCommand(command: string, seconds: number, ok: boolean): void {
    this.#child(this.#redisTime, command).observe(seconds);
    if (!ok) this.#child(this.#redisErrors, command).inc();
  }

  #perConsumer(consumer: string, nanoUsd: number, usage: Usage | undefined): void {
    this.#child(this.#consumerCost, consumer).inc(nanoUsd * NANO);
    if (usage === undefined) return;
    this.#child(this.#consumerTokens, consumer, "input").inc(usage.inputTokens);
    this.#child(this.#consumerTokens, consumer, "output").inc(usage.outputTokens);
  }

  /**
   * The GenAI instruments for a request a target answered (or that failed trying): duration
   * always, error_type on failure; tokens only as the provider reported them (the conventions
   * forbid estimates); TTFT and TPOT for streams.
   */
  #genAiRecord(s: RequestSummary, target: CompiledTarget): void {
    const labels = [genAiOperation(s.operation), genAiProvider(target.provider), modelLabel(s.policy, s.requestedModel), target.config.model, this.#responseModels.label(target.id, s.responseModel)];
    const key = labels.join("\u0000");
    const series = memo(this.#genAi, key, () => ({
      tokens: new Map<string, Observe>(),
      duration: new Map<string, Observe>(),
      ttft: this.#genAiTtft.labels(...labels),
      tpot: this.#genAiTpot.labels(...labels),
    }));
    const errorType = s.outcome === "success" ? "" : s.status !== undefined && s.status >= 400 ? String(s.status) : s.outcome;
    memo(series.duration, errorType, () => this.#genAiDuration.labels(...labels, errorType)).observe(s.durationMs / 1000);
    if (s.ttftMs !== undefined) series.ttft.observe(s.ttftMs / 1000);
    if (s.tpotMs !== undefined) series.tpot.observe(s.tpotMs / 1000);
    const usage = s.usage;
    if (usage === undefined || !s.usageReported) return;
    const token = (type: string, n: number) => memo(series.tokens, type, () => this.#genAiTokens.labels(...labels, type)).observe(n);
    token("input", usage.inputTokens);
    token("output", usage.outputTokens);
    // Subsets, recorded when present (a histogram of zeros would say nothing but skew the counts).
    if (usage.cachedInputTokens > 0) token("cached_input", usage.cachedInputTokens);
    if (usage.cacheWriteInputTokens > 0) token("cache_creation_input", usage.cacheWriteInputTokens);
    if (usage.reasoningTokens > 0) token("reasoning", usage.reasoningTokens);
  }

  /** A memoised child of a labelled metric (labels in the metric's labelNames order). */
  #child(metric: Counter<string>, ...values: string[]): Inc;
  #child(metric: BucketHistogram, ...values: string[]): Observe;
  #child(metric: Counter<string> | BucketHistogram, ...values: string[]): Inc | Observe {
    const children = memo(this.#children, metric, () => new Map<string, Inc | Observe>());
    return memo(children, values.join("\u0000"), () => metric.labels(...values));
  }
}
