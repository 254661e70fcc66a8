// Reading a Prometheus text exposition in tests: Prometheus's own parser and linter (promtool) for
// validity, and a small reader for sample values by series and by labels.
import { spawnSync } from "node:child_process";

/** promtool's lint findings about prom-client's own Node metrics (gauges named *_total), not ours. */
const FOREIGN_LINT = /^nodejs_active_(handles|requests|resources)_total /;

const promtool = (() => {
  const r = spawnSync("promtool", ["--version"], { encoding: "utf8" });
  if (r.status === 0) return true;
  if (process.env.LLM_ROUTER_REQUIRE_PROMTOOL === "1") throw new Error("promtool required (LLM_ROUTER_REQUIRE_PROMTOOL=1) but not on PATH");
  return false;
})();
export const NO_PROMTOOL = promtool ? false : "promtool (Prometheus's parser and linter) not on PATH: apt-get install prometheus";

/** Parses and lints with Prometheus's Go parser; returns the findings other than FOREIGN_LINT. */
export function promtoolFindings(text: string): string[] {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status === 1) throw new Error(`promtool could not parse the exposition: ${out}`);
  return out.split("\n").filter((l) => l.trim() !== "" && !FOREIGN_LINT.test(l));
}

/** Sample values by series (`name{labels}` exactly as exposed). */
export function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** A series' labels as an object (values never hold `",` in this exposition's label sets). */
function labelsOf(series: string): Record<string, string> {
  const open = series.indexOf("{");
  const out: Record<string, string> = {};
  if (open === -1) return out;
  for (const m of series.slice(open + 1, -1).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = m[2]!;
  return out;
}

/** The sum of every sample of `name` whose labels include `want` (any order, other labels free). */
export function sum(all: Map<string, number>, name: string, want: Record<string, string> = {}): number {
  let total = 0;
  for (const [series, value] of all) {
    const open = series.indexOf("{");
    if ((open === -1 ? series : series.slice(0, open)) !== name) continue;
    const labels = labelsOf(series);
    if (Object.entries(want).every(([k, v]) => labels[k] === v)) total += value;
  }
  return total;
}

