// Request headers as Envoy sends them to ext_proc: lowercase names, one entry per occurrence.
// Kept as a small map plus the names seen more than once, so checks for duplicated security-relevant
// headers cost nothing extra.

export class RequestHeaders {
  readonly #values = new Map<string, string>();
  readonly #repeated = new Set<string>();

  add(name: string, value: string): void {
    const key = name.toLowerCase();
    const prev = this.#values.get(key);
    if (prev === undefined) {
      this.#values.set(key, value);
    } else {
      this.#repeated.add(key);
      // RFC 9110 list semantics for display; security checks use isRepeated() instead.
      this.#values.set(key, `${prev}, ${value}`);
    }
  }

  get(name: string): string | undefined {
    return this.#values.get(name);
  }

  isRepeated(name: string): boolean {
    return this.#repeated.has(name);
  }

  names(): IterableIterator<string> {
    return this.#values.keys();
  }

  entries(): IterableIterator<[string, string]> {
    return this.#values.entries();
  }

  static from(record: Record<string, string>): RequestHeaders {
    const h = new RequestHeaders();
    for (const [k, v] of Object.entries(record)) h.add(k, v);
    return h;
  }
}
