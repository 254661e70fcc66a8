// `npm run bench`: the service against a do-nothing ext_proc server on the same grpc-js stack, both
// in child processes (their CPU measured with process.cpuUsage() over IPC), driven by the same
// Envoy-like streams from this process. Then quota admission (the service with a limits rule kept
// in memory and in Redis) and response-cache hits (memory and Redis). Then the open loop
// (bench/open-loop.ts): both servers at fixed request rates, JSON and streamed answers, latency from
// each request's scheduled start, first one process each, then `serve --workers 2` against a
// do-nothing server with two workers (bench/open-loop-workers.ts). Prints markdown tables and writes bench/results/latest.md, and
// the open loop's own table and chart: bench/results/open-loop.md, latency-vs-rate.png.
//
// BENCH_ONLY=<substring>[,<substring>...] runs only the scenarios whose names contain one of them
// (e.g. BENCH_ONLY="chunk stream": the streamed answer, passed through and translated), against
// the service and the do-nothing server only: no quota admission, cache hits, routing decision or
// observability sections, no Redis, and bench/results/latest.md is left alone (a subset is printed,
// not recorded). BENCH_ONLY=open-loop runs the open-loop section (alone, or with the scenarios
// named beside it); it writes open-loop.md and latency-vs-rate.png, not latest.md. Its knobs
// (rates, durations) are described in bench/open-loop.ts (openLoopFromEnv).
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { measureAdmission, printAdmission } from "./admission";
import { measureCacheHits, primeCache, printCacheHits } from "./cache-hit";
import { chatBody } from "./body";
import { writeChartPng } from "./chart";
import { checkService, checkTranslated } from "./check-service";
import { measureDecisions } from "./decision";
import { measureObservability } from "./observability-cost";
import { drive, driveFor, EnvoyLikeClient, TRANSLATED, type Flow, type RequestCase, type Routing } from "./envoy-client";
import { cpuPerRequest, fmt, measureTurns, mergeMeasured, percentile, type Measured, type Server } from "./measure";
import { measureWorkers, workersTable } from "./workers";
import { measureWorkersOpenLoop } from "./open-loop-workers";
import { childTargets, measureOpenLoop, openLoopChart, openLoopFromEnv, printOpenLoop, type OpenLoopRow, type OpenLoopWorkload, type ServerRole } from "./open-loop";
import { BenchRedis } from "./redis";
import { TRANSLATED_MODEL } from "./policy";
import { anthropicSseAnswer, jsonAnswer, sseAnswer, streamedText } from "./response";
import { ServerChild } from "./child";
import { translationCost } from "./translation-cost";
import { usageReadUsPerChunk } from "./usage-cost";

/** Requests in flight per server. */
const CONCURRENCY = 32;
/** Scales every request count (e.g. BENCH_SCALE=0.1 for a quick smoke run). */
const SCALE = Number(process.env.BENCH_SCALE ?? "1") > 0 ? Number(process.env.BENCH_SCALE ?? "1") : 1;
const WARMUP_MS = 2000 * Math.min(1, SCALE);
/** Rounds per scenario; servers alternate who goes first, totals are summed over rounds. */
const ROUNDS = 4;
const RESULTS_FILE = path.resolve(__dirname, "../../bench/results/latest.md");
const OPEN_LOOP_FILE = path.resolve(__dirname, "../../bench/results/open-loop.md");
const OPEN_LOOP_CHART = path.resolve(__dirname, "../../bench/results/latency-vs-rate.png");

const KiB = 1024;
const MiB = 1024 * KiB;
/** `data:` chunks of the streamed answer (plus its usage chunk and `data: [DONE]`). */
const STREAM_CHUNKS = 200;

interface Scenario {
  name: string;
  flow: Flow;
  bytes: number;
  /** Streamed answer (a `stream: true` request); otherwise one JSON chunk. */
  stream?: boolean;
  /**
   * An OpenAI client on the Anthropic target (bench/policy.ts): the same streamed answer from
   * Anthropic, translated by the upstream phase. Streams only.
   */
  translated?: boolean;
  /** Requests per server per round. */
  count: number;
}

const ONE_KIB_SCENARIO: Scenario = { name: "both phases, 1 KiB", flow: "both", bytes: KiB, count: 3000 };
const ONE_MIB_SCENARIO: Scenario = { name: "both phases, 1 MiB", flow: "both", bytes: MiB, count: 200 };
const STREAM_SCENARIO: Scenario = { name: `both phases, ${STREAM_CHUNKS}-chunk stream`, flow: "both", bytes: KiB, stream: true, count: 400 };
const TRANSLATED_SCENARIO: Scenario = {
  name: `both phases, ${STREAM_CHUNKS}-chunk stream, translated (OpenAI client, Anthropic target)`,
  flow: "both",
  bytes: KiB,
  stream: true,
  translated: true,
  count: 400,
};
const ALL_SCENARIOS: Scenario[] = [
  ONE_KIB_SCENARIO,
  { name: "both phases, 64 KiB", flow: "both", bytes: 64 * KiB, count: 1000 },
  ONE_MIB_SCENARIO,
  STREAM_SCENARIO,
  TRANSLATED_SCENARIO,
  { name: "router phase only, 1 KiB", flow: "router", bytes: KiB, count: 4000 },
  { name: "upstream phase only, 1 KiB", flow: "upstream", bytes: KiB, count: 4000 },
];

/** Measured together, taking turns (see main). */
const PAIRED: readonly Scenario[] = [STREAM_SCENARIO, TRANSLATED_SCENARIO];

/** BENCH_ONLY (see the top of this file): substrings of the scenario names to run; empty: everything. */
const ONLY = (process.env.BENCH_ONLY ?? "")
  .split(",")
  .map((o) => o.trim())
  .filter((o) => o !== "");
const SUBSET = ONLY.length > 0;
/** BENCH_ONLY's name for the open-loop section (no scenario name contains it). */
const OPEN_LOOP_SECTION = "open-loop";
const OPEN_LOOP = !SUBSET || ONLY.includes(OPEN_LOOP_SECTION);
/** BENCH_ONLY's name for `serve --workers` throughput (bench/workers.ts: 1 worker against 2). */
const WORKERS_SECTION = "workers";
const WORKERS = !SUBSET || ONLY.includes(WORKERS_SECTION);
const SCENARIOS = SUBSET ? ALL_SCENARIOS.filter((s) => ONLY.some((o) => s.name.includes(o))) : ALL_SCENARIOS;
const OPEN_LOOP_CONFIG = openLoopFromEnv(SCALE);

/** Quota admission: more, shorter rounds than the scenarios, for a per-round spread of the p99s. */
const ADMISSION_ROUNDS = 8;
/** Requests per server per round, at CONCURRENCY and at one in flight. */
const ADMISSION_COUNT = 1000;
const ADMISSION_COUNT_ONE = 250;
/**
 * The open-loop rate for the admission target: about a third of what one stream at a time
 * completes here, so the machine has idle cores and the p99 shows the store, not the run queue.
 */
const ADMISSION_RATE = 150;
const ADMISSION_COUNT_RATE = 450;

/** Cache hits: rounds and requests per server per round. */
const CACHE_ROUNDS = 4;
const CACHE_COUNT = 3000;

const TARGET_RATIO_1KIB = 1.5;
/** The routing decision's share of a request's CPU (issue: under 5 % with a 50-target policy). */
const TARGET_DECISION_SHARE = 0.05;
/** Metrics and the request log line together (issue: under 10 % of a request's CPU). */
const TARGET_OBSERVABILITY_SHARE = 0.1;
const TARGET_CPU_1MIB_US = 5000;
/** Issue: translating a 200-chunk stream costs under 2x passing it through untranslated (service CPU per request). */
const TARGET_TRANSLATED_RATIO = 2;

const scaled = (count: number) => Math.max(10, Math.round(count * SCALE));

/** One RequestCase per body size and answer kind, built once. */
const cases = new Map<string, RequestCase>();
function caseOf(s: { bytes: number; stream?: boolean; translated?: boolean }): RequestCase {
  const key = `${s.bytes}/${s.stream === true}/${s.translated === true}`;
  let c = cases.get(key);
  if (c === undefined) {
    if (s.translated === true) {
      if (s.stream !== true) throw new Error("the translated scenario is a stream");
      c = { body: chatBody(s.bytes, { stream: true, model: TRANSLATED_MODEL }), answer: anthropicSseAnswer(STREAM_CHUNKS), destination: TRANSLATED };
    } else {
      c = { body: chatBody(s.bytes, { stream: s.stream }), answer: s.stream ? sseAnswer(STREAM_CHUNKS) : jsonAnswer() };
    }
    cases.set(key, c);
  }
  return c;
}

async function serve(child: ServerChild): Promise<Server> {
  return { name: child.name, child, client: new EnvoyLikeClient(`127.0.0.1:${await child.port}`) };
}

async function main(): Promise<void> {
  const out: string[] = [];
  const print = (line = "") => {
    console.log(line);
    out.push(line);
  };
  const cpus = os.cpus();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const grpcVersion = (require("@grpc/grpc-js/package.json") as { version: string }).version;
  print("# llm-router ext_proc benchmark");
  print();
  // Also the head of open-loop.md.
  const machine = [
    `- date: ${new Date().toISOString()}`,
    `- node ${process.version}, @grpc/grpc-js ${grpcVersion}, ${os.platform()} ${os.release()} ${os.arch()}`,
    `- cpu: ${cpus[0]?.model.trim() ?? "unknown"}, ${cpus.length} cores (availableParallelism ${os.availableParallelism()}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM`,
  ];
  for (const line of machine) print(line);
  print(`- each server in its own child process; client in the driver process; ${CONCURRENCY} requests in flight; ${ROUNDS} rounds per scenario alternating the servers; warm-up ${WARMUP_MS / 1000} s per server`);
  if (SUBSET) print(`- subset (BENCH_ONLY=${ONLY.join(",")}): ${[...SCENARIOS.map((s) => s.name), ...(OPEN_LOOP ? [OPEN_LOOP_SECTION] : []), ...(WORKERS ? [WORKERS_SECTION] : [])].join("; ") || "no scenario matches"}`);
  print();
  // First, while no other bench process runs: the workers use every core.
  const workers = WORKERS ? await measureWorkers() : undefined;
  if (workers !== undefined) console.error("  done: workers");
  const printWorkers = () => {
    if (workers === undefined) return;
    print();
    print(
      "`serve --workers N`: requests/s of the CLI with 1 worker and with 2, driven closed-loop on the same machine by two load generators in turn: a minimal HTTP/2 client in Node (bench/raw-driver.ts), which sends each request's messages in Envoy's order, waiting for each reply, and h2load (nghttp2's C client, bench/h2load.ts), which sends each phase's messages at once on a stream of its own and leaves the service more of the cores.",
    );
    print();
    print(workersTable(workers));
  };
  if (SCENARIOS.length === 0 && !OPEN_LOOP) {
    if (WORKERS) {
      printWorkers();
      console.log(`\nBENCH_ONLY run: not written to ${path.relative(process.cwd(), RESULTS_FILE)}`);
      return;
    }
    throw new Error(`BENCH_ONLY=${ONLY.join(",")} matches no scenario: ${ALL_SCENARIOS.map((s) => s.name).join("; ")}`);
  }

  const redis = SUBSET ? "not used by a BENCH_ONLY run" : await BenchRedis.connect();
  if (typeof redis === "string" && !SUBSET) console.error(`Redis row skipped: ${redis}`);
  const children = [new ServerChild("service", "server-service.js"), new ServerChild("do-nothing", "server-noop.js")];
  if (!SUBSET) children.push(new ServerChild("rule in memory", "server-service.js", ["--limits"]));
  const redisArgs = typeof redis === "string" ? undefined : ["--redis-url", redis.url, "--redis-prefix", redis.prefix];
  if (redisArgs !== undefined) children.push(new ServerChild("rule in Redis", "server-service.js", ["--limits", ...redisArgs]));
  const cacheChildren = SUBSET ? [] : [new ServerChild("cache in memory", "server-service.js", ["--cache"])];
  if (redisArgs !== undefined) cacheChildren.push(new ServerChild("cache in Redis", "server-service.js", ["--cache", ...redisArgs]));
  children.push(...cacheChildren);
  const servers: Server[] = [];
  try {
    for (const child of children) servers.push(await serve(child));
    const [service, noop] = servers as [Server, Server];
    const memory = servers.find((s) => s.name === "rule in memory");
    const inRedis = servers.find((s) => s.name === "rule in Redis");
    const cached = servers.filter((s) => cacheChildren.some((c) => c.name === s.name));
    if (typeof redis !== "string") for (const s of [inRedis, cached[1]]) if (s !== undefined) s.storeCpuUs = () => redis.cpuUs();

    // The service answers correctly for every case. Its routing decision for each case becomes the
    // template both clients use where they need one (upstream-only streams; the do-nothing
    // server's upstream streams), so that both servers receive the same messages.
    const templates = new Map<RequestCase, Routing | undefined>();
    // The 1 KiB case too, whatever BENCH_ONLY selects: every server warms up on it. The open loop
    // runs the 1 KiB and stream cases.
    for (const s of [ONE_KIB_SCENARIO, ...(OPEN_LOOP ? [STREAM_SCENARIO] : []), ...SCENARIOS]) {
      const c = caseOf(s);
      if (templates.has(c)) continue;
      if (s.translated === true) await checkTranslated(service.client, c, streamedText(STREAM_CHUNKS));
      else await checkService(service.client, c);
      templates.set(c, (await service.client.request(s.translated === true ? "both" : "router", c)).routing);
    }
    for (const s of [memory, inRedis]) if (s !== undefined) await checkService(s.client, caseOf(ONE_KIB_SCENARIO));
    const useTemplate = (c: RequestCase) => {
      for (const s of servers) s.client.template = templates.get(c);
    };

    const small = caseOf({ bytes: KiB });
    for (const s of cached) await primeCache(s.client, small);
    for (const s of servers) {
      useTemplate(small);
      await driveFor(s.client, cached.includes(s) ? "cache-hit" : "both", small, WARMUP_MS, CONCURRENCY);
      if (s !== service && s !== noop) continue;
      for (const w of SCENARIOS) {
        useTemplate(caseOf(w));
        await drive(s.client, w.flow, caseOf(w), Math.min(200, Math.ceil(w.count / 15)), CONCURRENCY);
      }
    }

    const results = new Map<string, { service: Measured; noop: Measured }>();
    for (const s of SCENARIOS) {
      if (results.has(s.name)) continue;
      // The stream passed through and translated are compared with each other (a target ratio):
      // measured in the same rounds, taking turns, like the two servers.
      const group = PAIRED.includes(s) && PAIRED.every((p) => SCENARIOS.includes(p)) ? PAIRED : [s];
      const turns = group.flatMap((g) =>
        [noop, service].map((server) => ({ server, flow: g.flow, c: caseOf(g), count: scaled(g.count), before: () => useTemplate(caseOf(g)) })),
      );
      const batches = await measureTurns(turns, ROUNDS, CONCURRENCY);
      group.forEach((g, j) => results.set(g.name, { noop: mergeMeasured(batches[2 * j]!), service: mergeMeasured(batches[2 * j + 1]!) }));
      console.error(`  done: ${group.map((g) => g.name).join("; ")}`);
    }

    const openLoop = async (): Promise<OpenLoopRow[] | undefined> => {
      if (!OPEN_LOOP) return undefined;
      const rows = await measureOpenLoop(openLoopWorkloads({ service, "do-nothing": noop }, useTemplate), OPEN_LOOP_CONFIG.settings);
      // Then every core: `serve --workers 2` (the children above sit idle meanwhile).
      const { workersJsonRates: jsonRates, workersStreamRates: streamRates, settings } = OPEN_LOOP_CONFIG;
      return [...rows, ...(await measureWorkersOpenLoop({ workers: 2, jsonRates, streamRates, settings }))];
    };
    if (SUBSET || memory === undefined) {
      if (SCENARIOS.length > 0) {
        printScenarios(results, print);
        printTargets(results, print);
        printStreaming(results, print);
        printTranslation(results, print);
      }
      const rows = await openLoop();
      if (rows !== undefined) writeOpenLoop(rows, machine, print);
      printWorkers();
      console.log();
      console.log(`BENCH_ONLY run: not written to ${path.relative(process.cwd(), RESULTS_FILE)}`);
      return;
    }

    useTemplate(small);
    const admissionServers = { none: service, memory, redis: inRedis };
    const admission = [
      // Open loop (the target), at the bench's concurrency, then alone: the store's own round trip.
      await measureAdmission(admissionServers, small, scaled(ADMISSION_COUNT_RATE), ADMISSION_ROUNDS, { perSecond: ADMISSION_RATE }),
      await measureAdmission(admissionServers, small, scaled(ADMISSION_COUNT), ADMISSION_ROUNDS, CONCURRENCY),
      await measureAdmission(admissionServers, small, scaled(ADMISSION_COUNT_ONE), ADMISSION_ROUNDS, 1),
    ];
    console.error("  done: quota admission");
    const hits = await measureCacheHits(
      [{ name: "do-nothing (same two messages)", server: noop }, ...cached.map((server) => ({ name: server.name, server }))],
      small,
      scaled(CACHE_COUNT),
      CACHE_ROUNDS,
      CONCURRENCY,
    );
    console.error("  done: cache hits");
    const openLoopRows = await openLoop();
    if (inRedis !== undefined && typeof redis !== "string" && (await redis.keys()).length === 0) {
      throw new Error("the Redis-backed service wrote no keys: its rows did not measure Redis");
    }

    printScenarios(results, print);
    printTargets(results, print);
    printStreaming(results, print);
    printTranslation(results, print);
    printDecisions(results, print);
    printObservability(results, print);

    print();
    print(
      `Quota admission: the router phase's reply to request_body (where it admits the request: no store call when no rule applies, else one per request: a Map in memory, or one Lua script in Redis), timed by the client; both phases at 1 KiB, ${CONCURRENCY} and 1 in flight, the servers taking turns. The rule has three limits (requests/min, tokens/min, USD/day) none of which refuses. redis-server CPU covers admission and settlement scripts (the whole server; other clients included).`,
    );
    print();
    printAdmission(admission, typeof redis === "string" ? redis : undefined, print);

    print();
    print(
      `Response-cache hits: the router phase answers request_body with the stored answer (an ImmediateResponse: ${small.answer.chunks.reduce((n, ch) => n + ch.length, 0)} bytes of JSON), no upstream phase; a 1 KiB chat request, ${CONCURRENCY} in flight, ${CACHE_ROUNDS} rounds taking turns. The do-nothing server gets the same request headers and body and continues.`,
    );
    print();
    const oneKiB = results.get(ONE_KIB_SCENARIO.name);
    printCacheHits(hits, "do-nothing (same two messages)", oneKiB && cpuPerRequest(oneKiB.service), print);
    if (openLoopRows !== undefined) writeOpenLoop(openLoopRows, machine, print);
    printWorkers();

    mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
    writeFileSync(RESULTS_FILE, `${out.join("\n")}\n`);
    console.log();
    console.log(`written to ${path.relative(process.cwd(), RESULTS_FILE)}`);
  } finally {
    for (const s of servers) s.client.close();
    await Promise.all(children.map((c) => c.stop()));
    // After the children: their shutdown writes the last settlements.
    if (typeof redis !== "string") {
      await redis.dropKeys();
      redis.close();
    }
  }
}

type Results = Map<string, { service: Measured; noop: Measured }>;
type Print = (line?: string) => void;

/** The open loop's workloads: both phases with the 1 KiB JSON answer, and with the 200-chunk stream. */
function openLoopWorkloads(servers: Record<ServerRole, Server>, useTemplate: (c: RequestCase) => void): OpenLoopWorkload[] {
  return [
    { scenario: ONE_KIB_SCENARIO, rates: OPEN_LOOP_CONFIG.jsonRates },
    { scenario: STREAM_SCENARIO, rates: OPEN_LOOP_CONFIG.streamRates },
  ].map(({ scenario, rates }) => {
    const c = caseOf(scenario);
    return { name: scenario.name, rates, before: () => useTemplate(c), targets: childTargets(servers, scenario.flow, c) };
  });
}

/** Prints the open-loop section and writes it, with the machine's lines, to open-loop.md, and its chart. */
function writeOpenLoop(rows: OpenLoopRow[], machine: string[], print: Print): void {
  const settings = OPEN_LOOP_CONFIG.settings;
  const own: string[] = ["# llm-router ext_proc open-loop benchmark", "", ...machine, "- each server in its own child process; client in the driver process", ""];
  const both: Print = (line = "") => {
    print(line);
    own.push(line);
  };
  print();
  printOpenLoop(rows, settings, both);
  both();
  both(`Chart: ${path.basename(OPEN_LOOP_CHART)} (latency against offered rate, service and do-nothing server).`);
  mkdirSync(path.dirname(OPEN_LOOP_FILE), { recursive: true });
  writeFileSync(OPEN_LOOP_FILE, `${own.join("\n")}\n`);
  writeChartPng(openLoopChart(rows, settings), OPEN_LOOP_CHART);
  console.log();
  console.log(`written to ${path.relative(process.cwd(), OPEN_LOOP_FILE)} and ${path.relative(process.cwd(), OPEN_LOOP_CHART)}`);
}

function printScenarios(results: Results, print: Print): void {
  print(
    "Requests/s and CPU count one request: a router stream (request headers, body, then response headers, and the response body if the server asks for it) around, for both phases, the upstream stream of the attempt. Latency is per request, client side, from opening the router stream (upstream only: the upstream stream) to its OK status.",
  );
  print();
  print("| Scenario | Server | Requests | Req/s | p50 ms | p99 ms | CPU µs/req | Extra CPU µs/req | CPU ratio service/do-nothing |");
  print("|---|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const s of SCENARIOS) {
    const r = results.get(s.name);
    if (r === undefined) continue;
    for (const [name, m] of [
      ["service", r.service],
      ["do-nothing", r.noop],
    ] as const) {
      const isService = name === "service";
      const extra = isService ? fmt(cpuPerRequest(r.service) - cpuPerRequest(r.noop), 0) : "";
      const ratio = isService ? `${fmt(cpuPerRequest(r.service) / cpuPerRequest(r.noop), 2)}x` : "";
      print(
        `| ${s.name} | ${name} | ${m.requests} | ${fmt(m.requests / (m.wallMs / 1000), 0)} | ${fmt(percentile(m.latencies, 50), 2)} | ${fmt(percentile(m.latencies, 99), 2)} | ${fmt(cpuPerRequest(m), 0)} | ${extra} | ${ratio} |`,
      );
    }
  }
  print();
}

function printTargets(results: Results, print: Print): void {
  print("Targets:");
  print();
  const one = results.get(ONE_KIB_SCENARIO.name);
  if (one) {
    const ratio = cpuPerRequest(one.service) / cpuPerRequest(one.noop);
    print(
      `- ${ratio <= TARGET_RATIO_1KIB ? "PASS" : "FAIL"}: both phases at 1 KiB use ${fmt(ratio, 2)}x the do-nothing server's CPU per request (${fmt(cpuPerRequest(one.service), 0)} vs ${fmt(cpuPerRequest(one.noop), 0)} µs; target at most ${TARGET_RATIO_1KIB}x)`,
    );
  }
  const big = results.get(ONE_MIB_SCENARIO.name);
  if (big) {
    const us = cpuPerRequest(big.service);
    print(`- ${us < TARGET_CPU_1MIB_US ? "PASS" : "FAIL"}: a 1 MiB body takes ${fmt(us / 1000, 2)} ms of service CPU for both phases (target under ${TARGET_CPU_1MIB_US / 1000} ms)`);
  }
  const passed = results.get(STREAM_SCENARIO.name);
  const translated = results.get(TRANSLATED_SCENARIO.name);
  if (passed && translated) {
    const ratio = cpuPerRequest(translated.service) / cpuPerRequest(passed.service);
    print(
      `- ${ratio < TARGET_TRANSLATED_RATIO ? "PASS" : "FAIL"}: a translated ${STREAM_CHUNKS}-chunk stream (Anthropic to an OpenAI client) takes ${fmt(ratio, 2)}x the service CPU per request of the same stream passed through (${fmt(cpuPerRequest(translated.service), 0)} vs ${fmt(cpuPerRequest(passed.service), 0)} µs; target under ${TARGET_TRANSLATED_RATIO}x)`,
    );
  }
}

/** The cost of STREAMED mode per response body chunk: the do-nothing server never asks for the body. */
function printStreaming(results: Results, print: Print): void {
  const stream = results.get(STREAM_SCENARIO.name);
  const json = results.get(ONE_KIB_SCENARIO.name);
  if (stream === undefined || json === undefined) return;
  const c = caseOf(STREAM_SCENARIO);
  const chunks = c.answer.chunks.length;
  const extra = cpuPerRequest(stream.service) - cpuPerRequest(stream.noop);
  const jsonExtra = cpuPerRequest(json.service) - cpuPerRequest(json.noop);
  const reader = usageReadUsPerChunk(c.answer, Math.max(200, Math.round(2000 * SCALE)));
  print();
  print(
    `Streamed response body (${chunks} response_body messages: ${STREAM_CHUNKS} \`data:\` chunks, the usage chunk, \`data: [DONE]\`; the do-nothing server never asks for them): the service spends ${fmt(extra, 0)} µs more CPU per request than the do-nothing server, ${fmt(extra / chunks, 1)} µs per chunk. Less the 1 KiB JSON request's extra (${fmt(jsonExtra, 0)} µs: routing, one JSON body chunk), ${fmt((extra - jsonExtra) / (chunks - 1), 1)} µs per additional chunk. The usage reader alone (SSE framing, JSON.parse of each event, cutting out the usage chunk), in-process: ${fmt(reader, 2)} µs per chunk.`,
  );
}

/**
 * What translating a streamed answer costs: the translated stream scenario against the same stream
 * passed through (service CPU per request), and the translation in-process next to the usage reader.
 */
function printTranslation(results: Results, print: Print): void {
  const passed = results.get(STREAM_SCENARIO.name);
  const translated = results.get(TRANSLATED_SCENARIO.name);
  if (passed === undefined || translated === undefined) return;
  const anthropic = caseOf(TRANSLATED_SCENARIO).answer;
  const openai = caseOf(STREAM_SCENARIO).answer;
  const chunks = anthropic.chunks.length;
  const passedUs = cpuPerRequest(passed.service);
  const translatedUs = cpuPerRequest(translated.service);
  const ratio = translatedUs / passedUs;
  const iterations = Math.max(200, Math.round(2000 * SCALE));
  const translate = translationCost(anthropic, iterations);
  const reader = usageReadUsPerChunk(openai, iterations);
  print();
  print(
    `Translated stream: the same answer from Anthropic (${chunks} response_body messages, one event each: message_start, content_block_start, ping, ${STREAM_CHUNKS - 2} text deltas, content_block_stop, message_delta, message_stop) for an OpenAI client. The upstream phase asks for it (mode_override), translates each chunk and Envoy passes the ${translate.nonEmpty} non-empty ones on to the router phase, which reads usage from them as from the untranslated stream (${openai.chunks.length} chunks straight from OpenAI). Service CPU per request, both phases:`,
  );
  print();
  print("| Stream | Service CPU µs/req | Extra CPU µs/req | Extra µs per provider chunk | Ratio translated/passed through | Target |");
  print("|---|---:|---:|---:|---:|---|");
  print(`| passed through (OpenAI target) | ${fmt(passedUs, 0)} | | | | |`);
  print(
    `| translated (Anthropic target) | ${fmt(translatedUs, 0)} | ${fmt(translatedUs - passedUs, 0)} | ${fmt((translatedUs - passedUs) / chunks, 1)} | ${fmt(ratio, 2)}x | ${ratio < TARGET_TRANSLATED_RATIO ? "PASS" : "FAIL"} (under ${TARGET_TRANSLATED_RATIO}x) |`,
  );
  print();
  print(
    `In-process, per chunk (no gRPC): the translation (openAiToAnthropic.response(meta, true).streamChunk over the Anthropic answer, a fresh translator per answer) ${fmt(translate.usPerChunk, 2)} µs per provider chunk; the usage reader on the OpenAI answer ${fmt(reader, 2)} µs per chunk. Beyond that, a translated request has ${chunks} more ext_proc messages to answer (the upstream phase's response_body), each with its gRPC and protobuf cost.`,
  );
}

function printDecisions(results: Results, print: Print): void {
  const one = results.get(ONE_KIB_SCENARIO.name);
  if (one === undefined) return;
  const decisions = measureDecisions(caseOf({ bytes: KiB }).body, Math.max(1000, Math.round(20_000 * SCALE)));
  const requestUs = cpuPerRequest(one.service);
  print();
  print(`Routing decision, in-process (route match, request features, eligibility, strategy ranking) on a policy with 50 targets and 16-target chains, next to the service's CPU per both-phase 1 KiB request (${fmt(requestUs, 0)} µs):`);
  print();
  print("| Strategy | µs per decision | Share of request CPU |");
  print("|---|---:|---:|");
  for (const d of decisions) print(`| ${d.strategy} | ${fmt(d.us, 1)} | ${fmt((100 * d.us) / requestUs, 1)} % |`);
  const worst = decisions.reduce((a, b) => (b.us > a.us ? b : a));
  const share = worst.us / requestUs;
  print();
  print(`- ${share <= TARGET_DECISION_SHARE ? "PASS" : "FAIL"}: the costliest decision (${worst.strategy}, ${fmt(worst.us, 1)} µs) is ${fmt(100 * share, 1)} % of a request's CPU (target under ${TARGET_DECISION_SHARE * 100} %)`);
}

function printObservability(results: Results, print: Print): void {
  const one = results.get(ONE_KIB_SCENARIO.name);
  if (one === undefined) return;
  const requestUs = cpuPerRequest(one.service);
  const cost = measureObservability(Math.max(2000, Math.round(50_000 * SCALE)));
  const total = cost.metricsUs + cost.logUs;
  const share = total / requestUs;
  print();
  print(`Metrics and the request log, in-process, for one both-phase chat completion (8 ext_proc messages timed, the request and attempt recorded in the request and GenAI metrics, one JSON log line at info through the service's logger to /dev/null), next to the service's CPU per both-phase 1 KiB request (${fmt(requestUs, 0)} µs; the service measured above logs the same way):`);
  print();
  print("| Part | µs per request | Share of request CPU |");
  print("|---|---:|---:|");
  print(`| metrics | ${fmt(cost.metricsUs, 1)} | ${fmt((100 * cost.metricsUs) / requestUs, 1)} % |`);
  print(`| request log line | ${fmt(cost.logUs, 1)} | ${fmt((100 * cost.logUs) / requestUs, 1)} % |`);
  print();
  print(`- ${share <= TARGET_OBSERVABILITY_SHARE ? "PASS" : "FAIL"}: metrics and logging take ${fmt(total, 1)} µs, ${fmt(100 * share, 1)} % of a request's CPU (target under ${TARGET_OBSERVABILITY_SHARE * 100} %)`);
}

main().then(
  () => {
    // Everything is closed; don't let a stray handle hold the process.
    setTimeout(() => process.exit(0), 2000).unref();
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 2000).unref();
  },
);
