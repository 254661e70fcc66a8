// An ordered, multi-valued header map with lowercase names, like Envoy's HeaderMapImpl.
// Repeated headers stay separate entries (Envoy sends one HeaderValue per entry to ext_proc).

export type HeaderRecord = Record<string, string | string[]>;

export class HeaderMap {
  private list: Array<[string, string]> = [];

  static fromRecord(record: HeaderRecord): HeaderMap {
    const map = new HeaderMap();
    for (const [name, value] of Object.entries(record)) {
      for (const v of Array.isArray(value) ? value : [value]) map.add(name, v);
    }
    return map;
  }

  get size(): number {
    return this.list.length;
  }

  entries(): ReadonlyArray<readonly [string, string]> {
    return this.list;
  }

  has(name: string): boolean {
    const key = name.toLowerCase();
    return this.list.some(([k]) => k === key);
  }

  get(name: string): string | undefined {
    const key = name.toLowerCase();
    return this.list.find(([k]) => k === key)?.[1];
  }

  getAll(name: string): string[] {
    const key = name.toLowerCase();
    return this.list.filter(([k]) => k === key).map(([, v]) => v);
  }

  /** Values of a repeated header joined with "," as Envoy's route matcher sees them. */
  getJoined(name: string): string | undefined {
    const all = this.getAll(name);
    return all.length === 0 ? undefined : all.join(",");
  }

  add(name: string, value: string): void {
    this.list.push([name.toLowerCase(), value]);
  }

  /** Replaces every value of `name` with one value, kept at the first occurrence's position. */
  set(name: string, value: string): void {
    const key = name.toLowerCase();
    let replaced = false;
    const next: Array<[string, string]> = [];
    for (const entry of this.list) {
      if (entry[0] !== key) next.push(entry);
      else if (!replaced) {
        next.push([key, value]);
        replaced = true;
      }
    }
    if (!replaced) next.push([key, value]);
    this.list = next;
  }

  /** Pseudo-headers (":path"...) go in front, as in Envoy's maps. */
  setPseudo(name: string, value: string): void {
    if (this.has(name)) this.set(name, value);
    else this.list.unshift([name, value]);
  }

  remove(name: string): number {
    const key = name.toLowerCase();
    const before = this.list.length;
    this.list = this.list.filter(([k]) => k !== key);
    return before - this.list.length;
  }

  clone(): HeaderMap {
    const copy = new HeaderMap();
    copy.list = this.list.map(([k, v]) => [k, v]);
    return copy;
  }

  /** Envoy's HeaderMap::byteSize(): bytes of all names and values. */
  byteSize(): number {
    return this.list.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  }

  /** Plain object: one string per header, an array when the header repeats. */
  toRecord(opts: { withPseudo?: boolean } = {}): HeaderRecord {
    const out: HeaderRecord = {};
    for (const [k, v] of this.list) {
      if (!opts.withPseudo && k.startsWith(":")) continue;
      const prev = out[k];
      if (prev === undefined) out[k] = v;
      else out[k] = Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    return out;
  }
}
