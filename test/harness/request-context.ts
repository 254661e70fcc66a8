// Per-harness settings and per-request state shared by the HCM, the filters and the router.
import type { AttributeFacts } from "./attributes";
import type { Bootstrap } from "./bootstrap";
import type { ExtProcConfig } from "./bootstrap-filters";
import type { ExtProcChannels, ExtProcRecord } from "./ext-proc-client";
import { ExtProcFilter } from "./ext-proc-filter";
import type { DynamicMetadata } from "./ext-proc-session";
import type { HeaderRecord } from "./header-map";
import type { RejectedMutation } from "./mutations";
import type { AttemptFailure } from "./retry";
import type { RouteDecision } from "./router";
import type { AttemptTransportSocket } from "./transport-socket";

export type { AttemptTransportSocket } from "./transport-socket";

export interface HarnessEnv {
  bootstrap: Bootstrap;
  channels: ExtProcChannels;
  /** ext_proc gRPC cluster name -> host:port. */
  extProcAddress: (grpcCluster: string) => string;
  /** Cluster name -> endpoint URLs (one per endpoint, or one for all); takes precedence. */
  clusterEndpoints: ReadonlyMap<string, readonly string[]>;
  /** Endpoint hostname -> URLs (the k-th endpoint of a cluster with that hostname gets the k-th). */
  hostEndpoints: ReadonlyMap<string, readonly string[]>;
  retryBackoffCapMs: number;
}

export interface AttemptRecord {
  cluster: string;
  /** The endpoint URL used, when the endpoint had an override (clusterEndpoints / hostEndpoints). */
  endpoint?: string;
  /** The chosen endpoint's `hostname` ("" when it has none). */
  endpointHostname?: string;
  /** The chosen endpoint's priority. */
  priority?: number;
  /** The chosen endpoint's filter_metadata (all namespaces). */
  hostMetadata?: Record<string, unknown>;
  /** The transport socket Envoy would use for this endpoint (not used: the harness speaks plain HTTP). */
  transportSocket?: AttemptTransportSocket;
  status?: number;
  error?: string;
  /** Why the router retried after this attempt, or gave up on it (undefined: it succeeded, or its response was not one the policy retries). */
  failure?: AttemptFailure;
  /** Modelled back-off before this attempt (retries only); the real sleep is capped by retryBackoffCapMs. */
  backoffMs?: number;
  /** Which back-off produced backoffMs. */
  backoff?: "exponential" | "rate_limited";
  /** Headers as sent upstream (no pseudo-headers; host and content-length as on the wire). */
  requestHeaders: HeaderRecord;
  /** :path as sent upstream. */
  path: string;
  body: Buffer;
}

export interface RequestContext {
  dynamicMetadata: DynamicMetadata;
  extProc: ExtProcRecord[];
  rejectedMutations: RejectedMutation[];
  notes: string[];
  attempts: AttemptRecord[];
  /** Every ext_proc filter instance of the request, closed when the request ends. */
  filters: ExtProcFilter[];
  /** The cached route; undefined after clear_route_cache until the next match. */
  route: RouteDecision | undefined;
  routeCleared: boolean;
  /** Why Envoy would have left this request hanging (see ext-proc-session.ts). */
  stalled?: string;
}

export function newRequestContext(): RequestContext {
  return {
    dynamicMetadata: {},
    extProc: [],
    rejectedMutations: [],
    notes: [],
    attempts: [],
    filters: [],
    route: undefined,
    routeCleared: false,
  };
}

export interface FilterPlacement {
  role: "downstream" | "upstream";
  name: string;
  config: ExtProcConfig;
  cluster?: string;
  attempt?: number;
  bufferLimitBytes: number;
  facts: () => AttributeFacts;
}

/** A fresh ext_proc filter instance with its own (lazily opened) Process stream and record. */
export function createExtProcFilter(env: HarnessEnv, ctx: RequestContext, placement: FilterPlacement): ExtProcFilter {
  const record: ExtProcRecord = {
    filter: placement.role,
    name: placement.name,
    metadata: Object.fromEntries(placement.config.initialMetadata),
    sent: [],
    received: [],
  };
  if (placement.cluster !== undefined) record.cluster = placement.cluster;
  if (placement.attempt !== undefined) record.attempt = placement.attempt;
  ctx.extProc.push(record);
  const hcm = env.bootstrap.listener.hcm;
  const filter = new ExtProcFilter(
    {
      role: placement.role,
      config: placement.config,
      address: env.extProcAddress(placement.config.grpcCluster),
      channels: env.channels,
      record,
      dynamicMetadata: ctx.dynamicMetadata,
      maxHeadersCount: hcm.maxHeadersCount,
      maxHeadersKb: hcm.maxRequestHeadersKb,
      facts: placement.facts,
      onRejected: (r) => ctx.rejectedMutations.push(r),
      onNote: (n) => ctx.notes.push(n),
    },
    placement.bufferLimitBytes,
  );
  ctx.filters.push(filter);
  return filter;
}
