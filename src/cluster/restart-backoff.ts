// When a worker of `serve --workers N` dies, how long before its replacement starts, and when to
// give up: a worker that keeps dying (a bug on a request path, memory, a broken host) must not be
// restarted in a tight loop, and a primary that cannot keep its workers up should exit non-zero so
// that its supervisor (Kubernetes, systemd) sees the failure instead of a half-serving process.

/** Exits of one worker slot this recent count towards its backoff and the crash-loop limit. */
export const CRASH_WINDOW_MS = 60_000;
/** This many unexpected exits of one slot within the window: give up. */
export const CRASH_LIMIT = 5;
/** The first restart waits this long, each further one in the window twice as long. */
export const FIRST_DELAY_MS = 250;
export const MAX_DELAY_MS = 10_000;

export type AfterCrash = { restartInMs: number; crashesInWindow: number } | { giveUp: true; crashesInWindow: number };

/**
 * The decision after a slot's worker exited unexpectedly at `now`; `history` holds the slot's
 * earlier unexpected exits (ms timestamps) and gets this one, pruned to the window.
 */
export function afterCrash(history: number[], now: number): AfterCrash {
  history.push(now);
  while (history.length > 0 && history[0]! <= now - CRASH_WINDOW_MS) history.shift();
  const n = history.length;
  if (n >= CRASH_LIMIT) return { giveUp: true, crashesInWindow: n };
  return { restartInMs: Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (n - 1)), crashesInWindow: n };
}
