import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { inspect } from "node:util";
import type { Operation } from "../src/api/operations";
import type { ProviderConfig } from "../src/policy/schema";
import { Secret } from "../src/policy/secret";
import { adapterFor } from "../src/providers/registry";

const key = new Secret("PROVIDER-KEY");

describe("provider rewrites", () => {
  const table: Array<{ name: string; provider: ProviderConfig; op: Operation | undefined; path: string; query?: string; model?: string; deployment?: string; stream?: boolean; av?: string; ab?: string; credential?: Secret; expectPath: string; expectHeaders: Record<string, string> }> = [
    { name: "openai chat", provider: { type: "openai", basePath: "/v1" }, op: "chat.completions", path: "/v1/chat/completions", expectPath: "/v1/chat/completions", expectHeaders: { authorization: "Bearer PROVIDER-KEY" } },
    { name: "openai keeps the query", provider: { type: "openai", basePath: "/v1" }, op: "responses", path: "/v1/responses", query: "?x=1", expectPath: "/v1/responses?x=1", expectHeaders: { authorization: "Bearer PROVIDER-KEY" } },
    { name: "openai org and project", provider: { type: "openai", basePath: "/v1", organization: "org-1", project: "proj-1" }, op: "embeddings", path: "/v1/embeddings", expectPath: "/v1/embeddings", expectHeaders: { authorization: "Bearer PROVIDER-KEY", "openai-organization": "org-1", "openai-project": "proj-1" } },
    { name: "openai-compatible base path", provider: { type: "openai-compatible", basePath: "/api/v1" }, op: "chat.completions", path: "/v1/chat/completions", expectPath: "/api/v1/chat/completions", expectHeaders: { authorization: "Bearer PROVIDER-KEY" } },
    { name: "openai-compatible without credential", provider: { type: "openai-compatible", basePath: "/v1" }, op: "completions", path: "/v1/completions", credential: undefined, expectPath: "/v1/completions", expectHeaders: {} },
    { name: "openai passthrough", provider: { type: "openai", basePath: "/v1" }, op: undefined, path: "/v1/models/gpt-4o", expectPath: "/v1/models/gpt-4o", expectHeaders: { authorization: "Bearer PROVIDER-KEY" } },
    { name: "azure chat", provider: { type: "azure-openai", apiVersion: "2024-10-21" }, op: "chat.completions", path: "/v1/chat/completions", query: "?ignored=1", model: "gpt-4o", deployment: "prod", expectPath: "/openai/deployments/prod/chat/completions?api-version=2024-10-21", expectHeaders: { "api-key": "PROVIDER-KEY" } },
    { name: "azure embeddings, deployment defaults to model", provider: { type: "azure-openai", apiVersion: "2024-10-21" }, op: "embeddings", path: "/v1/embeddings", model: "text-embedding-3-small", expectPath: "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21", expectHeaders: { "api-key": "PROVIDER-KEY" } },
    { name: "azure responses", provider: { type: "azure-openai", apiVersion: "2025-04-01-preview" }, op: "responses", path: "/v1/responses", expectPath: "/openai/responses?api-version=2025-04-01-preview", expectHeaders: { "api-key": "PROVIDER-KEY" } },
    { name: "azure passthrough", provider: { type: "azure-openai", apiVersion: "2024-10-21" }, op: undefined, path: "/v1/models", expectPath: "/openai/models?api-version=2024-10-21", expectHeaders: { "api-key": "PROVIDER-KEY" } },
    { name: "anthropic default version", provider: { type: "anthropic", anthropicVersion: "2023-06-01" }, op: "messages", path: "/v1/messages", expectPath: "/v1/messages", expectHeaders: { "x-api-key": "PROVIDER-KEY", "anthropic-version": "2023-06-01" } },
    { name: "anthropic reached by a translated OpenAI request", provider: { type: "anthropic", anthropicVersion: "2023-06-01" }, op: "messages", path: "/v1/chat/completions", expectPath: "/v1/messages", expectHeaders: { "x-api-key": "PROVIDER-KEY", "anthropic-version": "2023-06-01" } },
    { name: "gemini generateContent", provider: { type: "gemini", apiVersion: "v1beta" }, op: "chat.completions", path: "/v1/chat/completions", model: "gemini-2.0-flash", expectPath: "/v1beta/models/gemini-2.0-flash:generateContent", expectHeaders: { "x-goog-api-key": "PROVIDER-KEY" } },
    { name: "gemini stream, models/ prefix", provider: { type: "gemini", apiVersion: "v1" }, op: "chat.completions", path: "/v1/chat/completions", model: "models/gemini-2.5-pro", stream: true, expectPath: "/v1/models/gemini-2.5-pro:streamGenerateContent?alt=sse", expectHeaders: { "x-goog-api-key": "PROVIDER-KEY" } },
    { name: "gemini embeddings", provider: { type: "gemini", apiVersion: "v1beta" }, op: "embeddings", path: "/v1/embeddings", model: "text-embedding-004", expectPath: "/v1beta/models/text-embedding-004:batchEmbedContents", expectHeaders: { "x-goog-api-key": "PROVIDER-KEY" } },
    { name: "bedrock with an API key", provider: { type: "bedrock", region: "eu-west-1" }, op: "chat.completions", path: "/v1/chat/completions", model: "amazon.nova-pro-v1:0", stream: true, expectPath: "/model/amazon.nova-pro-v1%3A0/converse-stream", expectHeaders: { authorization: "Bearer PROVIDER-KEY" } },
    { name: "bedrock embeddings through InvokeModel", provider: { type: "bedrock", region: "us-east-1" }, op: "embeddings", path: "/v1/embeddings", query: "?x=1", model: "amazon.titan-embed-text-v2:0", expectPath: "/model/amazon.titan-embed-text-v2%3A0/invoke", expectHeaders: { authorization: "Bearer PROVIDER-KEY" } },
    { name: "anthropic keeps client version and beta", provider: { type: "anthropic", anthropicVersion: "2023-06-01" }, op: "messages", path: "/v1/messages", query: "?beta=true", av: "2024-01-01", ab: "tools-2024", expectPath: "/v1/messages?beta=true", expectHeaders: { "x-api-key": "PROVIDER-KEY", "anthropic-version": "2024-01-01", "anthropic-beta": "tools-2024" } },
  ];
  for (const t of table) {
    it(t.name, () => {
      const r = adapterFor(t.provider.type).rewrite({
        provider: t.provider,
        credential: "credential" in t ? t.credential : key,
        target: { model: t.model ?? "m", deployment: t.deployment },
        operation: t.op,
        originalPathname: t.path,
        originalQuery: t.query ?? "",
        stream: t.stream === true,
        clientAnthropicVersion: t.av,
        clientAnthropicBeta: t.ab,
      });
      assert.equal(r.path, t.expectPath);
      assert.deepEqual(Object.fromEntries(r.setHeaders), t.expectHeaders);
    });
  }

  it("serves only the APIs each provider speaks natively", () => {
    assert.ok(adapterFor("anthropic").operations.has("messages"));
    assert.ok(!adapterFor("anthropic").operations.has("chat.completions"));
    assert.ok(!adapterFor("openai").operations.has("messages"));
  });
});

describe("Secret", () => {
  it("never prints its value", () => {
    const s = new Secret("sk-live-123");
    assert.equal(String(s), "[redacted]");
    assert.equal(JSON.stringify({ s }), '{"s":"[redacted]"}');
    assert.ok(!inspect({ s }).includes("sk-live"));
    assert.equal(s.reveal(), "sk-live-123");
  });
});
