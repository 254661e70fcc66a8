import { readFileSync } from "node:fs";
import { checkPolicyAgainstEnvoy, parseEnvoyYaml } from "../envoy/bootstrap-check";
import { compilePolicyText } from "../policy/compile";
import { parseOptions, positiveInt, requireString, type OptionSpec } from "./options";

const OPTIONS: OptionSpec = {
  policy: { type: "string", env: "LLM_ROUTER_POLICY" },
  envoy: { type: "string" },
  "max-body-bytes": { type: "string", env: "LLM_ROUTER_MAX_BODY_BYTES", default: String(16 * 1024 * 1024) },
};

/** Returns the exit code. */
export function validateCommand(argv: string[], env: NodeJS.ProcessEnv, out: (s: string) => void): number {
  const o = parseOptions(argv, OPTIONS, env);
  const file = requireString(o, "policy", "the routing policy JSON file");
  const policy = compilePolicyText(readFileSync(file, "utf8"), { file, resolveSecrets: false });
  out(`policy ${file}: ok (${policy.routes.length} routes, ${policy.targets.size} targets, sha256 ${policy.hash.slice(0, 12)})`);
  if (typeof o.envoy !== "string") return 0;
  const report = checkPolicyAgainstEnvoy(policy, parseEnvoyYaml(readFileSync(o.envoy, "utf8")), positiveInt(o, "max-body-bytes"));
  for (const w of report.warnings) out(`warning: ${w}`);
  for (const e of report.errors) out(`error: ${e}`);
  if (report.errors.length > 0) return 1;
  out(`envoy ${o.envoy}: consistent with the policy`);
  return 0;
}
