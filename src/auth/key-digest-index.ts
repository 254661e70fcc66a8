import { timingSafeEqual } from "node:crypto";
import type { CompiledConsumer } from "../policy/compile";

/**
 * Key digests indexed by their first 8 bytes; the full 32-byte digest is then compared in constant
 * time. The raw key is never compared at all, only its SHA-256.
 */
export class KeyDigestIndex {
  readonly #buckets = new Map<string, Array<{ digest: Buffer; consumer: CompiledConsumer }>>();

  add(hexDigest: string, consumer: CompiledConsumer): boolean {
    const digest = Buffer.from(hexDigest, "hex");
    const prefix = hexDigest.slice(0, 16);
    const bucket = this.#buckets.get(prefix) ?? [];
    if (bucket.some((e) => timingSafeEqual(e.digest, digest))) return false;
    bucket.push({ digest, consumer });
    this.#buckets.set(prefix, bucket);
    return true;
  }

  find(digest: Buffer): CompiledConsumer | undefined {
    const bucket = this.#buckets.get(digest.subarray(0, 8).toString("hex"));
    if (bucket === undefined) return undefined;
    let found: CompiledConsumer | undefined;
    for (const e of bucket) if (timingSafeEqual(e.digest, digest)) found = e.consumer;
    return found;
  }
}
