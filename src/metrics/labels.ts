// Label values for request metrics. Every value comes from a fixed set or from the policy: a value
// a client (or a provider) could invent would give it a new series per request, and a scrape
// target that grows without bound. So a client's model name becomes `unknown` unless the policy
// names it, and a provider's response model is kept only for the first few values per target.
import type { Operation } from "../api/operations";
import type { CompiledPolicy, CompiledProvider } from "../policy/compile";

/** Prefix of the router's own metrics. */
export const PREFIX = "llm_router_";

export const UNKNOWN = "unknown";
/** A label with nothing to say: no route (refused before routing), no target, no status. */
export const NONE = "none";
/** Response models past a target's cap. */
export const OTHER = "other";

/** Distinct response models kept per target before the rest become `other`. */
export const RESPONSE_MODELS_PER_TARGET = 16;

/** A client's model name as a label: itself when the policy names it, else `unknown`. */
export function modelLabel(policy: CompiledPolicy, model: string | undefined): string {
  return model !== undefined && policy.knownModels.has(model) ? model : UNKNOWN;
}

/** `2xx` ... `5xx`, or `none` when there was no status. */
export function statusClass(status: number | undefined): string {
  if (status === undefined || !Number.isInteger(status) || status < 100 || status > 599) return NONE;
  return `${Math.floor(status / 100)}xx`;
}

/**
 * gen_ai.operation.name (OpenTelemetry GenAI well-known values): the Responses and Messages APIs
 * are chat operations.
 */
export function genAiOperation(operation: Operation | undefined): string {
  switch (operation) {
    case "completions":
      return "text_completion";
    case "embeddings":
      return "embeddings";
    case undefined:
      return UNKNOWN;
    default:
      return "chat";
  }
}

/**
 * gen_ai.provider.name: the OpenTelemetry well-known value for providers that have one; an
 * OpenAI-compatible server is named by its provider id in the policy (which server it is, is the
 * policy's knowledge, not the protocol's).
 */
export function genAiProvider(provider: CompiledProvider): string {
  switch (provider.config.type) {
    case "openai":
      return "openai";
    case "anthropic":
      return "anthropic";
    case "azure-openai":
      return "azure.ai.openai";
    default:
      return provider.id;
  }
}

/** Response models seen per target, capped: the first RESPONSE_MODELS_PER_TARGET values are labels, later ones `other`. */
export class ResponseModelLabels {
  readonly #seen = new Map<string, Set<string>>();

  label(targetId: string, model: string | undefined): string {
    if (model === undefined || model === "") return UNKNOWN;
    let set = this.#seen.get(targetId);
    if (set === undefined) {
      set = new Set();
      this.#seen.set(targetId, set);
    }
    if (set.has(model)) return model;
    if (set.size >= RESPONSE_MODELS_PER_TARGET) return OTHER;
    set.add(model);
    return model;
  }
}
