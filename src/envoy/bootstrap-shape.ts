// Reading an Envoy bootstrap as plain YAML data: the type URLs llm-router cares about and tolerant
// accessors (a missing or mistyped key reads as empty, so checks report instead of throwing).
// Shared by render-envoy (render.ts) and validate (bootstrap-check.ts).
import { PHASE_METADATA_KEY } from "../phases/gateway-headers";

export const HCM_NAME = "envoy.filters.network.http_connection_manager";
export const EXT_PROC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor";
export const UPSTREAM_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
export const CODEC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec";

export type Obj = Record<string, unknown>;
export const obj = (v: unknown): Obj => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : {});
export const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** The phase an ext_proc filter serves, from its grpc_service initial metadata. */
export function phaseOf(extProc: Obj): string | undefined {
  for (const m of arr(obj(extProc.grpc_service).initial_metadata)) {
    if (obj(m).key === PHASE_METADATA_KEY) return String(obj(m).value);
  }
  return undefined;
}

/** The typed_configs of the ext_proc filters in an http_filters list. */
export function extProcConfigs(filters: unknown[]): Obj[] {
  return filters.map((f) => obj(obj(f).typed_config)).filter((c) => c["@type"] === EXT_PROC_TYPE);
}
