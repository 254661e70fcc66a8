import type { Logger } from "pino";
import type { ResponseCache } from "../cache/response-cache";
import type { ContextSigner } from "../context/routing-context";
import type { CompiledPolicy } from "../policy/compile";
import type { QuotaGate } from "../quota/quota-gate";
import type { LoadShedder } from "../overload/load-shedder";
import type { TargetObservations } from "../routing/observations";
import type { RequestSink } from "./request-summary";

/** What a phase needs from the process; passed in so phases stay testable without I/O. */
export interface PhaseDeps {
  /** The policy a stream starts with; it keeps it until it ends (hot reload swaps this). */
  currentPolicy(): CompiledPolicy;
  signer: ContextSigner;
  /** Largest request body accepted (decoded), in bytes. */
  maxBodyBytes: number;
  log: Logger;
  now(): number;
  /** This replica's view of each target (latency, in flight, failures, cooldowns). */
  observations: TargetObservations;
  /** Uniform [0, 1) for strategies that explore (injected for tests). */
  random(): number;
  /** Quotas, budgets and the usage ledger. */
  quota: QuotaGate;
  /** Answers of routes with a cache. */
  cache: ResponseCache;
  /** Where finished requests and attempts are reported (metrics, request log). */
  requests: RequestSink;
  /** Admits requests under the policy's overload limits (gateway.overload). */
  load: LoadShedder;
  /**
   * Up to this many bytes of each request and answer body are logged at debug level; 0 (the
   * default) never logs a body. Bodies hold prompts and answers: an explicit debugging choice.
   */
  logBodyBytes?: number;
}
