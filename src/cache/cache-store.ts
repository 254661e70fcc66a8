// Where cached answers live: this process's memory (one replica) or Redis (shared by replicas).
// Besides answers, a store keeps fill claims: the mark one request leaves while it fetches an answer
// that identical requests may wait for (response-cache.ts).

/** An answer as the client received it. */
export interface CachedAnswer {
  body: Buffer;
  contentType: string;
  /** The target that produced it (x-llm-router-target on hits where the route shows it). */
  target: string;
  /** Epoch ms when stored (the Age header of hits). */
  storedAt: number;
}

export interface CacheStore {
  get(key: string): Promise<CachedAnswer | undefined>;
  set(key: string, answer: CachedAnswer, ttlMs: number): Promise<void>;
  /** Claims the right to fill `key` for ttlMs; false while another request holds the claim. */
  claim(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** Drops the claim if `token` still holds it. */
  release(key: string, token: string): Promise<void>;
  close(): Promise<void>;
}

interface Entry {
  answer: CachedAnswer;
  expiresAt: number;
  bytes: number;
}

/** Per-entry bookkeeping counted against the byte budget besides the body. */
const ENTRY_OVERHEAD_BYTES = 256;
const MAX_CLAIMS = 10_000;

/**
 * Answers in a Map used as an LRU list (insertion order; a read moves the entry to the end), bounded
 * by the bytes of the bodies it holds. Expired entries go when read or when space is needed.
 */
export class MemoryCacheStore implements CacheStore {
  readonly #entries = new Map<string, Entry>();
  readonly #claims = new Map<string, { token: string; expiresAt: number }>();
  #bytes = 0;
  evictions = 0;

  constructor(
    readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): Promise<CachedAnswer | undefined> {
    const e = this.#entries.get(key);
    if (e === undefined) return Promise.resolve(undefined);
    this.#entries.delete(key);
    if (e.expiresAt <= this.now()) {
      this.#bytes -= e.bytes;
      return Promise.resolve(undefined);
    }
    this.#entries.set(key, e);
    return Promise.resolve(e.answer);
  }

  set(key: string, answer: CachedAnswer, ttlMs: number): Promise<void> {
    const bytes = answer.body.length + answer.contentType.length + answer.target.length + key.length + ENTRY_OVERHEAD_BYTES;
    this.#drop(key);
    if (bytes > this.maxBytes) return Promise.resolve();
    const now = this.now();
    for (const [k, e] of this.#entries) {
      if (this.#bytes + bytes <= this.maxBytes) break;
      if (e.expiresAt > now) this.evictions++;
      this.#drop(k);
    }
    this.#entries.set(key, { answer, expiresAt: now + ttlMs, bytes });
    this.#bytes += bytes;
    return Promise.resolve();
  }

  claim(key: string, token: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    const held = this.#claims.get(key);
    if (held !== undefined && held.expiresAt > now) return Promise.resolve(false);
    // Claims are released when their request ends; this sweep only bounds what crashes could leave.
    if (this.#claims.size >= MAX_CLAIMS) for (const [k, c] of this.#claims) if (c.expiresAt <= now) this.#claims.delete(k);
    this.#claims.set(key, { token, expiresAt: now + ttlMs });
    return Promise.resolve(true);
  }

  release(key: string, token: string): Promise<void> {
    if (this.#claims.get(key)?.token === token) this.#claims.delete(key);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#entries.clear();
    this.#claims.clear();
    this.#bytes = 0;
    return Promise.resolve();
  }

  #drop(key: string): void {
    const e = this.#entries.get(key);
    if (e === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= e.bytes;
  }
}
