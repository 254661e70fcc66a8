// The deployment files against each other and against the code they run. Docker, Envoy and
// Kubernetes cannot run where the tests do, and a wrong port, path, variable name or file reference
// in them only shows when someone deploys. So the Dockerfile (read through `.ci/dockerfile-build
// --plan`, the parser CI replays it with), docker-compose.yml, deploy/k8s (kustomizations, manifests
// and the Envoy bootstraps they mount) and README "Set up" are checked against each other and
// against the CLI's flag tables, the admin server, the policy compiler, render-envoy, `validate`,
// Envoy's protos and, for the README's curls and the sidecar's Unix socket, the Envoy harness.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { parse, parseAllDocuments } from "yaml";
import { parseOptions } from "../src/cli/options";
import { SERVE_OPTIONS } from "../src/cli/serve";
import { validateCommand } from "../src/cli/validate";
import { ContextSigner, parseKeys } from "../src/context/routing-context";
import { checkPolicyAgainstEnvoy, parseEnvoyYaml } from "../src/envoy/bootstrap-check";
import { renderEnvoy } from "../src/envoy/render";
import { FLAGS as MOCK_FLAGS, parseMockProviderArgs } from "../src/mock-provider/main";
import { startMockProvider, type MockProvider } from "../src/mock-provider/server";
import { compilePolicyText } from "../src/policy/compile";
import { startService } from "../src/service";
import { EnvoyHarness, type HarnessRequest } from "./harness/envoy-harness";
import { validateEnvoyBootstrap } from "./support/envoy-config-schema";
import { REPO_ROOT, startTestService, TEST_HMAC_KEY, type TestService } from "./support/service";

const DEMO_POLICY = "examples/policy.demo.json";
const K8S = "deploy/k8s";
const K8S_POLICY = `${K8S}/base/policy.json`;
const LAYOUTS = ["sidecar", "separate"] as const;
const PLACEHOLDER = "REPLACE_ME";

// ---------------------------------------------------------------------------------------------
// Reading files as typed values

type Doc = Record<string, unknown>;

const repo = (rel: string): string => path.join(REPO_ROOT, rel);
const readText = (rel: string): string => fs.readFileSync(repo(rel), "utf8");
/** YAML as Docker Compose and kustomize read it (merge keys resolved). */
const readYaml = (rel: string): unknown => parse(readText(rel), { merge: true, maxAliasCount: -1 });

function isDoc(v: unknown): v is Doc {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
function doc(v: unknown, what: string): Doc {
  assert.ok(isDoc(v), `${what} is a mapping`);
  return v;
}
function list(v: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(v), `${what} is a list`);
  return v;
}
function str(v: unknown, what: string): string {
  assert.equal(typeof v, "string", `${what} is a string`);
  return String(v);
}
const strings = (v: unknown, what: string): string[] => list(v, what).map((x, i) => str(x, `${what}[${i}]`));

/** `host:port` -> port; `unix:/path` and `off` -> undefined. */
function listenPort(listen: string): number | undefined {
  if (listen.startsWith("unix:") || listen === "off") return undefined;
  const port = Number(listen.slice(listen.lastIndexOf(":") + 1));
  assert.ok(Number.isInteger(port) && port > 0, `a port in ${listen}`);
  return port;
}

const SERVE_ENV = new Set(Object.values(SERVE_OPTIONS).flatMap((o) => (o.env === undefined ? [] : [o.env])));
const MOCK_ENV = new Set(Object.values(MOCK_FLAGS).map((f) => f.env));
const serveDefault = (option: string): string => str(SERVE_OPTIONS[option]?.default, `serve --${option} default`);
const DEFAULT_GRPC_PORT = listenPort(serveDefault("grpc-listen"));
const DEFAULT_ADMIN_PORT = listenPort(serveDefault("admin-listen"));

/** Quoted literals of a command line: URLs and absolute paths the probe requests. */
function probeTargets(commandText: string): Array<{ port?: number; path: string }> {
  const out: Array<{ port?: number; path: string }> = [];
  for (const m of commandText.matchAll(/'([^']*)'|"([^"]*)"/g)) {
    const literal = m[1] ?? m[2] ?? "";
    if (/^https?:\/\/[^/]+\/\S*$/.test(literal)) {
      const url = new URL(literal);
      out.push({ port: Number(url.port), path: url.pathname });
    } else if (/^\/[\w./-]*$/.test(literal)) out.push({ path: literal });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile, as .ci/dockerfile-build parses it

interface Instruction {
  line: number;
  kind: string;
  image?: string;
  path?: string;
  from?: string;
  sources?: string[];
  dest?: string;
  vars?: Record<string, string>;
  user?: string;
  ports?: Array<{ port: number; protocol: string }>;
  exec?: string[];
  shell?: string;
  none?: boolean;
}
interface Stage {
  name: string;
  index: number;
  image: string;
  instructions: Instruction[];
}
interface Plan {
  stages: Stage[];
  dockerignore: string[];
  ignored: Record<string, boolean>;
}

function dockerfileTool(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [repo(".ci/dockerfile-build"), ...args], { cwd: REPO_ROOT, encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function dockerfilePlan(probes: readonly string[] = []): Plan {
  const r = dockerfileTool(["--plan", ...probes.flatMap((p) => ["--probe", p])]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Plan;
}

const last = (stage: Stage, kind: string): Instruction | undefined => [...stage.instructions].reverse().find((i) => i.kind === kind);
const argvOf = (i: Instruction | undefined): string[] => (i === undefined ? [] : (i.exec ?? ["/bin/sh", "-c", i.shell ?? ""]));

/** Where each COPY from the build context lands in the image: image path -> repo path. */
function contextCopies(stage: Stage): Array<{ image: string; repo: string }> {
  let workdir = "/";
  const out: Array<{ image: string; repo: string }> = [];
  for (const i of stage.instructions) {
    if (i.kind === "WORKDIR") workdir = path.posix.resolve(workdir, i.path ?? "");
    if (i.kind !== "COPY" || i.from !== undefined) continue;
    const sources = i.sources ?? [];
    const dest = path.posix.resolve(workdir, i.dest ?? "");
    const intoDir = (i.dest ?? "").endsWith("/") || sources.length > 1;
    for (const s of sources) {
      const isDir = fs.statSync(repo(s)).isDirectory();
      out.push({ image: intoDir && !isDir ? path.posix.join(dest, path.posix.basename(s)) : dest, repo: path.posix.normalize(s) });
    }
  }
  return out;
}

/** The repo file an absolute path in the runtime image comes from, if a COPY put it there. */
function imageFileToRepo(stage: Stage, imagePath: string): string | undefined {
  for (const c of contextCopies(stage)) {
    if (imagePath === c.image) return c.repo;
    if (imagePath.startsWith(`${c.image}/`)) return path.posix.join(c.repo, imagePath.slice(c.image.length + 1));
  }
  return undefined;
}

function uidOf(user: string): number {
  const uid = Number(user.split(":")[0]);
  assert.ok(Number.isInteger(uid), `USER ${user} is numeric (Kubernetes' runAsNonRoot can only verify a numeric user)`);
  return uid;
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

const compose = doc(readYaml("docker-compose.yml"), "docker-compose.yml");
const services = doc(compose.services, "services");
const service = (name: string): Doc => doc(services[name], `service ${name}`);

/** Compose's `${VAR:-default}` / `${VAR-default}` / `${VAR}` with the defaults (no host environment). */
const interpolate = (v: string): string => v.replace(/\$\{(\w+)(?::?-([^}]*))?\}/g, (_, _name: string, fallback?: string) => fallback ?? "");

function composeEnv(name: string): Record<string, string> {
  const env = doc(service(name).environment ?? {}, `${name} environment`);
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(String(v))]));
}
const composeCommand = (name: string): string[] => strings(service(name).command ?? [], `${name} command`);
/** Services built from this repo's Dockerfile, by the CLI command they run. */
const builtServices = (command: string): string[] => Object.keys(services).filter((n) => service(n).build === "." && composeCommand(n)[0] === command);

function composeHealthcheck(name: string): string[] {
  const test = strings(doc(service(name).healthcheck, `${name} healthcheck`).test, `${name} healthcheck.test`);
  assert.ok(test[0] === "CMD" || test[0] === "CMD-SHELL", `${name}: healthcheck test starts with CMD or CMD-SHELL`);
  return test.slice(1);
}

/** Bind mount target -> repo path. */
function composeMounts(name: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of strings(service(name).volumes ?? [], `${name} volumes`)) {
    const [source = "", target = ""] = v.split(":");
    out.set(target, path.posix.normalize(source));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// deploy/k8s: kustomizations read the way kustomize builds them

interface K8sObject {
  file: string;
  kind: string;
  name: string;
  body: Doc;
}
interface Build {
  objects: K8sObject[];
  /** configMapGenerator name -> key -> repo path. */
  configMaps: Map<string, Map<string, string>>;
  images: Doc[];
}

function kustomize(dir: string): Build {
  const file = path.posix.join(dir, "kustomization.yaml");
  const k = doc(readYaml(file), file);
  const build: Build = { objects: [], configMaps: new Map(), images: (k.images ?? []) as Doc[] };
  for (const r of strings(k.resources ?? [], `${file} resources`)) {
    const rel = path.posix.normalize(path.posix.join(dir, r));
    assert.ok(fs.existsSync(repo(rel)), `${file}: resource ${r} exists`);
    if (fs.statSync(repo(rel)).isDirectory()) {
      const sub = kustomize(rel);
      build.objects.push(...sub.objects);
      for (const [n, m] of sub.configMaps) build.configMaps.set(n, m);
      build.images.push(...sub.images);
      continue;
    }
    for (const d of parseAllDocuments(readText(rel))) {
      const body = doc(d.toJS(), `${rel} document`);
      build.objects.push({ file: rel, kind: str(body.kind, `${rel} kind`), name: str(doc(body.metadata, `${rel} metadata`).name, `${rel} name`), body });
    }
  }
  for (const g of (k.configMapGenerator ?? []) as Doc[]) {
    const files = new Map<string, string>();
    for (const f of strings(g.files ?? [], `${file} configMapGenerator files`)) {
      const [key, source] = f.includes("=") ? (f.split("=") as [string, string]) : [path.posix.basename(f), f];
      const rel = path.posix.normalize(path.posix.join(dir, source));
      assert.ok(fs.existsSync(repo(rel)), `${file}: configMapGenerator file ${source} exists`);
      files.set(key, rel);
    }
    build.configMaps.set(str(g.name, `${file} configMapGenerator name`), files);
  }
  return build;
}

const BUILDS = new Map(LAYOUTS.map((l) => [l, kustomize(`${K8S}/${l}`)] as const));
/** kubectl builds kustomizations offline (`kubectl kustomize`); optional, like promtool elsewhere. */
const NO_KUBECTL = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0 ? false : "kubectl not on PATH (it builds the kustomizations for real)";
const build = (layout: (typeof LAYOUTS)[number]): Build => BUILDS.get(layout)!;
const objects = (b: Build, kind: string): K8sObject[] => b.objects.filter((o) => o.kind === kind);
function object(b: Build, kind: string, name: string): K8sObject {
  const found = b.objects.find((o) => o.kind === kind && o.name === name);
  assert.ok(found !== undefined, `${kind} ${name} is in the build`);
  return found;
}

interface Workload {
  name: string;
  spec: Doc;
  pod: Doc;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  containers: Doc[];
}
function workloads(b: Build): Workload[] {
  return objects(b, "Deployment").map((d) => {
    const spec = doc(d.body.spec, `${d.name} spec`);
    const template = doc(spec.template, `${d.name} template`);
    const meta = doc(template.metadata, `${d.name} template metadata`);
    const pod = doc(template.spec, `${d.name} pod spec`);
    return {
      name: d.name,
      spec,
      pod,
      labels: doc(meta.labels, `${d.name} pod labels`) as Record<string, string>,
      annotations: (meta.annotations ?? {}) as Record<string, string>,
      containers: list(pod.containers, `${d.name} containers`).map((c) => doc(c, `${d.name} container`)),
    };
  });
}
const args = (c: Doc): string[] => strings(c.args ?? [], `${String(c.name)} args`);
const isEnvoy = (c: Doc): boolean => str(c.image, "image").startsWith("envoyproxy/envoy:");
const runs = (c: Doc, command: string): boolean => !isEnvoy(c) && args(c)[0] === command;

/** A container's environment: env values, and every key of the Secrets it takes with envFrom. */
function containerEnv(b: Build, c: Doc): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of (c.envFrom ?? []) as Doc[]) {
    const ref = doc(from.secretRef, "envFrom secretRef");
    const secret = object(b, "Secret", str(ref.name, "secretRef name"));
    Object.assign(env, doc(secret.body.stringData ?? secret.body.data, `Secret ${secret.name} data`));
  }
  for (const e of (c.env ?? []) as Doc[]) env[str(e.name, "env name")] = str(e.value, `env ${String(e.name)} value`);
  return env;
}

/** A named or numbered container port. */
function containerPort(c: Doc, port: unknown): number {
  if (typeof port === "number") return port;
  const p = ((c.ports ?? []) as Doc[]).find((x) => x.name === port);
  assert.ok(p !== undefined, `container ${String(c.name)} has a port named ${String(port)}`);
  return Number(p.containerPort);
}

function selected(b: Build, selector: Doc, what: string): Workload {
  const matching = workloads(b).filter((w) => Object.entries(selector).every(([k, v]) => w.labels[k] === v));
  assert.equal(matching.length, 1, `${what} selects exactly one Deployment's Pods`);
  return matching[0]!;
}

/** The Service `name` port `port` -> the container (and its port number) it reaches. */
function throughService(b: Build, name: string, port: number): { workload: Workload; container: Doc; port: number } {
  const svc = doc(object(b, "Service", name).body.spec, `Service ${name} spec`);
  const p = ((svc.ports ?? []) as Doc[]).find((x) => Number(x.port) === port);
  assert.ok(p !== undefined, `Service ${name} has port ${port}`);
  const workload = selected(b, doc(svc.selector, `Service ${name} selector`), `Service ${name}`);
  const target = p.targetPort ?? port;
  const container = workload.containers.find((c) => typeof target === "number" ? ((c.ports ?? []) as Doc[]).some((x) => x.containerPort === target) : ((c.ports ?? []) as Doc[]).some((x) => x.name === target));
  assert.ok(container !== undefined, `Service ${name}:${port} targets a container port (${String(target)})`);
  return { workload, container, port: containerPort(container, target) };
}

/** The repo file a container sees at an absolute path, through a ConfigMap volume of the build. */
function mountedFile(b: Build, w: Workload, c: Doc, file: string): string {
  for (const m of (c.volumeMounts ?? []) as Doc[]) {
    const at = str(m.mountPath, "mountPath");
    if (!file.startsWith(`${at}/`)) continue;
    const volume = ((w.pod.volumes ?? []) as Doc[]).find((v) => v.name === m.name);
    const cm = doc(doc(volume, `volume ${String(m.name)}`).configMap, `volume ${String(m.name)} configMap`);
    const files = b.configMaps.get(str(cm.name, "configMap name"));
    assert.ok(files !== undefined, `${w.name}: ConfigMap ${String(cm.name)} is generated by the build`);
    const source = files.get(file.slice(at.length + 1));
    assert.ok(source !== undefined, `${w.name}: ConfigMap ${String(cm.name)} has the key for ${file}`);
    return source;
  }
  assert.fail(`${w.name}/${String(c.name)}: nothing is mounted at ${file}`);
}

function probe(c: Doc, kind: "readinessProbe" | "livenessProbe"): Doc {
  return doc(c[kind], `${String(c.name)} ${kind}`);
}

/** Seconds a preStop hook sleeps (every `sleep N` of its command). */
function preStopSeconds(c: Doc): number {
  const hook = doc(doc(doc(c.lifecycle, `${String(c.name)} lifecycle`).preStop, "preStop").exec, "preStop exec");
  return [...strings(hook.command, "preStop command").join(" ").matchAll(/\bsleep\s+(\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
}

/** Envoy's `-c` config file from a container's command line. */
function envoyConfigArg(argv: readonly string[]): string {
  const i = argv.indexOf("-c");
  assert.ok(i >= 0 && argv[i + 1] !== undefined, `envoy is started with -c: ${argv.join(" ")}`);
  return argv[i + 1]!;
}

const envoyClusters = (config: Doc): Doc[] => list(doc(config.static_resources, "static_resources").clusters, "clusters").map((c) => doc(c, "cluster"));
function endpointAddresses(cluster: Doc): Doc[] {
  return list(doc(cluster.load_assignment, "load_assignment").endpoints, "endpoints").flatMap((g) =>
    list(doc(g, "locality endpoints").lb_endpoints, "lb_endpoints").map((e) => doc(doc(doc(e, "lb_endpoint").endpoint, "endpoint").address, "address")),
  );
}
function listenerPort(config: Doc): number {
  const listener = doc(list(doc(config.static_resources, "static_resources").listeners, "listeners")[0], "listener");
  return Number(doc(doc(listener.address, "listener address").socket_address, "socket_address").port_value);
}

// ---------------------------------------------------------------------------------------------

describe("Dockerfile", () => {
  const REQUIRED_IGNORES = ["node_modules", "dist", "dist-deploy", ".git", "bench/results", "test"];
  const KEPT = ["src", "proto", "package.json", "examples/policy.demo.json"];
  const plan = dockerfilePlan([...REQUIRED_IGNORES, ...KEPT]);
  const runtime = plan.stages.at(-1)!;

  it("copies files that exist and that .dockerignore keeps in the build context", () => {
    const copies = plan.stages.flatMap((stage) => stage.instructions.filter((x) => x.kind === "COPY").map((i) => ({ stage, i })));
    const fromContext = copies.filter(({ i }) => i.from === undefined).flatMap(({ i }) => (i.sources ?? []).map((s) => ({ line: i.line, s })));
    assert.ok(fromContext.length > 0);
    const ignored = dockerfilePlan(fromContext.map((c) => c.s)).ignored;
    for (const { line, s } of fromContext) {
      assert.ok(fs.existsSync(repo(s)), `line ${line}: ${s} exists`);
      assert.equal(ignored[s], false, `line ${line}: ${s} is not excluded by .dockerignore (docker build would not find it)`);
    }
    for (const { stage, i } of copies.filter((c) => c.i.from !== undefined)) {
      assert.ok(plan.stages.slice(0, stage.index).some((s) => s.name === i.from), `line ${i.line}: --from=${i.from} is an earlier stage`);
    }
  });

  it(".dockerignore keeps dependencies, builds, history and tests out, and the sources in", () => {
    for (const p of REQUIRED_IGNORES) assert.equal(plan.ignored[p], true, `${p} is excluded`);
    for (const p of KEPT) assert.equal(plan.ignored[p], false, `${p} is in the context`);
  });

  it("builds and ships no tests or benchmarks", () => {
    for (const stage of plan.stages) {
      for (const c of contextCopies(stage)) assert.ok(!/^(test|bench)(\/|$)/.test(c.repo), `stage ${stage.name} copies ${c.repo}`);
    }
    const copiedFromBuild = runtime.instructions.filter((i) => i.from !== undefined).flatMap((i) => i.sources ?? []);
    assert.ok(copiedFromBuild.every((s) => !/\/(test|bench)(\/|$)/.test(s)), copiedFromBuild.join(" "));
    assert.ok(plan.stages[0]!.instructions.some((i) => /npm prune --omit=dev/.test(i.shell ?? "")), "dev dependencies are pruned");
  });

  it("pins one Node release for every stage, the major package.json's engines names", () => {
    const external = plan.stages.filter((s) => !plan.stages.some((o) => o.name === s.image));
    const images = new Set(external.map((s) => s.image));
    assert.equal(images.size, 1, [...images].join(", "));
    const m = /^node:(\d+)\.\d+\.\d+-[\w-]+(@sha256:[0-9a-f]{64})?$/.exec([...images][0]!);
    assert.ok(m !== null, `${[...images][0]} pins node major.minor.patch and a distribution`);
    const engines = str((JSON.parse(readText("package.json")) as { engines?: { node?: string } }).engines?.node, "package.json engines.node");
    assert.equal(m[1], /\d+/.exec(engines)?.[0], `the image's Node major matches engines.node ${engines}`);
  });

  it("runs the package's CLI as a numeric non-root user, exposing the CLI's default ports", () => {
    const bin = (JSON.parse(readText("package.json")) as { bin: Record<string, string> }).bin["llm-router"];
    assert.deepEqual(argvOf(last(runtime, "ENTRYPOINT")), ["node", bin]);
    assert.deepEqual(argvOf(last(runtime, "CMD")), ["serve"]);
    assert.notEqual(uidOf(str(last(runtime, "USER")?.user, "USER")), 0);
    const exposed = runtime.instructions.filter((i) => i.kind === "EXPOSE").flatMap((i) => (i.ports ?? []).map((p) => p.port));
    assert.deepEqual(exposed.sort(), [DEFAULT_GRPC_PORT, DEFAULT_ADMIN_PORT].sort());
  });

  it("ships the files the compiled code reads beside itself (protos, render-envoy's default base)", () => {
    const workdir = path.posix.resolve("/", str(last(runtime, "WORKDIR")?.path, "WORKDIR"));
    const read: string[] = [];
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(repo(dir), { withFileTypes: true })) {
        const rel = path.posix.join(dir, e.name);
        if (e.isDirectory()) walk(rel);
        else if (rel.endsWith(".ts")) {
          // dist/<dir>/x.js resolves what src/<dir>/x.ts names.
          for (const m of readText(rel).matchAll(/path\.resolve\(__dirname, "([^"]+)"\)/g)) read.push(path.posix.resolve(workdir, "dist", path.posix.dirname(rel), m[1]!));
        }
      }
    };
    walk("src");
    const assets = read.filter((p) => !p.startsWith(`${workdir}/dist/`));
    assert.ok(assets.length > 0, "the code reads files beside itself");
    for (const p of assets) {
      const source = imageFileToRepo(runtime, p);
      assert.ok(source !== undefined && fs.existsSync(repo(source)), `${p} is in the image`);
    }
  });

  it("HEALTHCHECK probes the admin port LLM_ROUTER_ADMIN_LISTEN names, by default the CLI's", () => {
    const text = argvOf(last(runtime, "HEALTHCHECK")).join(" ");
    assert.match(text, /LLM_ROUTER_ADMIN_LISTEN/);
    assert.ok(text.includes(`:${DEFAULT_ADMIN_PORT}`), `the fallback is the CLI's default admin port ${DEFAULT_ADMIN_PORT}`);
  });

  it("the replay refuses an instruction it cannot replay", () => {
    const dir = fs.mkdtempSync(path.join(tmpdir(), "dockerfile-plan-"));
    fs.writeFileSync(path.join(dir, "Dockerfile"), "FROM node:20 AS build\nWORKDIR /app\nADD https://example.com/x.tgz ./\n");
    const r = dockerfileTool(["--plan", "--context", dir]);
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Dockerfile:3: ADD is not supported by this replay/);
  });
});

describe("environment variables in docker-compose.yml and deploy/k8s", () => {
  const plan = dockerfilePlan();
  const runtime = plan.stages.at(-1)!;

  it("are ones the CLI reads: serve's LLM_ROUTER_* for `serve`, the mock's MOCK_* for `mock-provider`", () => {
    assert.ok(SERVE_ENV.has("LLM_ROUTER_POLICY") && MOCK_ENV.has("MOCK_FAILURE_RATE"), "the flag tables are read");
    const check = (where: string, command: string, env: Record<string, string>): void => {
      for (const name of Object.keys(env).filter((n) => /^(LLM_ROUTER|MOCK)_/.test(n))) {
        const known = command === "serve" ? SERVE_ENV : command === "mock-provider" ? MOCK_ENV : new Set<string>();
        assert.ok(known.has(name), `${where}: ${name} is not read by \`llm-router ${command}\``);
      }
    };
    for (const name of Object.keys(services)) check(`compose ${name}`, composeCommand(name)[0] ?? "", composeEnv(name));
    for (const [layout, b] of BUILDS) {
      for (const w of workloads(b)) for (const c of w.containers) check(`${layout} ${w.name}/${String(c.name)}`, isEnvoy(c) ? "" : (args(c)[0] ?? ""), containerEnv(b, c));
    }
  });

  it("hold values the CLI accepts", () => {
    for (const name of builtServices("mock-provider")) parseMockProviderArgs(composeCommand(name).slice(1), composeEnv(name));
    assert.deepEqual(parseMockProviderArgs(composeCommand("mock-flaky").slice(1), composeEnv("mock-flaky")), {
      port: 8080,
      host: "0.0.0.0",
      latencyMs: 20,
      streamChunks: 12,
      failureRate: 0.5,
    });
    for (const name of builtServices("serve")) {
      const env = composeEnv(name);
      parseOptions(composeCommand(name).slice(1), SERVE_OPTIONS, env);
      // The demo's key is a real one (any replica verifies what another signed).
      new ContextSigner(parseKeys(str(env.LLM_ROUTER_HMAC_KEYS, `${name} LLM_ROUTER_HMAC_KEYS`)), 1000);
      const policy = imageFileToRepo(runtime, str(env.LLM_ROUTER_POLICY, `${name} LLM_ROUTER_POLICY`));
      assert.equal(policy, DEMO_POLICY, `${name}: the policy is the demo's, copied into the image`);
    }
    for (const [, b] of BUILDS) {
      for (const w of workloads(b)) {
        for (const c of w.containers.filter((x) => runs(x, "mock-provider"))) parseMockProviderArgs(args(c).slice(1), containerEnv(b, c));
        for (const c of w.containers.filter((x) => runs(x, "serve"))) {
          const env = containerEnv(b, c);
          parseOptions(args(c).slice(1), SERVE_OPTIONS, env);
          assert.equal(mountedFile(b, w, c, str(env.LLM_ROUTER_POLICY, "LLM_ROUTER_POLICY")), K8S_POLICY);
        }
      }
    }
  });
});

describe("docker-compose.yml", () => {
  const envoyConfigPath = composeMounts("envoy").get(envoyConfigArg(composeCommand("envoy")));
  const envoyConfig = doc(parseEnvoyYaml(readText(envoyConfigPath ?? "")), "compose Envoy config");

  it("mounts files that exist, Envoy's demo bootstrap among them", () => {
    for (const name of Object.keys(services)) for (const source of composeMounts(name).values()) assert.ok(fs.existsSync(repo(source)), `${name}: ${source} exists`);
    assert.equal(envoyConfigPath, "envoy/envoy.demo.yaml");
  });

  it("Envoy reaches every llm-router replica on its gRPC port, and the mock providers on theirs", () => {
    const replicas = builtServices("serve");
    assert.ok(replicas.length >= 2, "two replicas at least");
    const llmRouter = envoyClusters(envoyConfig).find((c) => c.name === "llm_router")!;
    const reached = endpointAddresses(llmRouter).map((a) => doc(a.socket_address, "socket_address"));
    assert.deepEqual(
      reached.map((s) => `${String(s.address)}:${String(s.port_value)}`).sort(),
      replicas.map((n) => `${n}:${listenPort(str(composeEnv(n).LLM_ROUTER_GRPC_LISTEN, "LLM_ROUTER_GRPC_LISTEN"))}`).sort(),
    );
    for (const cluster of envoyClusters(envoyConfig).filter((c) => c.name !== "llm_router")) {
      for (const a of endpointAddresses(cluster)) {
        const s = doc(a.socket_address, "socket_address");
        const host = str(s.address, "endpoint address");
        assert.ok(builtServices("mock-provider").includes(host), `${String(cluster.name)}: ${host} is a compose mock provider`);
        assert.equal(Number(s.port_value), parseMockProviderArgs(composeCommand(host).slice(1), composeEnv(host)).port, `${host}'s port`);
      }
    }
    assert.equal(listenerPort(envoyConfig), Number(strings(service("envoy").ports, "envoy ports")[0]!.split(":").at(-1)), "the published port is Envoy's listener");
  });

  it("health-checks every service, the ones built from the Dockerfile on their own port", () => {
    for (const name of Object.keys(services)) assert.ok(isDoc(service(name).healthcheck), `${name} has a healthcheck`);
    for (const name of builtServices("serve")) {
      const admin = listenPort(str(composeEnv(name).LLM_ROUTER_ADMIN_LISTEN, "LLM_ROUTER_ADMIN_LISTEN"));
      assert.deepEqual(probeTargets(composeHealthcheck(name).join(" ")).map((t) => t.port), [admin], `${name} probes its admin port`);
    }
    for (const name of builtServices("mock-provider")) {
      const port = parseMockProviderArgs(composeCommand(name).slice(1), composeEnv(name)).port;
      // The image's HEALTHCHECK probes llm-router's admin port, which the mock does not serve.
      assert.deepEqual(probeTargets(composeHealthcheck(name).join(" ")).map((t) => t.port), [port], `${name} probes its own port`);
    }
    // Envoy's image has no curl: bash asks its admin /ready on the admin port of the mounted bootstrap.
    const adminPort = doc(doc(doc(envoyConfig.admin, "admin").address, "admin address").socket_address, "admin socket_address").port_value;
    assert.match(composeHealthcheck("envoy").join(" "), new RegExp(`/dev/tcp/127\\.0\\.0\\.1/${String(adminPort)} .*GET /ready `));
  });

  it("starts services once what they need is healthy, and runs the image with an init", () => {
    const dependsOn = (name: string): Doc => doc(service(name).depends_on ?? {}, `${name} depends_on`);
    for (const name of Object.keys(services)) {
      const deps = service(name).depends_on;
      if (!isDoc(deps)) continue;
      for (const [dep, cond] of Object.entries(deps)) {
        assert.equal(doc(cond, `${name} -> ${dep}`).condition, "service_healthy", `${name} waits for ${dep} to be healthy`);
        assert.ok(isDoc(service(dep).healthcheck), `${dep} has a healthcheck`);
      }
    }
    const reachedByEnvoy = envoyClusters(envoyConfig).flatMap((c) => endpointAddresses(c).map((a) => String(doc(a.socket_address, "socket_address").address)));
    for (const host of new Set(reachedByEnvoy)) assert.ok(host in dependsOn("envoy"), `envoy waits for ${host}`);
    for (const name of builtServices("serve")) {
      const redis = new URL(str(composeEnv(name).LLM_ROUTER_REDIS_URL, "LLM_ROUTER_REDIS_URL")).hostname;
      assert.ok(redis in dependsOn(name), `${name} waits for ${redis}`);
      assert.match(str(service(redis).image, "redis image"), /^redis:/);
    }
    for (const name of Object.keys(services).filter((n) => service(n).build === ".")) assert.equal(service(name).init, true, `${name}: init: true`);
  });
});

describe("deploy/k8s", () => {
  const plan = dockerfilePlan();
  const runtime = plan.stages.at(-1)!;
  const imageUid = uidOf(str(last(runtime, "USER")?.user, "USER"));

  it("the policy ConfigMap holds the demo policy, which compiles, and its providers are Services of the build", () => {
    assert.equal(readText(K8S_POLICY), readText(DEMO_POLICY), `${K8S_POLICY} is a copy of ${DEMO_POLICY}`);
    // Credentials resolved as `serve` does: the demo needs none, so no Secret value is involved.
    compilePolicyText(readText(K8S_POLICY), { file: K8S_POLICY, resolveSecrets: true, env: {} });
    const providers = (JSON.parse(readText(K8S_POLICY)) as { providers: Record<string, { endpoint?: string }> }).providers;
    for (const [layout, b] of BUILDS) {
      assert.equal(b.configMaps.get("llm-router-policy")?.get("policy.json"), K8S_POLICY, `${layout} generates the policy ConfigMap`);
      for (const [id, provider] of Object.entries(providers)) {
        const url = new URL(str(provider.endpoint, `provider ${id} endpoint`));
        const reached = throughService(b, url.hostname, Number(url.port));
        assert.ok(runs(reached.container, "mock-provider"), `${layout}: ${url.host} is a mock provider`);
        assert.equal(reached.port, parseMockProviderArgs(args(reached.container).slice(1), containerEnv(b, reached.container)).port, `${layout}: ${url.host} reaches the mock's port`);
      }
    }
  });

  for (const layout of LAYOUTS) {
    describe(`${layout} layout`, () => {
      const b = build(layout);
      const base = `${K8S}/${layout}/envoy.base.yaml`;
      const rendered = `${K8S}/${layout}/envoy.yaml`;
      const envoyConfig = doc(parseEnvoyYaml(readText(rendered)), rendered);

      it("renders envoy.yaml from the policy and its base, and both validate against Envoy's protos", () => {
        const policy = compilePolicyText(readText(K8S_POLICY), { file: K8S_POLICY, resolveSecrets: false });
        const fresh = renderEnvoy(policy, readText(base), { policyFile: K8S_POLICY, baseFile: base });
        assert.ok(readText(rendered) === fresh, `${rendered} is stale; render again: llm-router render-envoy --policy ${K8S_POLICY} --base ${base} --out ${rendered}`);
        for (const f of [base, rendered]) assert.deepEqual(validateEnvoyBootstrap(parse(readText(f), { maxAliasCount: -1 })), [], f);
        const report = checkPolicyAgainstEnvoy(policy, envoyConfig, 16 * 1024 * 1024);
        assert.deepEqual(report, { errors: [], warnings: [] });
        const out: string[] = [];
        assert.equal(validateCommand(["--policy", repo(K8S_POLICY), "--envoy", repo(rendered)], {}, (s) => out.push(s)), 0, out.join("\n"));
      });

      it("its base is envoy/envoy.base.yaml but for the llm_router cluster", () => {
        const shipped = doc(parseEnvoyYaml(readText("envoy/envoy.base.yaml")), "envoy.base.yaml");
        const mine = doc(parseEnvoyYaml(readText(base)), base);
        assert.deepEqual(mine.admin, shipped.admin);
        assert.deepEqual(doc(mine.static_resources, "static_resources").listeners, doc(shipped.static_resources, "static_resources").listeners);
        assert.deepEqual(envoyClusters(mine).map((c) => c.name), ["llm_router"]);
        const keep = (c: Doc): Doc => ({ ...c, type: undefined, lb_policy: undefined, dns_lookup_family: undefined, dns_refresh_rate: undefined, load_assignment: undefined });
        assert.deepEqual(keep(envoyClusters(mine)[0]!), keep(envoyClusters(shipped)[0]!), "the llm_router cluster differs only in how it finds llm-router");
      });

      it("kubectl kustomize builds it: generated ConfigMap names and the image wired into the Pods", { skip: NO_KUBECTL }, () => {
        const r = spawnSync("kubectl", ["kustomize", repo(`${K8S}/${layout}`)], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        const built = parseAllDocuments(r.stdout).map((d) => doc(d.toJS(), "built object"));
        const configMaps = built.filter((o) => o.kind === "ConfigMap").map((o) => String(doc(o.metadata, "metadata").name));
        for (const name of b.configMaps.keys()) assert.ok(configMaps.some((n) => n.startsWith(`${name}-`)), `${name} is generated with a content hash`);
        const image = b.images.map((i) => `${String(i.newName ?? i.name)}:${String(i.newTag)}`)[0];
        for (const d of built.filter((o) => o.kind === "Deployment")) {
          const pod = doc(doc(doc(d.spec, "spec").template, "template").spec, "pod spec");
          for (const v of (pod.volumes ?? []) as Doc[]) if (isDoc(v.configMap)) assert.ok(configMaps.includes(String(v.configMap.name)), `${String(doc(d.metadata, "metadata").name)}: volume ${String(v.name)} names a built ConfigMap`);
          for (const c of (pod.containers ?? []) as Doc[]) if (String(c.image).startsWith("llm-router")) assert.equal(c.image, image);
        }
      });

      it("Envoy mounts that envoy.yaml and listens where its container port and Service point", () => {
        const gateway = workloads(b).find((w) => w.containers.some(isEnvoy))!;
        const envoy = gateway.containers.find(isEnvoy)!;
        const argv = [...strings(envoy.command ?? [], "envoy command"), ...args(envoy)];
        assert.equal(mountedFile(b, gateway, envoy, envoyConfigArg(argv)), rendered);
        const svc = throughService(b, "llm-gateway", listenerPort(envoyConfig));
        assert.equal(svc.workload.name, gateway.name);
        assert.equal(svc.port, listenerPort(envoyConfig));
      });

      it("Envoy's llm_router cluster reaches llm-router's gRPC listener", () => {
        const cluster = envoyClusters(envoyConfig).find((c) => c.name === "llm_router")!;
        const [address] = endpointAddresses(cluster);
        const serve = workloads(b).flatMap((w) => w.containers.filter((c) => runs(c, "serve")).map((c) => ({ w, c })));
        assert.equal(serve.length, 1, "one llm-router container template");
        const { w, c } = serve[0]!;
        const grpcListen = str(containerEnv(b, c).LLM_ROUTER_GRPC_LISTEN, "LLM_ROUTER_GRPC_LISTEN");
        if (layout === "sidecar") {
          const pipe = str(doc(doc(address, "address").pipe, "pipe address").path, "pipe path");
          assert.equal(grpcListen, `unix:${pipe}`);
          assert.equal(cluster.type, "STATIC");
          const envoy = w.containers.find(isEnvoy);
          assert.ok(envoy !== undefined, "Envoy runs in the same Pod");
          const volumeAt = (x: Doc): unknown => ((x.volumeMounts ?? []) as Doc[]).find((m) => m.mountPath === path.posix.dirname(pipe))?.name;
          const shared = volumeAt(c);
          assert.ok(shared !== undefined && shared === volumeAt(envoy), `both containers mount one volume at ${path.posix.dirname(pipe)}`);
          assert.ok(isDoc(((w.pod.volumes ?? []) as Doc[]).find((v) => v.name === shared)?.emptyDir), "an emptyDir");
          // llm-router makes the socket 0660 (src/unix-socket.ts): Envoy connects through its group.
          const gid = (x: Doc): unknown => doc(x.securityContext ?? {}, "securityContext").runAsGroup ?? doc(w.pod.securityContext, "pod securityContext").runAsGroup;
          assert.ok(gid(c) !== undefined && gid(envoy) === gid(c), "Envoy runs in the socket's group");
        } else {
          const socket = doc(doc(address, "address").socket_address, "socket_address");
          assert.equal(cluster.type, "STRICT_DNS");
          const svcName = str(socket.address, "llm_router address");
          const reached = throughService(b, svcName, Number(socket.port_value));
          assert.equal(reached.container, c);
          assert.equal(reached.port, listenPort(grpcListen));
          const svc = doc(object(b, "Service", svcName).body.spec, "llm-router Service spec");
          assert.equal(svc.clusterIP, "None", "headless: Envoy balances streams over every Pod it resolves");
          assert.equal(((svc.ports ?? []) as Doc[]).find((p) => Number(p.port) === Number(socket.port_value))?.appProtocol, "kubernetes.io/h2c");
        }
      });

      it("llm-router: probes, scrape annotations and Redis on the ports the CLI listens on", () => {
        for (const w of workloads(b)) {
          for (const c of w.containers.filter((x) => runs(x, "serve"))) {
            const env = containerEnv(b, c);
            const admin = listenPort(str(env.LLM_ROUTER_ADMIN_LISTEN ?? serveDefault("admin-listen"), "admin listen"));
            const readiness = doc(probe(c, "readinessProbe").httpGet, "readiness httpGet");
            const liveness = doc(probe(c, "livenessProbe").httpGet, "liveness httpGet");
            assert.equal(readiness.path, "/readyz");
            assert.equal(liveness.path, "/healthz");
            for (const g of [readiness, liveness]) assert.equal(containerPort(c, g.port), admin, "probes hit the admin port");
            assert.equal(w.annotations["prometheus.io/scrape"], "true");
            assert.equal(Number(w.annotations["prometheus.io/port"]), admin);
            assert.equal(w.annotations["prometheus.io/path"], "/metrics");
            const redis = new URL(str(env.LLM_ROUTER_REDIS_URL, "LLM_ROUTER_REDIS_URL"));
            const reached = throughService(b, redis.hostname, Number(redis.port));
            assert.match(str(reached.container.image, "image"), /^redis:/);
            assert.equal(reached.port, Number(redis.port));
          }
        }
      });

      it("shuts down in order within the grace period", () => {
        for (const w of workloads(b)) {
          const grace = Number(w.pod.terminationGracePeriodSeconds);
          for (const c of w.containers.filter((x) => runs(x, "serve"))) {
            const drain = Number(containerEnv(b, c).LLM_ROUTER_SHUTDOWN_GRACE_SECONDS ?? serveDefault("shutdown-grace-seconds"));
            assert.ok(grace > preStopSeconds(c) + drain, `${w.name}: terminationGracePeriodSeconds ${grace} > preStop ${preStopSeconds(c)} s + drain ${drain} s`);
            const envoy = w.containers.find(isEnvoy);
            // In one Pod, Envoy's last requests still open upstream-phase streams: llm-router outlives it.
            if (envoy !== undefined) assert.ok(preStopSeconds(c) > preStopSeconds(envoy), `${w.name}: llm-router's preStop outlasts Envoy's`);
          }
          for (const c of w.containers.filter(isEnvoy)) assert.ok(grace > preStopSeconds(c), `${w.name}: Envoy's preStop fits the grace period`);
        }
      });

      it("hardens every Pod: non-root, read-only root, no capabilities, resources", () => {
        for (const w of workloads(b)) {
          const podSecurity = doc(w.pod.securityContext, `${w.name} securityContext`);
          assert.equal(podSecurity.runAsNonRoot, true, `${w.name} runAsNonRoot`);
          assert.equal(w.pod.automountServiceAccountToken, false, `${w.name} automountServiceAccountToken`);
          for (const c of w.containers) {
            const what = `${w.name}/${String(c.name)}`;
            const sc = doc(c.securityContext, `${what} securityContext`);
            assert.equal(sc.allowPrivilegeEscalation, false, `${what} allowPrivilegeEscalation`);
            assert.equal(sc.readOnlyRootFilesystem, true, `${what} readOnlyRootFilesystem`);
            assert.ok(strings(doc(sc.capabilities, `${what} capabilities`).drop, `${what} drop`).includes("ALL"), `${what} drops ALL capabilities`);
            const resources = doc(c.resources, `${what} resources`);
            const requests = doc(resources.requests, `${what} requests`);
            assert.ok(requests.cpu !== undefined && requests.memory !== undefined, `${what} requests cpu and memory`);
            assert.ok(doc(resources.limits, `${what} limits`).memory !== undefined, `${what} limits memory`);
            if (str(c.image, "image").startsWith("llm-router:")) {
              assert.equal(sc.runAsUser ?? podSecurity.runAsUser, imageUid, `${what} runs as the image's USER`);
            }
          }
        }
      });

      it("Services, disruption budgets and autoscalers select what exists", () => {
        for (const s of objects(b, "Service")) selected(b, doc(doc(s.body.spec, "spec").selector, `${s.name} selector`), `Service ${s.name}`);
        for (const p of objects(b, "PodDisruptionBudget")) {
          const w = selected(b, doc(doc(doc(p.body.spec, "spec").selector, "selector").matchLabels, "matchLabels"), `PodDisruptionBudget ${p.name}`);
          assert.ok(Number(doc(p.body.spec, "spec").minAvailable) < Number(w.spec.replicas ?? 2), `${p.name}: minAvailable leaves room to evict`);
        }
        for (const w of workloads(b)) {
          const selector = doc(doc(w.spec.selector, `${w.name} selector`).matchLabels, `${w.name} matchLabels`);
          for (const [k, v] of Object.entries(selector)) assert.equal(w.labels[k], v, `${w.name}: its selector matches its Pods`);
          for (const v of (w.pod.volumes ?? []) as Doc[]) {
            if (isDoc(v.configMap)) assert.ok(b.configMaps.has(str(v.configMap.name, "configMap name")), `${w.name}: ConfigMap ${String(v.configMap.name)} is generated`);
          }
        }
        const hpas = objects(b, "HorizontalPodAutoscaler");
        if (layout === "separate") assert.equal(hpas.length, 1, "llm-router scales on CPU");
        for (const h of hpas) {
          const spec = doc(h.body.spec, "HPA spec");
          const target = doc(spec.scaleTargetRef, "scaleTargetRef");
          const w = workloads(b).find((x) => x.name === target.name && target.kind === "Deployment");
          assert.ok(w !== undefined, `${h.name} scales a Deployment of the build`);
          assert.equal(w.spec.replicas, undefined, `${w.name}: no replicas field, the HPA owns the count`);
          assert.ok(list(spec.metrics, "metrics").some((m) => doc(doc(m, "metric").resource ?? {}, "resource").name === "cpu"), `${h.name} on CPU`);
          for (const c of w.containers) assert.ok(doc(doc(c.resources, "resources").requests, "requests").cpu !== undefined, `${w.name}: CPU utilisation needs CPU requests`);
        }
      });
    });
  }

  it("the Secret holds placeholders only, and llm-router refuses the HMAC placeholder", () => {
    for (const [, b] of BUILDS) {
      for (const s of objects(b, "Secret")) {
        assert.equal(s.body.data, undefined, `${s.name}: stringData only, readable placeholders`);
        for (const [k, v] of Object.entries(doc(s.body.stringData, `${s.name} stringData`))) assert.equal(v, PLACEHOLDER, `${s.name}.${k} is a placeholder`);
      }
      const hmac = str(doc(object(b, "Secret", "llm-router-secrets").body.stringData, "stringData").LLM_ROUTER_HMAC_KEYS, "LLM_ROUTER_HMAC_KEYS");
      assert.throws(() => new ContextSigner(parseKeys(hmac), 1000), /at least 32 bytes/);
    }
  });

  it("uses one llm-router image and the Redis image docker-compose.yml runs", () => {
    for (const [layout, b] of BUILDS) {
      const images = new Set(workloads(b).flatMap((w) => w.containers.filter((c) => !isEnvoy(c) && !str(c.image, "image").startsWith("redis:")).map((c) => str(c.image, "image"))));
      assert.equal(images.size, 1, `${layout}: ${[...images].join(", ")}`);
      assert.ok(b.images.some((i) => `${String(i.name)}:${String(i.newTag)}` === [...images][0]), `${layout}: kustomization images names it`);
      const redis = workloads(b).flatMap((w) => w.containers.filter((c) => str(c.image, "image").startsWith("redis:")).map((c) => c.image));
      assert.deepEqual([...new Set(redis)], [service("redis").image]);
    }
  });
});

describe("Envoy is one pinned version everywhere", () => {
  it("docker-compose.yml, deploy/k8s, the Envoy bases and the README", () => {
    const image = str(service("envoy").image, "compose envoy image");
    const version = /^envoyproxy\/envoy:(v\d+\.\d+\.\d+)$/.exec(image)?.[1];
    assert.ok(version !== undefined, `${image} pins vX.Y.Z`);
    for (const [layout, b] of BUILDS) {
      for (const w of workloads(b)) for (const c of w.containers.filter(isEnvoy)) assert.equal(c.image, image, `${layout} ${w.name}`);
    }
    for (const f of ["envoy/envoy.base.yaml", ...LAYOUTS.map((l) => `${K8S}/${l}/envoy.base.yaml`)]) {
      const named = [...readText(f).matchAll(/envoyproxy\/envoy:(v[\d.]+\d)/g)].map((m) => m[1]);
      assert.ok(named.length > 0 && named.every((v) => v === version), `${f} names ${version}`);
    }
    const readme = [...readText("README.md").matchAll(/Target: \*\*Envoy (v[\d.]+\d)\*\*/g)].map((m) => m[1]);
    assert.deepEqual(readme, [version]);
  });
});

// ---------------------------------------------------------------------------------------------
// Against the running code: the health endpoints, the README's curls, the sidecar's Unix socket

/** Shell words of a command line (quotes and backslashes as sh reads them; enough for the README). */
function shellWords(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g)) out.push(m[1] ?? m[2]?.replace(/\\(.)/g, "$1") ?? m[3] ?? "");
  return out;
}

/** The curl commands of a README section, as harness requests. */
function readmeCurls(section: string): Array<{ line: string; request: HarnessRequest }> {
  const text = readText("README.md");
  const start = text.indexOf(`\n## ${section}\n`);
  assert.ok(start >= 0, `README has "## ${section}"`);
  const body = text.slice(start + 1, text.indexOf("\n## ", start + 1));
  const lines = [...body.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.replace(/\\\n\s*/g, "").split("\n"));
  return lines
    .filter((l) => l.startsWith("curl "))
    .map((line) => {
      const w = shellWords(line).slice(1);
      const headers: Record<string, string> = {};
      let url: string | undefined;
      let data: string | undefined;
      for (let i = 0; i < w.length; i++) {
        if (w[i] === "-H") {
          const [name = "", ...value] = w[++i]!.split(":");
          headers[name.trim().toLowerCase()] = value.join(":").trim();
        } else if (w[i] === "-d") data = w[++i];
        else if (!w[i]!.startsWith("-")) url = w[i];
      }
      assert.ok(url !== undefined, `a URL in: ${line}`);
      const u = new URL(url.startsWith("http") ? url : `http://${url}`);
      return { line, request: { method: data === undefined ? "GET" : "POST", path: u.pathname + u.search, headers, ...(data === undefined ? {} : { body: data }) } };
    });
}

function labelNamesOf(metric: object): string[] {
  if (!("labelNames" in metric) || !Array.isArray(metric.labelNames)) return [];
  return metric.labelNames.filter((l): l is string => typeof l === "string");
}

const execFileAsync = promisify(execFile);

describe("against the running service", () => {
  let svc: TestService;
  let mock: MockProvider;
  before(async () => {
    svc = await startTestService(repo(DEMO_POLICY));
    mock = await startMockProvider({});
  });
  after(async () => {
    await mock.close();
    await svc.stop();
  });

  it("the admin server serves every path the HEALTHCHECK, compose and the k8s probes request", async () => {
    const plan = dockerfilePlan();
    const runtime = plan.stages.at(-1)!;
    const routerPaths = new Set<string>();
    const mockPaths = new Set<string>();
    for (const t of probeTargets(argvOf(last(runtime, "HEALTHCHECK")).join(" "))) routerPaths.add(t.path);
    for (const n of builtServices("serve")) for (const t of probeTargets(composeHealthcheck(n).join(" "))) routerPaths.add(t.path);
    for (const n of builtServices("mock-provider")) for (const t of probeTargets(composeHealthcheck(n).join(" "))) mockPaths.add(t.path);
    for (const [, b] of BUILDS) {
      for (const w of workloads(b)) {
        for (const c of w.containers) {
          const paths = runs(c, "serve") ? routerPaths : runs(c, "mock-provider") ? mockPaths : undefined;
          for (const kind of ["readinessProbe", "livenessProbe"] as const) {
            const get = isDoc(c[kind]) ? doc(c[kind], kind).httpGet : undefined;
            if (isDoc(get)) {
              assert.ok(paths !== undefined, `${w.name}/${String(c.name)}: an HTTP probe on a container this test knows`);
              paths.add(str(get.path, "probe path"));
            }
          }
          if (runs(c, "serve")) routerPaths.add(str(w.annotations["prometheus.io/path"], "prometheus.io/path"));
        }
      }
    }
    assert.deepEqual([...routerPaths].sort(), ["/healthz", "/metrics", "/readyz"]);
    assert.deepEqual([...mockPaths], ["/healthz"]);
    for (const p of routerPaths) assert.equal((await fetch(`http://127.0.0.1:${svc.adminPort}${p}`)).status, 200, `llm-router ${p}`);
    for (const p of mockPaths) assert.equal((await fetch(`${mock.url}${p}`)).status, 200, `mock ${p}`);
  });

  it("the Dockerfile's HEALTHCHECK command passes against it, and fails without it", async () => {
    const [cmd = "", ...rest] = argvOf(last(dockerfilePlan().stages.at(-1)!, "HEALTHCHECK"));
    const run = (listen: string) => execFileAsync(cmd === "node" ? process.execPath : cmd, rest, { env: { PATH: process.env.PATH, LLM_ROUTER_ADMIN_LISTEN: listen }, timeout: 5000 });
    await run(`0.0.0.0:${svc.adminPort}`);
    await assert.rejects(run("127.0.0.1:1"));
  });

  it("README \"Set up\": its knobs, ports and metrics are compose's and the service's", () => {
    const text = readText("README.md");
    const setUp = text.slice(text.indexOf("\n## Set up\n"), text.indexOf("\n## ", text.indexOf("\n## Set up\n") + 1));
    const composeText = readText("docker-compose.yml");
    const knobs = [...setUp.matchAll(/`(MOCK_\w+)` \((?:default )?([\d.]+)\)/g)];
    assert.ok(knobs.length >= 4, "the mock knobs are documented");
    for (const [, name, value] of knobs) assert.ok(composeText.includes(`\${${name}:-${value}}`), `compose reads ${name} with default ${value}`);
    const published = Object.keys(services).flatMap((n) => strings(service(n).ports ?? [], `${n} ports`).map((p) => Number(p.split(":").at(-2))));
    for (const [, port] of setUp.matchAll(/localhost:(\d+)/g)) assert.ok(published.includes(Number(port)), `compose publishes localhost:${port}`);
    for (const m of setUp.matchAll(/sum by \(([\w, ]+)\) \((llm_router_\w+)\)/g)) {
      const metric = svc.metrics.registry.getSingleMetric(m[2]!);
      assert.ok(metric !== undefined, `${m[2]} is a metric`);
      for (const l of m[1]!.split(",").map((x) => x.trim())) assert.ok(labelNamesOf(metric).includes(l), `${m[2]} has label ${l}`);
    }
  });
});

describe("README \"Set up\" curls through the demo's Envoy config", () => {
  let svc: TestService;
  let steady: MockProvider;
  let flaky: MockProvider;
  let envoy: EnvoyHarness;
  before(async () => {
    svc = await startTestService(repo(DEMO_POLICY));
    const env = (name: string) => parseMockProviderArgs(composeCommand(name).slice(1), composeEnv(name));
    steady = await startMockProvider({ ...env("mock-provider"), port: 0, host: "127.0.0.1" });
    // MOCK_FLAKY_FAILURE_RATE=1: every request falls back, so the headers are deterministic.
    flaky = await startMockProvider({ ...env("mock-flaky"), port: 0, host: "127.0.0.1", failureRate: 1 });
    envoy = await EnvoyHarness.start({
      envoyYaml: repo("envoy/envoy.demo.yaml"),
      extProcAddress: svc.address,
      hostEndpoints: { "mock-provider": steady.url, "mock-flaky": flaky.url },
    });
  });
  after(async () => {
    await envoy.close();
    await Promise.all([steady.close(), flaky.close()]);
    await svc.stop();
  });

  it("each curl is answered after a fallback, with the target and attempt headers", async () => {
    const curls = readmeCurls("Set up");
    assert.equal(curls.length, 2, "a plain and a streaming curl");
    for (const { line, request } of curls) {
      const res = await envoy.request(request);
      assert.equal(res.status, 200, `${line}\n${res.text()}`);
      assert.equal(res.headers["x-llm-router-target"], "mock-gpt", line);
      assert.equal(res.headers["x-llm-router-attempt"], "2", line);
      assert.ok(Object.keys(res.headers).some((h) => h.startsWith("x-ratelimit-")), `${line}: x-ratelimit-* headers`);
      const streamed = (JSON.parse(String(request.body)) as { stream?: boolean }).stream === true;
      if (streamed) {
        assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
        assert.match(res.text(), /data: \[DONE\]\s*$/);
      } else {
        assert.match(String(res.headers["content-type"]), /^application\/json/);
      }
    }
  });
});

describe("sidecar layout over its Unix socket", () => {
  it("the Envoy harness reaches llm-router through the socket path both sides name", async () => {
    const b = build("sidecar");
    const cluster = envoyClusters(doc(parseEnvoyYaml(readText(`${K8S}/sidecar/envoy.yaml`)), "sidecar envoy.yaml")).find((c) => c.name === "llm_router")!;
    const pipe = str(doc(endpointAddresses(cluster)[0]!.pipe, "pipe").path, "pipe path");
    const serve = workloads(b).flatMap((w) => w.containers.filter((c) => runs(c, "serve")))[0]!;
    assert.equal(containerEnv(b, serve).LLM_ROUTER_GRPC_LISTEN, `unix:${pipe}`);
    // The same file name, in a temp dir standing for the emptyDir.
    const dir = fs.mkdtempSync(path.join(tmpdir(), "llm-router-uds-"));
    const socket = path.join(dir, path.basename(pipe));
    const svc = await startService({
      policyFile: repo(K8S_POLICY),
      grpcListen: `unix:${socket}`,
      adminListen: undefined,
      hmacKeys: [TEST_HMAC_KEY],
      contextMaxAgeMs: 60_000,
      maxBodyBytes: 16 * 1024 * 1024,
      log: pino({ level: "silent" }),
      watchPolicy: false,
      env: {},
    });
    const mock = await startMockProvider({});
    const envoy = await EnvoyHarness.start({ envoyYaml: repo(`${K8S}/sidecar/envoy.yaml`), extProcAddress: `unix:${socket}`, hostEndpoints: { "mock-provider": mock.url, "mock-flaky": mock.url } });
    try {
      const curl = readmeCurls("Set up")[0];
      assert.ok(curl !== undefined, "README's curl");
      const res = await envoy.request(curl.request);
      assert.equal(res.status, 200, res.text());
      assert.ok(res.headers["x-llm-router-target"] !== undefined);
    } finally {
      await envoy.close();
      await mock.close();
      await svc.shutdown(1000);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
