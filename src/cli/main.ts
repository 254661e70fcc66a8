#!/usr/bin/env node
// llm-router command line: serve, validate, explain, schema, mock-provider.
import { PolicyError } from "../policy/policy-error";
import { policyJsonSchema } from "../policy/schema";
import { RenderError } from "../envoy/render";
import { explainCommand } from "./explain";
import { renderEnvoyCommand } from "./render-envoy";
import { UsageError } from "./options";
import { serveCommand } from "./serve";
import { validateCommand } from "./validate";

const USAGE = `usage: llm-router <command> [flags]

commands:
  serve          run the ext_proc service (both phases)
                   --policy FILE            routing policy JSON           [LLM_ROUTER_POLICY]
                   --grpc-listen ADDR       host:port or unix:/path       [LLM_ROUTER_GRPC_LISTEN] (0.0.0.0:50051)
                   --admin-listen ADDR      /healthz /readyz; "off"       [LLM_ROUTER_ADMIN_LISTEN] (0.0.0.0:9090)
                   --admin-token TOKEN      bearer token for /debug/*     [LLM_ROUTER_ADMIN_TOKEN] (none: loopback only)
                   --admin-token-file FILE  same, from a file             [LLM_ROUTER_ADMIN_TOKEN_FILE]
                   --hmac-keys K1,K2        shared context-signing keys   [LLM_ROUTER_HMAC_KEYS]
                   --hmac-key-file FILE     same, from a file             [LLM_ROUTER_HMAC_KEY_FILE]
                   --max-body-bytes N       largest request body          [LLM_ROUTER_MAX_BODY_BYTES] (16777216)
                   --context-max-age-seconds N                            [LLM_ROUTER_CONTEXT_MAX_AGE_SECONDS] (3600)
                   --shutdown-grace-seconds N                             [LLM_ROUTER_SHUTDOWN_GRACE_SECONDS] (30)
                   --log-level LEVEL                                      [LLM_ROUTER_LOG_LEVEL] (info)
                   --no-watch               reload only on SIGHUP         [LLM_ROUTER_NO_WATCH]
                   --workers N|auto         processes serving ext_proc    [LLM_ROUTER_WORKERS] (1; auto: one per core)
  validate       check a policy, and with --envoy FILE cross-check it against envoy.yaml
  render-envoy   print envoy.yaml for a policy: routes, retry policies and chain clusters
                   --policy FILE [--base envoy.base.yaml] [--out FILE]
  explain        print the routing plan for a sample request (no network)
                   --policy FILE --path /v1/chat/completions --body JSON|@file -H "name: value" --key GATEWAY_KEY
  schema         print the policy's JSON Schema
  mock-provider  run the mock LLM provider (--port, --latency-ms, --stream-chunks, --failure-rate)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const out = (s: string) => process.stdout.write(`${s}\n`);
  switch (command) {
    case "serve":
      await serveCommand(rest, process.env);
      return -1; // keeps running
    case "validate":
      return validateCommand(rest, process.env, out);
    case "render-envoy":
      return renderEnvoyCommand(rest, process.env, out);
    case "explain":
      return explainCommand(rest, process.env, out);
    case "schema":
      out(JSON.stringify(policyJsonSchema(), null, 2));
      return 0;
    case "mock-provider":
      // Loaded on demand: the service itself never needs the mock.
      await (await import("../mock-provider/main.js")).runMockProviderCli(rest);
      return -1;
    case "help":
    case "--help":
    case "-h":
      out(USAGE);
      return 0;
    default:
      process.stderr.write(USAGE);
      return 64;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof PolicyError || err instanceof UsageError || err instanceof RenderError) process.stderr.write(`${err.message}\n`);
    else process.stderr.write(`llm-router: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = err instanceof UsageError ? 64 : 1;
  },
);
