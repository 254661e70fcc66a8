// The Grafana dashboard, the Prometheus scrape config and their docker-compose.yml wiring (deploy/).
// Docker cannot run where the tests do, and Grafana shows a query naming a missing metric or label
// as an empty panel, not an error. So: every dashboard query reads only metrics the running service
// exposes, with labels those metrics have, and parses as PromQL (promtool); the scrape targets are
// compose services on the ports their admin listens on; every mounted file exists and the Grafana
// provisioning points where the dashboards are mounted.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { examplePolicy, REPO_ROOT, startTestService, type TestService } from "./support/service";
import { NO_PROMTOOL } from "./support/exposition";

const DASHBOARD = "deploy/grafana/dashboards/llm-router.json";
const PROMETHEUS_CONFIG = "deploy/prometheus/prometheus.yml";


// ---------------------------------------------------------------------------------------------
// Reading the repo's files as typed values

type Doc = Record<string, unknown>;

const repoPath = (rel: string) => path.join(REPO_ROOT, rel);
const readYaml = (rel: string): unknown => parse(fs.readFileSync(repoPath(rel), "utf8"));

function isDoc(v: unknown): v is Doc {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
function doc(v: unknown, what: string): Doc {
  assert.ok(isDoc(v), `${what} is a mapping`);
  return v;
}
function str(v: unknown, what: string): string {
  assert.equal(typeof v, "string", `${what} is a string`);
  return String(v);
}
function list(v: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(v), `${what} is a list`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// The dashboard

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { uid?: string };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  /** A collapsed row keeps its panels here. */
  panels?: Panel[];
}
interface TemplateVariable {
  name: string;
  type: string;
  query?: string | { query?: string };
  /** What Grafana's variable list shows for the query. */
  definition?: string;
}
interface Dashboard {
  uid?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: TemplateVariable[] };
}

const loadDashboard = (): Dashboard => JSON.parse(fs.readFileSync(repoPath(DASHBOARD), "utf8")) as Dashboard;

/** Every panel, rows' nested ones included. */
function allPanels(d: Dashboard): Panel[] {
  return (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every query of the dashboard, named after its panel for the failure messages. */
function queries(d: Dashboard): Array<{ where: string; panelId: number; refId: string; expr: string }> {
  return allPanels(d).flatMap((p) =>
    (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}" ${t.refId}`, panelId: p.id ?? -1, refId: t.refId ?? "", expr: t.expr ?? "" })),
  );
}

function variableQuery(v: TemplateVariable): string {
  return typeof v.query === "string" ? v.query : (v.query?.query ?? "");
}

// ---------------------------------------------------------------------------------------------
// What the service exposes: families from /metrics, label names from the registry serving it

interface Family {
  type: string;
  labels: readonly string[];
}

/** Labels Prometheus attaches to every scraped series. */
const TARGET_LABELS = ["job", "instance"];

/** A prom-client metric's label names, read without widening it to `any`. */
function labelNamesOf(metric: object): string[] {
  if (!("labelNames" in metric) || !Array.isArray(metric.labelNames)) return [];
  return metric.labelNames.filter((l): l is string => typeof l === "string");
}

/**
 * The metric families of an exposition (`# TYPE` lines: prom-client prints them for a labelled
 * metric with no series yet, so the GenAI, cost and Redis families count without traffic), with
 * their label names from the registry that produced it.
 */
function families(exposition: string, registered: (name: string) => object | undefined): Map<string, Family> {
  const out = new Map<string, Family>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const metric = registered(m[1]!);
    assert.ok(metric !== undefined, `${m[1]} is exposed but not in the service's registry`);
    out.set(m[1]!, { type: m[2]!, labels: labelNamesOf(metric) });
  }
  return out;
}

/** The family a series name belongs to (a histogram's series are its _bucket, _sum and _count). */
function seriesFamily(all: Map<string, Family>, series: string): { family: Family; bucket: boolean } | undefined {
  const plain = all.get(series);
  if (plain !== undefined && plain.type !== "histogram") return { family: plain, bucket: false };
  const m = /^(.+)_(bucket|sum|count)$/.exec(series);
  if (m === null) return undefined;
  const hist = all.get(m[1]!);
  return hist?.type === "histogram" ? { family: hist, bucket: m[2] === "bucket" } : undefined;
}

// ---------------------------------------------------------------------------------------------
// Reading a PromQL expression: the metrics it reads, the labels its matchers and groupings use.
// Enough for the dashboard's own style (aggregations written `sum by (...) (...)`, selectors that
// name their metric), which the checks below insist on rather than parse every form PromQL allows.
// A grouping is checked against the metrics under it, not against what inner aggregations keep.

const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"]);
const LABEL_LISTS = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;

/** The expression with string contents, ranges, selector matchers and label lists emptied. */
function skeleton(expr: string): string {
  return expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\[[^\]]*\]/g, "[]")
    .replace(/\{[^}]*\}/g, "{}")
    .replace(LABEL_LISTS, "$1()");
}

/**
 * Bare identifiers that are neither functions nor aggregations (followed by `(` or by a grouping)
 * nor keywords: the metric names.
 */
function metricsIn(expr: string): string[] {
  const text = skeleton(expr);
  assert.ok(!text.includes("$"), `Grafana variables only inside strings and ranges: ${expr}`);
  return [...text.matchAll(/(?<![\w:.])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*(?:\(|(?:by|without)\b))/g)].map((m) => m[0]).filter((w) => !KEYWORDS.has(w));
}

/** Each `name{...}` selector with the label names its matchers use. */
function matchersIn(expr: string): Array<{ metric: string; labels: string[] }> {
  const text = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...text.matchAll(/([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}/g)].map((m) => {
    assert.ok(m[1] !== undefined, `selectors name their metric: ${expr}`);
    return { metric: m[1], labels: [...m[2]!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!) };
  });
}

/** Each `by (...)` / `without (...)` list with the metrics of the expression it aggregates. */
function groupingsIn(expr: string): Array<{ labels: string[]; metrics: string[] }> {
  const text = expr.replace(/"(?:[^"\\]|\\.)*"/g, (s) => "_".repeat(s.length));
  return [...text.matchAll(/\b(?:by|without)\s*\(([^)]*)\)\s*/g)].map((m) => {
    const open = m.index + m[0].length;
    assert.equal(text[open], "(", `groupings come before their argument (sum by (x) (...)): ${expr}`);
    let depth = 0;
    let close = open;
    for (; close < text.length; close++) {
      if (text[close] === "(") depth++;
      else if (text[close] === ")" && --depth === 0) break;
    }
    const labels = m[1]!.split(",").map((l) => l.trim()).filter((l) => l !== "");
    return { labels, metrics: metricsIn(expr.slice(open, close + 1)) };
  });
}

/** Problems with one expression: unknown metrics, labels a metric does not have. */
function exprProblems(expr: string, all: Map<string, Family>): string[] {
  const problems: string[] = [];
  const allowed = (series: string): readonly string[] | undefined => {
    const f = seriesFamily(all, series);
    return f === undefined ? undefined : [...f.family.labels, ...TARGET_LABELS, ...(f.bucket ? ["le"] : [])];
  };
  for (const metric of metricsIn(expr)) if (allowed(metric) === undefined) problems.push(`${metric} is not exposed`);
  for (const { metric, labels } of matchersIn(expr)) {
    const ok = allowed(metric);
    for (const l of labels) if (ok !== undefined && !ok.includes(l)) problems.push(`${metric} has no label ${l}`);
  }
  for (const { labels, metrics } of groupingsIn(expr)) {
    for (const metric of metrics) {
      const ok = allowed(metric);
      for (const l of labels) if (ok !== undefined && !ok.includes(l)) problems.push(`${metric} has no label ${l} (by/without)`);
      // Without `le` histogram_quantile has no buckets to read and the panel stays empty.
      if (metric.endsWith("_bucket") && !labels.includes("le")) problems.push(`${metric} aggregated without le`);
    }
  }
  return problems;
}

/** Grafana's variables replaced so that promtool can parse the expression. */
function forPromtool(expr: string, dashboardVariables: ReadonlySet<string>): string {
  const builtIn: Record<string, string> = { __rate_interval: "5m", __interval: "1m", __range: "1h" };
  return expr.replace(/\$\{?(\w+)\}?/g, (_, name: string) => {
    // Query variables are only used as regex matchers (`label=~"$var"`): "All" is `.*`.
    if (dashboardVariables.has(name)) return ".*";
    const value = builtIn[name];
    assert.ok(value !== undefined, `unknown Grafana variable $${name} in ${expr}`);
    return value;
  });
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}

function composeServices(): Doc {
  return doc(doc(readYaml("docker-compose.yml"), "docker-compose.yml").services, "services");
}

function service(services: Doc, name: string): Doc {
  return doc(services[name], `service ${name}`);
}

/** A service's bind mounts (`./source:/target[:ro]`), sources relative to the repo root. */
function mounts(svc: Doc, name: string): Mount[] {
  return list(svc.volumes ?? [], `${name} volumes`).map((v) => {
    const [source, target, mode] = str(v, `${name} volume`).split(":");
    assert.ok(source !== undefined && target !== undefined && source.startsWith("./"), `${name}: ${String(v)} is ./source:/target`);
    return { source: path.normalize(source), target, readOnly: mode === "ro" };
  });
}

/** Where a path inside the container comes from in the repo, through the service's mounts. */
function hostPathOf(svc: Doc, name: string, containerPath: string): string | undefined {
  for (const m of mounts(svc, name)) {
    if (containerPath === m.target) return m.source;
    if (containerPath.startsWith(`${m.target}/`)) return path.join(m.source, containerPath.slice(m.target.length + 1));
  }
  return undefined;
}

function environment(svc: Doc, name: string): Doc {
  return doc(svc.environment ?? {}, `${name} environment`);
}

/** The port inside the container that a published `host_ip:host_port:container_port` maps to. */
function containerPorts(svc: Doc, name: string): number[] {
  return list(svc.ports ?? [], `${name} ports`).map((p) => Number(str(p, `${name} port`).split(":").at(-1)));
}

/** Where a service's admin (metrics) endpoint listens inside its container, and its path. */
function adminEndpoint(svc: Doc, name: string): { address: string; port: number; metricsPath: string } {
  const listen = environment(svc, name).LLM_ROUTER_ADMIN_LISTEN;
  if (listen !== undefined) {
    const [address, port] = str(listen, `${name} LLM_ROUTER_ADMIN_LISTEN`).split(":");
    return { address: address!, port: Number(port), metricsPath: "/metrics" };
  }
  if (str(svc.image ?? "", `${name} image`).startsWith("envoyproxy/envoy:")) {
    // Envoy's admin is in the bootstrap the service mounts and starts with (-c).
    const command = list(svc.command, `${name} command`).map((c) => str(c, `${name} command`));
    const config = hostPathOf(svc, name, command[command.indexOf("-c") + 1] ?? "");
    assert.ok(config !== undefined, `${name}: the -c bootstrap is a mounted file`);
    const socket = doc(doc(doc(doc(readYaml(config), config).admin, `${config} admin`).address, `${config} admin.address`).socket_address, `${config} admin socket_address`);
    return { address: str(socket.address, "admin address"), port: Number(socket.port_value), metricsPath: "/stats/prometheus" };
  }
  assert.fail(`${name}: no known admin endpoint to scrape`);
}

/** image `name:tag` with a tag other than latest. */
function assertPinned(svc: Doc, name: string): void {
  const image = str(svc.image, `${name} image`);
  const tag = /:([\w.-]+)$/.exec(image)?.[1];
  assert.ok(tag !== undefined && tag !== "latest", `${name}: image ${image} has a pinned tag`);
}

// ---------------------------------------------------------------------------------------------

describe("Grafana dashboard (deploy/grafana/dashboards/llm-router.json)", () => {
  const dashboard = loadDashboard();
  const variables = dashboard.templating?.list ?? [];
  const queryVariables = new Set(variables.filter((v) => v.type === "query").map((v) => v.name));

  let svc: TestService | undefined;
  let exposed: Map<string, Family>;
  before(async () => {
    // The real service with the example policy and no traffic: every family is declared already.
    const running = await startTestService(examplePolicy());
    svc = running;
    const res = await fetch(`http://127.0.0.1:${running.adminPort}/metrics`);
    assert.equal(res.status, 200);
    exposed = families(await res.text(), (name) => running.metrics.registry.getSingleMetric(name));
  });
  after(() => svc?.stop());

  it("has its uid, a Prometheus datasource variable, and route and target variables from the request metric", () => {
    assert.equal(dashboard.uid, "llm-router");
    assert.ok((dashboard.schemaVersion ?? 0) >= 36, "a schema with the datasource variable and $__rate_interval");
    const ds = variables.find((v) => v.name === "datasource");
    assert.ok(ds !== undefined, "variable datasource");
    assert.equal(ds.type, "datasource");
    assert.equal(ds.query, "prometheus");
    for (const label of ["route", "target"]) {
      const v = variables.find((x) => x.name === label);
      assert.ok(v !== undefined, `variable ${label}`);
      assert.match(variableQuery(v), new RegExp(`^label_values\\(llm_router_requests_total(\\{[^}]*\\})?, ${label}\\)$`));
    }
    for (const v of variables.filter((x) => x.type === "query")) assert.equal(v.definition ?? variableQuery(v), variableQuery(v), `variable ${v.name} shows its query`);
  });

  it("gives every panel a unique id, and every query the ${datasource} variable", () => {
    const panels = allPanels(dashboard);
    const ids = panels.map((p) => p.id);
    assert.ok(ids.every((id) => typeof id === "number"), "every panel has an id");
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
    for (const p of panels) {
      // Rows only group panels: they have no queries and need no datasource.
      if (p.type === "row") continue;
      assert.deepEqual(p.datasource, { type: "prometheus", uid: "${datasource}" }, `panel ${p.id} "${p.title}" datasource`);
      assert.ok((p.targets ?? []).length > 0, `panel ${p.id} "${p.title}" has queries`);
      for (const t of p.targets ?? []) {
        assert.ok(t.datasource === undefined || t.datasource.uid === "${datasource}", `panel ${p.id} ${t.refId} datasource`);
        assert.ok((t.expr ?? "").trim() !== "", `panel ${p.id} ${t.refId} has an expr`);
      }
    }
  });

  it("reads only metrics the running service exposes, with labels those metrics have", () => {
    // The check itself would pass vacuously on an empty catalogue or expression reader.
    assert.ok(exposed.has("llm_router_requests_total") && exposed.has("gen_ai_client_token_usage_token") && exposed.has("nodejs_eventloop_lag_p99_seconds"));
    assert.deepEqual(exprProblems('sum by (le, nope) (rate(llm_router_upstream_latency_seconds_bucket{route="x"}[5m])) + llm_router_typo', exposed), [
      "llm_router_typo is not exposed",
      "llm_router_upstream_latency_seconds_bucket has no label route",
      "llm_router_upstream_latency_seconds_bucket has no label nope (by/without)",
    ]);

    const problems = queries(dashboard).flatMap((q) => exprProblems(q.expr, exposed).map((p) => `${q.where}: ${p}`));
    for (const v of variables.filter((x) => x.type === "query")) {
      // label_values(<selector>, <label>): the selector's metric must have the label.
      const m = /^label_values\((.+),\s*(\w+)\)$/.exec(variableQuery(v));
      assert.ok(m !== null, `variable ${v.name} is a label_values() query`);
      const probe = `sum by (${m[2]}) (${m[1]!.replace(/"(?:[^"\\]|\\.)*"/g, '""')})`;
      problems.push(...exprProblems(probe, exposed).map((p) => `variable ${v.name}: ${p}`));
    }
    assert.deepEqual(problems, []);
  });

  it("is valid PromQL: every query as a recording rule passes promtool check rules", { skip: NO_PROMTOOL }, () => {
    const rules = queries(dashboard).map((q) => ({ record: `dashboard:panel${q.panelId}_${q.refId}`, expr: forPromtool(q.expr, queryVariables) }));
    const dir = fs.mkdtempSync(path.join(tmpdir(), "llm-router-dashboard-"));
    const file = path.join(dir, "rules.yml");
    fs.writeFileSync(file, stringify({ groups: [{ name: "dashboard", rules }] }));
    const r = spawnSync("promtool", ["check", "rules", file], { encoding: "utf8" });
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });
});

describe("Prometheus scrape config and docker-compose.yml", () => {
  const services = composeServices();
  const prometheus = service(services, "prometheus");
  const grafana = service(services, "grafana");
  const config = doc(readYaml(PROMETHEUS_CONFIG), PROMETHEUS_CONFIG);

  it("passes promtool check config", { skip: NO_PROMTOOL }, () => {
    const r = spawnSync("promtool", ["check", "config", repoPath(PROMETHEUS_CONFIG)], { encoding: "utf8" });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });

  it("runs pinned Prometheus and Grafana images on the host's loopback, with every mounted file in the repo, read-only", () => {
    for (const [name, svc] of [["prometheus", prometheus], ["grafana", grafana]] as const) {
      assertPinned(svc, name);
      for (const p of list(svc.ports, `${name} ports`)) assert.match(str(p, `${name} port`), /^127\.0\.0\.1:/);
      for (const m of mounts(svc, name)) {
        assert.ok(fs.existsSync(repoPath(m.source)), `${name}: ${m.source} exists`);
        assert.ok(m.readOnly, `${name}: ${m.source} is mounted read-only`);
      }
    }
    assert.equal(hostPathOf(prometheus, "prometheus", "/etc/prometheus/prometheus.yml"), path.normalize(PROMETHEUS_CONFIG));
  });

  it("scrapes every llm-router replica and Envoy on the port and path their admin serves", () => {
    const scraped = new Set<string>();
    for (const job of list(config.scrape_configs, "scrape_configs").map((j) => doc(j, "scrape config"))) {
      const jobName = str(job.job_name, "job_name");
      for (const sc of list(job.static_configs, `${jobName} static_configs`).map((s) => doc(s, `${jobName} static_config`))) {
        for (const target of list(sc.targets, `${jobName} targets`).map((t) => str(t, `${jobName} target`))) {
          const [host, port] = target.split(":");
          const admin = adminEndpoint(service(services, host!), host!);
          assert.equal(Number(port), admin.port, `${jobName}: ${target} is ${host}'s admin port`);
          // Prometheus runs in another container: a loopback-only admin would refuse it.
          assert.notEqual(admin.address, "127.0.0.1", `${host}'s admin listens beyond its container's loopback`);
          assert.equal(job.metrics_path ?? "/metrics", admin.metricsPath, `${jobName} metrics_path`);
          scraped.add(host!);
        }
      }
    }
    const replicas = Object.keys(services).filter((n) => environment(service(services, n), n).LLM_ROUTER_ADMIN_LISTEN !== undefined);
    assert.ok(replicas.length >= 2, "the compose file has its llm-router replicas");
    for (const name of [...replicas, "envoy"]) assert.ok(scraped.has(name), `${name} is scraped`);
  });

  it("provisions Grafana with that Prometheus and the dashboard directory it mounts", () => {
    const provisioning = hostPathOf(grafana, "grafana", "/etc/grafana/provisioning");
    assert.ok(provisioning !== undefined, "the provisioning directory is mounted");

    const datasources = list(doc(readYaml(path.join(provisioning, "datasources/prometheus.yml")), "datasources file").datasources, "datasources");
    const ds = doc(datasources[0], "datasource");
    assert.equal(ds.uid, "prometheus");
    assert.equal(ds.isDefault, true);
    const url = new URL(str(ds.url, "datasource url"));
    assert.ok(url.hostname in services, `the datasource url names the ${url.hostname} service`);
    assert.equal(url.hostname, "prometheus");
    assert.ok(containerPorts(prometheus, "prometheus").includes(Number(url.port)), "the datasource url has Prometheus's port in its container");
    // $__rate_interval is computed from this: it must be the interval Prometheus scrapes at.
    assert.equal(doc(ds.jsonData, "jsonData").timeInterval, doc(config.global, "global").scrape_interval);

    const providers = list(doc(readYaml(path.join(provisioning, "dashboards/llm-router.yml")), "dashboard providers").providers, "providers");
    const dashboards = str(doc(doc(providers[0], "provider").options, "provider options").path, "provider path");
    const dashboardsDir = hostPathOf(grafana, "grafana", dashboards);
    assert.ok(dashboardsDir !== undefined, `${dashboards} is mounted`);
    assert.equal(path.join(dashboardsDir, path.basename(DASHBOARD)), path.normalize(DASHBOARD), "the provider reads the dashboard's directory");

    const env = environment(grafana, "grafana");
    assert.equal(env.GF_AUTH_ANONYMOUS_ENABLED, "true");
    assert.equal(env.GF_AUTH_ANONYMOUS_ORG_ROLE, "Viewer");
    const home = env.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    if (home !== undefined) assert.equal(hostPathOf(grafana, "grafana", str(home, "home dashboard")), path.normalize(DASHBOARD));
    assert.deepEqual(grafana.depends_on, ["prometheus"]);
  });
});
