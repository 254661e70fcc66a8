// Admission and settlement of quotas for one request, over the configured store (Redis) with a
// per-replica memory store behind it. The router phase calls admit() once the route and first
// target are known, and settles the ticket when the response ends (or the client goes away).
//
// When the store fails, each applicable rule follows its failMode: `closed` answers 503, `local`
// enforces limit / replicas in this replica's memory, `open` admits and counts in memory. The
// failure is logged once per interval, not per request, and counted (stats). Each rule's decision
// goes to the observer (the quota metrics).
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { GatewayError } from "../api/errors";
import { ThrottledErrorLog } from "../log";
import type { Usage } from "../usage/usage";
import { describeLimit, KIND_UNIT, calendarWindow } from "./limit-kinds";
import { applicableRules, checksFor, type CompiledLimitRule, type CompiledLimits, type QuotaSubject, type Reservation } from "./limit-rules";
import { MemoryQuotaStore, type Adjustment, type AdmitOutcome, type Check, type QuotaStore, type Tally } from "./quota-store";
import { rateLimitHeaders } from "./rate-limit-headers";

/** Ledger entries are kept this long after their day ends. */
const LEDGER_KEEP_MS = 35 * 86_400_000;
const STORE_ERROR_LOG_INTERVAL_MS = 30_000;

/** What a request really used, once its response ended. */
export interface SettledUsage {
  usage: Usage;
  nanoUsd: number;
  /** The target that answered. */
  target: string;
}

/**
 * A rule's decision for one request: admitted or rejected (by the store, or by this replica's
 * memory during an outage), and fail_open / fail_closed when the store was unreachable and the
 * rule's failMode decided (a fail_open rule is then also admitted or rejected from memory).
 */
export type QuotaDecision = "admitted" | "rejected" | "fail_open" | "fail_closed";

export interface QuotaObserver {
  decided(rule: string, decision: QuotaDecision): void;
}

export interface QuotaStats {
  storeErrors: number;
  /** Admissions decided by failMode because the store failed. */
  failModeAdmissions: number;
  failModeRejections: number;
}

export class QuotaGate {
  readonly local = new MemoryQuotaStore();
  readonly stats: QuotaStats = { storeErrors: 0, failModeAdmissions: 0, failModeRejections: 0 };
  readonly #errorLog: ThrottledErrorLog;
  readonly #settling = new Set<Promise<void>>();

  constructor(
    /** Shared store (Redis); undefined: this replica's memory is the store. */
    readonly remote: QuotaStore | undefined,
    log: Logger,
    private readonly observer?: QuotaObserver,
    /**
     * Processes that share this replica's address (`serve --workers N`): each counts on its own while
     * the store is down, so a `local` rule's share is limit / (limits.replicas x N).
     */
    private readonly processesPerReplica = 1,
  ) {
    this.#errorLog = new ThrottledErrorLog(log, STORE_ERROR_LOG_INTERVAL_MS, "quota store unreachable: rules follow their failMode");
  }

  /**
   * Admits the request or throws a GatewayError (429, 400 or 503) carrying the answer's headers.
   * Synchronous when no rule applies (the common case costs no promise and no store call).
   */
  admit(limits: CompiledLimits, subject: QuotaSubject, reservation: Reservation, now: number): QuotaTicket | Promise<QuotaTicket> {
    // The lease id is ours, never the client's x-request-id: reusing one must not share a slot.
    const requestId = randomUUID();
    const rules = applicableRules(limits, subject);
    const { checks, impossible } = checksFor(rules, subject, reservation, now, limits.leaseTtlMs);
    if (impossible !== undefined) {
      this.observer?.decided(impossible.rule, "rejected");
      const needs = impossible.kind.startsWith("usd") ? "more than that" : String(impossible.needed);
      throw new GatewayError("request_over_limit", `Rule \`${impossible.rule}\` allows ${describeLimit(impossible.kind, impossible.limit)}; this request needs ${needs}.`, [["x-llm-router-limit", impossible.rule]]);
    }
    const store = this.remote ?? this.local;
    if (checks.length === 0) return new QuotaTicket(this, store, checks, reservation, subject, requestId, [], now);
    if (this.remote === undefined) {
      // The memory store answers at once: no promise, the reply goes out in this turn.
      return this.#answer(store, checks, this.local.admitNow(checks, requestId, now), reservation, subject, requestId, now);
    }
    return this.#admitChecks(limits, rules, checks, subject, reservation, now, requestId);
  }

  async #admitChecks(limits: CompiledLimits, rules: readonly CompiledLimitRule[], checks: Check[], subject: QuotaSubject, reservation: Reservation, now: number, requestId: string): Promise<QuotaTicket> {
    let store: QuotaStore = this.remote ?? this.local;
    let applied = checks;
    let outcome: AdmitOutcome;
    try {
      outcome = await store.admit(checks, requestId, now);
    } catch (err) {
      this.#storeFailed(err, "admit");
      const failed = this.#byFailMode(limits, rules, subject, reservation, now, requestId);
      store = this.local;
      applied = failed.checks;
      outcome = failed.outcome;
    }
    return this.#answer(store, applied, outcome, reservation, subject, requestId, now);
  }

  /** The ticket of an admitted request, or the refusal with its headers. */
  #answer(store: QuotaStore, checks: readonly Check[], outcome: AdmitOutcome, reservation: Reservation, subject: QuotaSubject, requestId: string, now: number): QuotaTicket {
    const headers = rateLimitHeaders(checks, outcome.states, now);
    this.#report(checks, outcome.refused);
    if (outcome.refused !== undefined) throw refusal(checks, outcome, headers, now);
    return new QuotaTicket(this, store, checks, reservation, subject, requestId, headers, now);
  }

  #byFailMode(limits: CompiledLimits, rules: readonly CompiledLimitRule[], subject: QuotaSubject, reservation: Reservation, now: number, requestId: string): { checks: Check[]; outcome: AdmitOutcome } {
    if (rules.some((r) => r.failMode === "closed")) {
      for (const r of rules) if (r.failMode === "closed") this.observer?.decided(r.name, "fail_closed");
      this.stats.failModeRejections++;
      throw new GatewayError("quota_store_unavailable", undefined, [["retry-after", "1"]]);
    }
    this.stats.failModeAdmissions++;
    for (const r of rules) this.observer?.decided(r.name, "fail_open");
    const share = (r: CompiledLimitRule) => (r.failMode === "local" ? limits.replicas * this.processesPerReplica : Infinity);
    const { checks } = checksFor(rules, subject, reservation, now, limits.leaseTtlMs, share);
    return { checks, outcome: this.local.admitNow(checks, requestId, now) };
  }

  /** The refusing check's rule is rejected; on admission every applicable rule is admitted once. */
  #report(checks: readonly Check[], refused: number | undefined): void {
    const observer = this.observer;
    if (observer === undefined) return;
    if (refused !== undefined) {
      const rule = checks[refused]?.rule;
      if (rule !== undefined) observer.decided(rule, "rejected");
      return;
    }
    let last: string | undefined;
    for (const c of checks) {
      // A rule's checks (one per limit kind) are adjacent.
      if (c.rule !== last) observer.decided(c.rule, "admitted");
      last = c.rule;
    }
  }

  #storeFailed(err: unknown, during: string): void {
    this.stats.storeErrors++;
    this.#errorLog.error(err, { during });
  }

  /** @internal for QuotaTicket: keeps a settlement in view until it is written. */
  track(settlement: Promise<void>): Promise<void> {
    this.#settling.add(settlement);
    void settlement.finally(() => this.#settling.delete(settlement));
    return settlement;
  }

  /** @internal for QuotaTicket */
  settleFailed(err: unknown): void {
    this.#storeFailed(err, "settle");
  }

  /** Resolves once every settlement started so far is written (shutdown, tests). */
  async idle(): Promise<void> {
    while (this.#settling.size > 0) await Promise.allSettled([...this.#settling]);
  }
}

function refusal(checks: readonly Check[], outcome: AdmitOutcome, headers: Array<[string, string]>, now: number): GatewayError {
  const check = checks[outcome.refused ?? 0];
  if (check === undefined) return new GatewayError("rate_limit_exceeded");
  const waitMs = outcome.retryAt === undefined ? undefined : Math.max(0, outcome.retryAt - now);
  const out: Array<[string, string]> = [...headers, ["x-llm-router-limit", check.rule]];
  if (waitMs !== undefined) out.push(["retry-after", String(Math.max(1, Math.ceil(waitMs / 1000)))]);
  const when = waitMs === undefined ? "" : ` Retry in ${Math.max(1, Math.ceil(waitMs / 1000))}s.`;
  const detail = `Rule \`${check.rule}\`: ${describeLimit(check.kind, check.limit)}.${when}`;
  const unit = KIND_UNIT[check.kind];
  const code = check.kind === "concurrent" ? "concurrency_limit_exceeded" : unit === "usd" || check.kind === "tokens_per_day" ? "budget_exceeded" : "rate_limit_exceeded";
  return new GatewayError(code, detail, out);
}

/** One admitted request's hold on its quotas; settled exactly once. */
export class QuotaTicket {
  #settled = false;

  constructor(
    private readonly gate: QuotaGate,
    private readonly store: QuotaStore,
    readonly checks: readonly Check[],
    readonly reservation: Reservation,
    private readonly subject: QuotaSubject,
    private readonly leaseId: string,
    /** x-ratelimit-* as of admission, for the response. */
    readonly headers: ReadonlyArray<[string, string]>,
    private readonly admittedAt: number,
  ) {}

  get settled(): boolean {
    return this.#settled;
  }

  /**
   * Replaces each reservation by what was used (undefined: nothing, e.g. the request failed or was
   * abandoned before any response) and adds the usage to the consumer's ledger. Never throws.
   */
  settle(used: SettledUsage | undefined, now: number): Promise<void> {
    if (this.#settled) return Promise.resolve();
    this.#settled = true;
    return this.gate.track(this.#write(used, now));
  }

  async #write(used: SettledUsage | undefined, now: number): Promise<void> {
    const tokens = used === undefined ? 0 : used.usage.inputTokens + used.usage.outputTokens;
    const nano = used?.nanoUsd ?? 0;
    const adjustments: Adjustment[] = this.checks.map((check) => {
      if (check.algo === "lease" || KIND_UNIT[check.kind] === "requests") return { check, delta: 0 };
      return { check, delta: (KIND_UNIT[check.kind] === "usd" ? nano : tokens) - check.cost };
    });
    const tally: Tally | undefined =
      used === undefined
        ? undefined
        : {
            key: ledgerKey(this.subject.consumer.id, this.admittedAt),
            fields: [
              ["requests", 1],
              ["input_tokens", used.usage.inputTokens],
              ["output_tokens", used.usage.outputTokens],
              ["cached_input_tokens", used.usage.cachedInputTokens],
              ["reasoning_tokens", used.usage.reasoningTokens],
              ["nano_usd", nano],
            ],
            expiresAt: calendarWindow("day", this.admittedAt).end + LEDGER_KEEP_MS,
          };
    try {
      await this.store.settle(adjustments, tally, this.leaseId, now);
    } catch (err) {
      // The reservation stays charged as estimated and a lease lapses after its TTL.
      this.gate.settleFailed(err);
    }
  }
}

/** The ledger key of a consumer's usage on the UTC day containing `at`. */
export function ledgerKey(consumer: string, at: number): string {
  return `{c:${consumer}}:usage:${calendarWindow("day", at).id}`;
}
