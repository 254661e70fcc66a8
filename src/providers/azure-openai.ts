// Azure OpenAI: the deployment is in the path, the API version in the query, the key in `api-key`.
// https://learn.microsoft.com/azure/ai-services/openai/reference
import type { Operation } from "../api/operations";
import type { ProviderConfig } from "../policy/schema";
import type { ProviderAdapter } from "./types";

type AzureConfig = Extract<ProviderConfig, { type: "azure-openai" }>;

const DEPLOYMENT_SUFFIX: Partial<Record<Operation, string>> = {
  "chat.completions": "/chat/completions",
  completions: "/completions",
  embeddings: "/embeddings",
};

export const azureOpenaiAdapter: ProviderAdapter<AzureConfig> = {
  type: "azure-openai",
  operations: new Set(["chat.completions", "completions", "embeddings", "responses"]),
  rewrite({ provider, credential, target, operation, originalPathname }) {
    const version = `api-version=${encodeURIComponent(provider.apiVersion)}`;
    const deployment = encodeURIComponent(target.deployment ?? target.model);
    const suffix = operation ? DEPLOYMENT_SUFFIX[operation] : undefined;
    let path: string;
    if (suffix) path = `/openai/deployments/${deployment}${suffix}?${version}`;
    // The Responses API is not per deployment on Azure: the deployment goes in the body's model.
    else if (operation === "responses") path = `/openai/responses?${version}`;
    // Passthrough: /v1/<rest> -> /openai/<rest>.
    else path = `/openai${originalPathname.startsWith("/v1/") ? originalPathname.slice(3) : originalPathname}?${version}`;
    const setHeaders: Array<[string, string]> = credential ? [["api-key", credential.reveal()]] : [];
    return { path, setHeaders };
  },
};
