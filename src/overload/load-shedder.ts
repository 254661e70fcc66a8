// Load shedding (policy gateway.overload): a process past its share of the replica's in-flight
// limit, or whose event loop is falling behind, refuses new requests at their request headers,
// before reading or parsing a body, with 503 `overloaded` and retry-after in the caller's format.
// Refusing early is the point: a request taken on by a saturated process waits behind every other
// one, and so do they, until Envoy's timeouts fail them all; a refused one can go to another
// replica or come back.
//
// Requests in flight are counted per process (the router phase's streams, from admission to the
// stream's end: a long stream holds its place for its whole answer); `serve --workers N` gives
// each process 1/N of the replica's limit, rounded up. The event-loop delay is Node's own
// histogram (perf_hooks.monitorEventLoopDelay), averaged over each second and less its sampling
// interval: a single long pause (a major GC) moves it less than a loop that stays behind.
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import { GatewayError } from "../api/errors";
import type { OverloadSettings } from "../policy/compile";

export type ShedReason = "in-flight" | "event-loop-delay";

/** Client-safe: says which limit, not the figures. */
const SHED_DETAIL: Record<ShedReason, string> = {
  "in-flight": "Too many requests are in flight on this replica.",
  "event-loop-delay": "This replica is short of CPU.",
};

/** Why a request is refused, or undefined to take it. Pure: the table tests' subject. */
export function shedReason(s: OverloadSettings, now: { inFlight: number; processes: number; eventLoopDelayMs: number | undefined }): ShedReason | undefined {
  if (s.maxInFlight !== undefined && now.inFlight >= Math.ceil(s.maxInFlight / now.processes)) return "in-flight";
  if (s.maxEventLoopDelayMs !== undefined && now.eventLoopDelayMs !== undefined && now.eventLoopDelayMs > s.maxEventLoopDelayMs) return "event-loop-delay";
  return undefined;
}

/** How often the delay histogram is read (a window), and its sampling interval, ms. */
const WINDOW_MS = 1000;
const RESOLUTION_MS = 10;

export interface Admission {
  /** Gives the place back (once; later calls do nothing). */
  release(): void;
}

const NOT_COUNTED: Admission = { release: () => undefined };

export class LoadShedder {
  #inFlight = 0;
  #histogram: IntervalHistogram | undefined;
  #timer: NodeJS.Timeout | undefined;
  #delayMs: number | undefined;

  constructor(
    /** Processes serving this replica (`serve --workers N`: N). */
    private readonly processes = 1,
    private readonly windowMs = WINDOW_MS,
  ) {}

  /** Requests this process holds now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The last window's average event-loop delay, ms; undefined until one was measured (or when no policy asks for it). */
  get eventLoopDelayMs(): number | undefined {
    return this.#delayMs;
  }

  /**
   * Takes a request on, or throws `overloaded` (with retry-after) when the policy's limits say so.
   * The caller releases the admission when the request ends.
   */
  admit(settings: OverloadSettings | undefined): Admission {
    if (settings === undefined) return NOT_COUNTED;
    if (settings.maxEventLoopDelayMs !== undefined) this.#monitor();
    const reason = shedReason(settings, { inFlight: this.#inFlight, processes: this.processes, eventLoopDelayMs: this.#delayMs });
    if (reason !== undefined) throw new GatewayError("overloaded", SHED_DETAIL[reason], [["retry-after", String(settings.retryAfterS)]]);
    this.#inFlight++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#inFlight--;
      },
    };
  }

  /** Starts measuring the event-loop delay (first asked for by a policy; it keeps running after a reload that drops it: it costs one timer). */
  #monitor(): void {
    if (this.#histogram !== undefined) return;
    const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    h.enable();
    this.#histogram = h;
    // Windows are differences of the running totals, never a reset: after a reset the histogram
    // drops the next sample, and that is the long one when the window ends during a stall.
    let count = 0;
    let sumNs = 0;
    this.#timer = setInterval(() => {
      const n = h.count;
      const sum = h.mean * n;
      // Each sample is the time between two ticks of a RESOLUTION_MS timer: the delay is the excess.
      // No sample since the last window: the loop stalled past it; the next window will hold it.
      if (n > count) this.#delayMs = Math.max(0, (sum - sumNs) / (n - count) / 1e6 - RESOLUTION_MS);
      count = n;
      sumNs = sum;
    }, this.windowMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#histogram?.disable();
    this.#histogram = undefined;
    this.#timer = undefined;
  }
}
