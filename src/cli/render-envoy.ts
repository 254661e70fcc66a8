// `llm-router render-envoy`: envoy.yaml from the policy and a base bootstrap (see src/envoy/render.ts).
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { renderEnvoy } from "../envoy/render";
import { compilePolicyText } from "../policy/compile";
import { parseOptions, requireString, type OptionSpec } from "./options";

/** The base shipped with llm-router (dist/src/cli -> repository root). */
export const DEFAULT_BASE = path.resolve(__dirname, "../../../envoy/envoy.base.yaml");

const OPTIONS: OptionSpec = {
  policy: { type: "string", env: "LLM_ROUTER_POLICY" },
  base: { type: "string" },
  out: { type: "string" },
};

/** Returns the exit code. */
export function renderEnvoyCommand(argv: string[], env: NodeJS.ProcessEnv, out: (s: string) => void): number {
  const o = parseOptions(argv, OPTIONS, env);
  const file = requireString(o, "policy", "the routing policy JSON file");
  const base = typeof o.base === "string" ? o.base : DEFAULT_BASE;
  const policy = compilePolicyText(readFileSync(file, "utf8"), { file, resolveSecrets: false });
  const yaml = renderEnvoy(policy, readFileSync(base, "utf8"), { policyFile: file, baseFile: typeof o.base === "string" ? o.base : "envoy/envoy.base.yaml" });
  if (typeof o.out === "string") writeFileSync(o.out, yaml);
  else out(yaml.trimEnd());
  return 0;
}
