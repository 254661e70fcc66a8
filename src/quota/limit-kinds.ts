// The kinds of limit a rule can set, each with the algorithm that keeps it and its unit. Money is
// kept in integer nano-dollars so that sums stay exact (to far below a cent) in Redis and in JS.
export const LIMIT_KINDS = ["requests_per_minute", "tokens_per_minute", "tokens_per_day", "usd_per_day", "usd_per_month", "concurrent"] as const;
export type LimitKind = (typeof LIMIT_KINDS)[number];

export const NANO_USD_PER_USD = 1e9;
export const MINUTE_MS = 60_000;

/** What a kind counts: drives which x-ratelimit-* header family reports it. */
export type LimitUnit = "requests" | "tokens" | "usd" | "concurrent";

export const KIND_UNIT: Readonly<Record<LimitKind, LimitUnit>> = {
  requests_per_minute: "requests",
  tokens_per_minute: "tokens",
  tokens_per_day: "tokens",
  usd_per_day: "usd",
  usd_per_month: "usd",
  concurrent: "concurrent",
};

/** Short key segment per kind (keys stay short in Redis). */
export const KIND_KEY: Readonly<Record<LimitKind, string>> = {
  requests_per_minute: "rpm",
  tokens_per_minute: "tpm",
  tokens_per_day: "tpd",
  usd_per_day: "upd",
  usd_per_month: "upm",
  concurrent: "cc",
};

/** Human wording for 429 messages. */
export function describeLimit(kind: LimitKind, limit: number): string {
  switch (kind) {
    case "requests_per_minute":
      return `${limit} requests per minute`;
    case "tokens_per_minute":
      return `${limit} tokens per minute`;
    case "tokens_per_day":
      return `${limit} tokens per day (UTC)`;
    case "usd_per_day":
      return `$${(limit / NANO_USD_PER_USD).toFixed(2)} per day (UTC)`;
    case "usd_per_month":
      return `$${(limit / NANO_USD_PER_USD).toFixed(2)} per month (UTC)`;
    case "concurrent":
      return `${limit} requests in flight`;
  }
}

/** [start, end) of the UTC calendar day or month containing `now` (unix ms), and its key id. */
export function calendarWindow(period: "day" | "month", now: number): { id: string; start: number; end: number } {
  const d = new Date(now);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  if (period === "day") {
    const day = d.getUTCDate();
    const start = Date.UTC(y, m, day);
    return { id: `d${y}${pad(m + 1)}${pad(day)}`, start, end: Date.UTC(y, m, day + 1) };
  }
  return { id: `m${y}${pad(m + 1)}`, start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) };
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * A duration the way OpenAI writes x-ratelimit-reset-* ("20ms", "1s", "6m0s", "1h2m3s"): whole
 * milliseconds under a second, else seconds (fraction trimmed) with minutes and hours in front.
 */
export function resetDuration(ms: number): string {
  const v = Math.max(0, Math.ceil(ms));
  if (v < 1000) return `${v}ms`;
  const h = Math.floor(v / 3_600_000);
  const m = Math.floor((v % 3_600_000) / 60_000);
  const s = (v % 60_000) / 1000;
  const secs = `${Number.isInteger(s) ? s : s.toFixed(3).replace(/0+$/, "")}s`;
  if (h > 0) return `${h}h${m}m${secs}`;
  if (m > 0) return `${m}m${secs}`;
  return secs;
}
