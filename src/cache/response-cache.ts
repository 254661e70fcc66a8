// The response cache between the router phase and a store (memory or Redis): lookups, fills, and
// stampede protection.
//
// A miss claims the right to fill its key. Identical requests that arrive while the claim is held
// wait for the answer (up to the route's coalesceWait) instead of calling the provider too: waiters
// in this process are woken the moment the answer is stored here; waiters on other replicas look
// again after 20 ms, doubling to at most 250 ms. When the filler fails, its claim is released and
// one waiter takes it over; when the wait runs out, the waiter goes upstream itself.
//
// The cache never fails a request: a store error is a miss (logged once per interval, counted).
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { ThrottledErrorLog } from "../log";
import type { CachedAnswer, CacheStore } from "./cache-store";

const ERROR_LOG_INTERVAL_MS = 30_000;
/** Margin between the longest wait and the message timeout the router phase asks of Envoy for it. */
export const CACHE_WAIT_MARGIN_MS = 1000;
const FIRST_POLL_MS = 20;
const MAX_POLL_MS = 250;

export interface CacheStats {
  hits: number;
  /** Hits that waited for another request's answer. */
  coalescedHits: number;
  misses: number;
  /** Answers stored. */
  fills: number;
  /** Waits that ran out before an answer came. */
  waitTimeouts: number;
  storeErrors: number;
}

export type CacheLookup = { kind: "hit"; answer: CachedAnswer; coalesced: boolean } | { kind: "miss"; fill: CacheFill };

export interface LookupOptions {
  /** False for Cache-Control: no-cache (go upstream, store the fresh answer). */
  read: boolean;
  /** How long to wait for an identical request's answer; 0: never wait. */
  waitMs: number;
  /** Called once, before waiting starts (the router phase asks Envoy for more time). */
  onWait(): void;
}

export class ResponseCache {
  readonly stats: CacheStats = { hits: 0, coalescedHits: 0, misses: 0, fills: 0, waitTimeouts: 0, storeErrors: 0 };
  /** Requests of this process waiting for a key, woken when it is filled or released here. */
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #errorLog: ThrottledErrorLog;

  constructor(
    readonly store: CacheStore,
    log: Logger,
  ) {
    this.#errorLog = new ThrottledErrorLog(log, ERROR_LOG_INTERVAL_MS, "response cache store failed: answering as misses");
  }

  async lookup(key: string, opts: LookupOptions): Promise<CacheLookup> {
    try {
      if (opts.read) {
        const answer = await this.store.get(key);
        if (answer !== undefined) return this.#hit(answer, false);
      }
      if (opts.waitMs <= 0) return this.#miss(key, undefined);
      const token = randomUUID();
      if (await this.store.claim(key, token, opts.waitMs)) return this.#miss(key, token);
      opts.onWait();
      return await this.#wait(key, token, opts.waitMs);
    } catch (err) {
      this.#failed(err);
      return this.#miss(key, undefined);
    }
  }

  async #wait(key: string, token: string, waitMs: number): Promise<CacheLookup> {
    const deadline = Date.now() + waitMs;
    let delay = FIRST_POLL_MS;
    for (;;) {
      await this.#nap(key, Math.min(delay, deadline - Date.now()));
      const answer = await this.store.get(key);
      if (answer !== undefined) return this.#hit(answer, true);
      if (Date.now() >= deadline) {
        this.stats.waitTimeouts++;
        return this.#miss(key, undefined);
      }
      // The claim is gone without an answer (the filler failed) or lapsed: take it over.
      if (await this.store.claim(key, token, Math.max(1, deadline - Date.now()))) return this.#miss(key, token);
      delay = Math.min(delay * 2, MAX_POLL_MS);
    }
  }

  #nap(key: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(key);
      if (set === undefined) this.#waiters.set(key, (set = new Set()));
      const waiters = set;
      const wake = () => {
        clearTimeout(timer);
        waiters.delete(wake);
        if (waiters.size === 0 && this.#waiters.get(key) === waiters) this.#waiters.delete(key);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(0, ms));
      waiters.add(wake);
    });
  }

  #wake(key: string): void {
    const set = this.#waiters.get(key);
    if (set !== undefined) for (const wake of [...set]) wake();
  }

  #hit(answer: CachedAnswer, coalesced: boolean): CacheLookup {
    this.stats.hits++;
    if (coalesced) this.stats.coalescedHits++;
    return { kind: "hit", answer, coalesced };
  }

  #miss(key: string, token: string | undefined): CacheLookup {
    this.stats.misses++;
    return { kind: "miss", fill: new CacheFill(this, key, token) };
  }

  /** Stores an answer (never throws) and lets waiters see it. */
  async storeAnswer(key: string, token: string | undefined, answer: CachedAnswer, ttlMs: number): Promise<void> {
    try {
      await this.store.set(key, answer, ttlMs);
      this.stats.fills++;
      if (token !== undefined) await this.store.release(key, token);
    } catch (err) {
      this.#failed(err);
    } finally {
      this.#wake(key);
    }
  }

  /** Gives the claim up (never throws) so that a waiter can go upstream at once. */
  async releaseClaim(key: string, token: string): Promise<void> {
    try {
      await this.store.release(key, token);
    } catch (err) {
      this.#failed(err);
    } finally {
      this.#wake(key);
    }
  }

  #failed(err: unknown): void {
    this.stats.storeErrors++;
    this.#errorLog.error(err);
  }

}

/** A miss's right (and duty) to store the answer it fetches, or to give the claim up. */
export class CacheFill {
  #done = false;

  constructor(
    private readonly cache: ResponseCache,
    readonly key: string,
    /** The claim held; undefined when the request fills without one (waiting off, or it timed out). */
    private readonly token: string | undefined,
  ) {}

  get done(): boolean {
    return this.#done;
  }

  store(answer: CachedAnswer, ttlMs: number): Promise<void> {
    if (this.#done) return Promise.resolve();
    this.#done = true;
    return this.cache.storeAnswer(this.key, this.token, answer, ttlMs);
  }

  abandon(): Promise<void> {
    if (this.#done) return Promise.resolve();
    this.#done = true;
    return this.token === undefined ? Promise.resolve() : this.cache.releaseClaim(this.key, this.token);
  }
}
