// The router phase's decision travels to the upstream phase (possibly on another replica) as a
// signed token: `v1.<base64url(JSON)>.<base64url(HMAC-SHA256)>`. Replicas share the HMAC keys; a
// client can neither forge a token nor alter one (e.g. to pick another target or consumer).
// Several keys may be configured for rotation: the first signs, any verifies.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Operation } from "../api/operations";

export interface RoutingContext {
  /** Request id (x-request-id) for correlating both phases' logs. */
  rid: string;
  /** Consumer id and team. */
  c: string;
  tm?: string;
  /** Route name; absent for passthrough. */
  r?: string;
  /** Target id chosen by the router phase (the first of the chain order). */
  t: string;
  /** The chain order of the chosen cluster: targets an attempt may reach, priority 0 first. */
  ch: string[];
  /** The chosen cluster. */
  cl: string;
  /** Operation; absent for passthrough. */
  op?: Operation;
  /** Original path and query, so every attempt starts from the client's request. */
  p: string;
  /** Model the client asked for. */
  m?: string;
  /** 1 when the client asked for a stream (Gemini and Bedrock take streams on another path). */
  s?: 1;
  /** Client's anthropic-version header, if any. */
  av?: string;
  /** Client's anthropic-beta header, if any. */
  ab?: string;
  /** Issued at (unix ms). */
  iat: number;
}

export const MIN_KEY_BYTES = 32;

export class ContextSigner {
  readonly #keys: Buffer[];
  constructor(
    keys: readonly Buffer[],
    private readonly maxAgeMs: number,
  ) {
    if (keys.length === 0) throw new Error("at least one HMAC key is required");
    for (const k of keys) {
      if (k.length < MIN_KEY_BYTES) throw new Error(`HMAC keys must be at least ${MIN_KEY_BYTES} bytes`);
    }
    this.#keys = [...keys];
  }

  sign(ctx: RoutingContext): string {
    const payload = Buffer.from(JSON.stringify(ctx)).toString("base64url");
    return `v1.${payload}.${this.#mac(this.#keys[0]!, payload).toString("base64url")}`;
  }

  /** Returns the context, or a reason it is not acceptable (never throws on client input). */
  verify(token: string, now: number): RoutingContext | { invalid: string } {
    const parts = token.split(".");
    if (parts.length !== 3 || parts[0] !== "v1") return { invalid: "malformed" };
    const [, payload, sig] = parts as [string, string, string];
    const given = Buffer.from(sig, "base64url");
    const ok = this.#keys.some((k) => {
      const expected = this.#mac(k, payload);
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
    if (!ok) return { invalid: "bad signature" };
    let ctx: unknown;
    try {
      ctx = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    } catch {
      return { invalid: "malformed payload" };
    }
    if (!isContext(ctx)) return { invalid: "malformed payload" };
    if (now - ctx.iat > this.maxAgeMs || ctx.iat - now > 60_000) return { invalid: "expired" };
    return ctx;
  }

  #mac(key: Buffer, payload: string): Buffer {
    return createHmac("sha256", key).update(payload).digest();
  }
}

function isContext(v: unknown): v is RoutingContext {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.rid === "string" &&
    typeof o.c === "string" &&
    typeof o.t === "string" &&
    typeof o.cl === "string" &&
    Array.isArray(o.ch) &&
    o.ch.every((x) => typeof x === "string") &&
    typeof o.p === "string" &&
    typeof o.iat === "number"
  );
}

/** Parses LLM_ROUTER_HMAC_KEYS-style text: comma-separated keys, each hex (64+ chars) or raw text. */
export function parseKeys(text: string): Buffer[] {
  return text
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k !== "")
    .map((k) => (/^[0-9a-fA-F]{64,}$/.test(k) && k.length % 2 === 0 ? Buffer.from(k, "hex") : Buffer.from(k, "utf8")));
}
