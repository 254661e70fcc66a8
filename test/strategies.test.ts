import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Capability } from "../src/policy/schema";
import { strategySchema, validateStrategy, type StrategyConfig } from "../src/policy/strategy-schema";
import { compileStrategy, rankTargets } from "../src/routing/strategies";
import type { ConsumerView, RequestFeatures, StrategyInput, TargetStats, TargetView } from "../src/routing/strategy-types";

// ---- helpers ---------------------------------------------------------------------------------

interface TargetSpec {
  price?: [input: number, output: number];
  contextWindow?: number;
  maxOutputTokens?: number;
  capabilities?: Capability[];
}

function target(id: string, spec: TargetSpec = {}): TargetView {
  return {
    id,
    provider: "p",
    providerType: "openai",
    model: id,
    price: spec.price ? { inputPerMTok: spec.price[0], outputPerMTok: spec.price[1] } : undefined,
    contextWindow: spec.contextWindow,
    maxOutputTokens: spec.maxOutputTokens,
    capabilities: new Set(spec.capabilities ?? []),
  };
}

interface InputSpec {
  targets: TargetView[] | string[];
  route?: string;
  features?: Partial<Omit<RequestFeatures, "required">> & { required?: Capability[] };
  consumer?: Partial<ConsumerView>;
  headers?: Record<string, string>;
  stats?: Record<string, Partial<TargetStats>>;
  /** Scripted values for random(); running out is a test bug. */
  random?: number[];
}

function input(spec: InputSpec): StrategyInput {
  const targets = spec.targets.map((t) => (typeof t === "string" ? target(t) : t));
  const randoms = [...(spec.random ?? [])];
  const { required, ...features } = spec.features ?? {};
  return {
    route: spec.route ?? "r",
    targets,
    features: { promptTokens: 100, maxOutputTokens: undefined, messageCount: 1, text: "", user: undefined, stream: false, ...features, required: new Set(required ?? []) },
    consumer: { id: "alice", team: undefined, labels: {}, ...spec.consumer },
    header: (name) => spec.headers?.[name],
    stats: (id) => ({ latencyMs: undefined, samples: 0, inFlight: 0, cooldownUntil: undefined, lastFailureAt: undefined, ...spec.stats?.[id] }),
    random: () => {
      const r = randoms.shift();
      assert.ok(r !== undefined, "random() called more often than scripted");
      return r;
    },
    now: 1_700_000_000_000,
  };
}

const parse = (config: unknown): StrategyConfig => strategySchema.parse(config);

interface Case {
  name: string;
  input: InputSpec;
  /** Full expected order, or only the first when `first` is given. */
  order?: string[];
  first?: string;
  reason?: RegExp;
}

function table(config: unknown, cases: Case[]): void {
  const strategy = parse(config);
  for (const c of cases) {
    it(c.name, () => {
      const ranking = rankTargets(strategy, input(c.input));
      if (c.order) assert.deepEqual(ranking.order, c.order);
      if (c.first) assert.equal(ranking.order[0], c.first);
      assert.deepEqual([...ranking.order].sort(), input(c.input).targets.map((t) => t.id).sort(), "every candidate is ranked exactly once");
      if (c.reason) assert.match(ranking.reason, c.reason);
    });
  }
}

const abc = ["a", "b", "c"];

// ---- strategies ------------------------------------------------------------------------------

describe("ordered", () => {
  table({ type: "ordered" }, [
    { name: "chain order as written", input: { targets: ["c", "a", "b"] }, order: ["c", "a", "b"], reason: /chain order/ },
    { name: "single target", input: { targets: ["a"] }, order: ["a"] },
  ]);
});

describe("weighted", () => {
  table({ type: "weighted", weights: { a: 0, b: 1, c: 0 } }, [
    { name: "the only positive weight is always first, zero weights keep chain order", input: { targets: abc }, order: ["b", "a", "c"] },
    { name: "same for another consumer", input: { targets: abc, consumer: { id: "bob" } }, order: ["b", "a", "c"] },
  ]);
  table({ type: "weighted", weights: { a: 1 } }, [
    { name: "targets without a weight are fallbacks after weighted ones", input: { targets: ["c", "a", "b"] }, order: ["a", "c", "b"] },
    { name: "reason names the sticky key", input: { targets: abc }, reason: /sticky by consumer/ },
  ]);

  it("a missing user or header falls back to the consumer id", () => {
    const byConsumer = compileStrategy(parse({ type: "weighted", weights: { a: 1, b: 1, c: 1 } }));
    const byUser = compileStrategy(parse({ type: "weighted", weights: { a: 1, b: 1, c: 1 }, stickyBy: "user" }));
    const byHeader = compileStrategy(parse({ type: "weighted", weights: { a: 1, b: 1, c: 1 }, stickyBy: { header: "x-session" } }));
    for (let i = 0; i < 50; i++) {
      const consumer = { id: `consumer-${i}` };
      const expected = byConsumer(input({ targets: abc, consumer })).order;
      assert.deepEqual(byUser(input({ targets: abc, consumer })).order, expected);
      assert.deepEqual(byUser(input({ targets: abc, consumer, features: { user: "" } })).order, expected);
      assert.deepEqual(byHeader(input({ targets: abc, consumer })).order, expected);
      // With the key present, the key decides, not the consumer.
      assert.deepEqual(byUser(input({ targets: abc, consumer, features: { user: "u-7" } })).order, byUser(input({ targets: abc, features: { user: "u-7" } })).order);
      assert.deepEqual(byHeader(input({ targets: abc, consumer, headers: { "x-session": "s-7" } })).order, byHeader(input({ targets: abc, headers: { "x-session": "s-7" } })).order);
    }
    assert.match(byUser(input({ targets: abc })).reason, /consumer \(no user\)/);
  });

  const users = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
  const firstFor = (config: unknown, route = "r"): string[] => {
    const rank = compileStrategy(parse(config));
    return users.map((user) => rank(input({ targets: abc, route, features: { user } })).order[0] as string);
  };
  const split = { type: "weighted", weights: { a: 70, b: 20, c: 10 }, stickyBy: "user" };

  it("splits 10,000 users 70/20/10 within 2 points, and each user sticks", () => {
    const first = firstFor(split);
    for (const [id, weight] of [["a", 70], ["b", 20], ["c", 10]] as const) {
      const share = (first.filter((t) => t === id).length / users.length) * 100;
      assert.ok(Math.abs(share - weight) <= 2, `${id}: ${share.toFixed(2)}% for weight ${weight}%`);
    }
    assert.deepEqual(firstFor(split), first, "a second call gives every user the same target");
  });

  it("raising one weight only moves users to that target", () => {
    const before = firstFor(split);
    const after = firstFor({ ...split, weights: { a: 70, b: 20, c: 15 } });
    let moved = 0;
    for (let i = 0; i < users.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      assert.equal(after[i], "c", `user-${i} moved from ${before[i]} to ${after[i]}`);
    }
    // Expected share of c goes from 10% to 15/105 = 14.3%: about 430 users move.
    assert.ok(moved > 300 && moved < 560, `${moved} users moved`);
  });

  it("two routes split independently", () => {
    const r1 = firstFor(split, "route-1");
    const r2 = firstFor(split, "route-2");
    const same = r1.filter((t, i) => t === r2[i]).length / users.length;
    // Independent 70/20/10 draws agree with probability 0.49 + 0.04 + 0.01 = 0.54.
    assert.ok(Math.abs(same - 0.54) < 0.03, `agreement ${same}`);
  });
});

describe("cost", () => {
  const cheap = target("cheap", { price: [0.15, 0.6], contextWindow: 8_000 });
  const mid = target("mid", { price: [2.5, 10], contextWindow: 128_000, capabilities: ["vision"] });
  const dear = target("dear", { price: [15, 75], contextWindow: 200_000, capabilities: ["vision"] });
  const free = target("self-hosted");
  // Expensive to read, cheap to write vs the opposite: which is cheaper depends on the output.
  const readHeavy = target("read-heavy", { price: [10, 1] });
  const writeHeavy = target("write-heavy", { price: [1, 10] });
  table({ type: "cost" }, [
    { name: "cheapest first, then by cost", input: { targets: [dear, mid, cheap] }, order: ["cheap", "mid", "dear"], reason: /cheapest estimate \$/ },
    { name: "unpriced after priced", input: { targets: [free, dear, cheap] }, order: ["cheap", "dear", "self-hosted"] },
    { name: "prompt over the context window goes last", input: { targets: [cheap, mid, dear], features: { promptTokens: 9_000 } }, order: ["mid", "dear", "cheap"] },
    { name: "the output limit counts against the window", input: { targets: [cheap, mid], features: { promptTokens: 7_000, maxOutputTokens: 2_000 } }, order: ["mid", "cheap"] },
    { name: "missing capability goes last", input: { targets: [cheap, dear, mid], features: { required: ["vision"] } }, order: ["mid", "dear", "cheap"] },
    { name: "nothing fits: chain order", input: { targets: [cheap], features: { promptTokens: 10_000 } }, order: ["cheap"], reason: /no target fits/ },
    { name: "assumed 500 output tokens: write-heavy cheaper", input: { targets: [readHeavy, writeHeavy], features: { promptTokens: 1_000 } }, first: "write-heavy" },
    { name: "client's max tokens used instead", input: { targets: [writeHeavy, readHeavy], features: { promptTokens: 1_000, maxOutputTokens: 4_000 } }, first: "read-heavy" },
    { name: "ties keep chain order", input: { targets: [target("x", { price: [1, 1] }), target("y", { price: [1, 1] })] }, order: ["x", "y"] },
  ]);
  table({ type: "cost", assumedOutputTokens: 4_000 }, [{ name: "assumedOutputTokens is configurable", input: { targets: [writeHeavy, readHeavy], features: { promptTokens: 1_000 } }, first: "read-heavy" }]);
  table({ type: "cost" }, [
    {
      name: "output estimate is capped by the target's own max output",
      // Without the cap, capped costs 1000*1 + 4000*10 = 41000 > 1000*5 + 4000*2 = 13000.
      input: { targets: [target("other", { price: [5, 2] }), target("capped", { price: [1, 10], maxOutputTokens: 100 })], features: { promptTokens: 1_000, maxOutputTokens: 4_000 } },
      first: "capped",
    },
  ]);
});

describe("latency", () => {
  const known = (latencyMs: number, samples = 10, inFlight = 0): Partial<TargetStats> => ({ latencyMs, samples, inFlight });
  const stats = { a: known(800), b: known(200), c: known(500) };
  table({ type: "latency" }, [
    { name: "fastest first", input: { targets: abc, stats, random: [0.5] }, order: ["b", "c", "a"], reason: /lowest latency \(200 ms\)/ },
    { name: "too few samples: explored first", input: { targets: abc, stats: { ...stats, a: known(9_000, 4) } }, order: ["a", "b", "c"], reason: /too few/ },
    { name: "never observed: explored first", input: { targets: abc, stats: { a: known(100), b: known(200) } }, order: ["c", "a", "b"] },
    { name: "unknowns spread by samples plus in-flight", input: { targets: abc, stats: { a: known(100), b: { samples: 2, inFlight: 3 }, c: { samples: 3, inFlight: 0 } } }, order: ["c", "b", "a"] },
    { name: "no exploration draw above the rate", input: { targets: abc, stats, random: [0.05] }, first: "b" },
    { name: "exploration promotes the second best", input: { targets: abc, stats, random: [0.01, 0] }, order: ["c", "b", "a"], reason: /exploring: random slower/ },
    { name: "exploration promotes the slowest", input: { targets: abc, stats, random: [0.01, 0.99] }, order: ["a", "b", "c"] },
    { name: "single target never draws", input: { targets: ["b"], stats }, order: ["b"] },
  ]);
  table({ type: "latency", minSamples: 1, explore: 0 }, [
    { name: "minSamples and explore are configurable", input: { targets: abc, stats: { ...stats, a: known(100, 1) }, random: [0] }, order: ["a", "b", "c"] },
  ]);

  it("explores about 5% of measured requests", () => {
    const rank = compileStrategy(parse({ type: "latency" }));
    let seed = 1;
    // A small LCG so the check is deterministic.
    const next = (): number => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    let explored = 0;
    for (let i = 0; i < 10_000; i++) {
      const inp = { ...input({ targets: abc, stats }), random: next };
      if (rank(inp).order[0] !== "b") explored++;
    }
    assert.ok(explored > 400 && explored < 600, `${explored} of 10000`);
  });
});

describe("least-busy", () => {
  table({ type: "least-busy" }, [
    { name: "fewest in flight first", input: { targets: abc, stats: { a: { inFlight: 5 }, b: { inFlight: 1 }, c: { inFlight: 3 } } }, order: ["b", "c", "a"], reason: /1 in flight/ },
    { name: "ties keep chain order", input: { targets: abc, stats: { a: { inFlight: 2 }, b: { inFlight: 1 }, c: { inFlight: 1 } } }, order: ["b", "c", "a"] },
    { name: "idle route: chain order", input: { targets: abc }, order: abc },
  ]);
});

describe("complexity", () => {
  const targets = ["small", "medium", "large"];
  table(
    {
      type: "complexity",
      tiers: [
        { name: "hard", target: "large", when: { keywordsAny: ["prove", "step by step", "c++"] } },
        { name: "short", target: "small", when: { maxPromptTokens: 500, maxMessages: 4, keywordsNone: ["code"] } },
        { name: "long", target: "large", when: { minPromptTokens: 20_000 } },
      ],
      otherwise: "medium",
    },
    [
      { name: "short prompt -> small", input: { targets, features: { promptTokens: 200, text: "hello there" } }, order: ["small", "medium", "large"], reason: /tier short/ },
      { name: "keyword -> large", input: { targets, features: { promptTokens: 200, text: "please prove that" } }, order: ["large", "small", "medium"], reason: /tier hard/ },
      { name: "keywords are whole words", input: { targets, features: { promptTokens: 200, text: "improve this; proven" } }, first: "small" },
      { name: "phrases match across whitespace", input: { targets, features: { promptTokens: 200, text: "think step  by\nstep." } }, first: "large" },
      { name: "punctuation keyword", input: { targets, features: { promptTokens: 200, text: "in c++, why" } }, first: "large" },
      { name: "punctuation keyword needs an edge", input: { targets, features: { promptTokens: 200, text: "abc++ x" } }, first: "small" },
      { name: "keywordsNone excludes", input: { targets, features: { promptTokens: 200, text: "write code" } }, first: "medium", reason: /no tier matched/ },
      { name: "too many messages", input: { targets, features: { promptTokens: 200, messageCount: 5 } }, first: "medium" },
      { name: "min prompt tokens", input: { targets, features: { promptTokens: 30_000 } }, first: "large" },
      { name: "otherwise", input: { targets, features: { promptTokens: 5_000 } }, order: ["medium", "small", "large"] },
      { name: "winner not a candidate: chain order", input: { targets: ["medium", "large"], features: { promptTokens: 200 } }, order: ["medium", "large"], reason: /small not a candidate/ },
    ],
  );
  table({ type: "complexity", tiers: [{ name: "all", target: "b", when: {} }], otherwise: "a" }, [{ name: "empty conditions match everything", input: { targets: abc }, order: ["b", "a", "c"] }]);
  table({ type: "complexity", tiers: [{ name: "re", target: "b", when: { keywordsAny: ["a.b", "(x)", "node-js"] } }], otherwise: "a" }, [
    { name: "regex characters are literal", input: { targets: abc, features: { text: "axb" } }, first: "a" },
    { name: "dot keyword", input: { targets: abc, features: { text: "see a.b now" } }, first: "b" },
    { name: "hyphen keyword", input: { targets: abc, features: { text: "use node-js" } }, first: "b" },
    { name: "parenthesised keyword", input: { targets: abc, features: { text: "call (x) now" } }, first: "b" },
  ]);
  table({ type: "complexity", tiers: [{ name: "t", target: "b", when: { keywordsAny: ["Refactor"] } }], otherwise: "a" }, [
    { name: "keywords are case-insensitive", input: { targets: abc, features: { text: "please refactor" } }, first: "b" },
    { name: "unicode word edges", input: { targets: abc, features: { text: "érefactor" } }, first: "a" },
  ]);
});

describe("conditions", () => {
  table(
    {
      type: "conditions",
      rules: [
        { when: { headers: { "x-llm-task": "coding" } }, target: "coder" },
        { when: { headers: { "x-llm-task": ["summary", "translate"] }, teams: ["docs"] }, target: "cheap" },
        { when: { labels: { tier: "gold" } }, target: "premium" },
        { when: { consumers: ["ci"] }, target: "cheap" },
      ],
    },
    [
      { name: "header -> coding model", input: { targets: ["general", "coder", "cheap", "premium"], headers: { "x-llm-task": "coding" } }, order: ["coder", "general", "cheap", "premium"], reason: /rule 0/ },
      { name: "header value is exact", input: { targets: ["general", "coder"], headers: { "x-llm-task": "Coding" } }, order: ["general", "coder"], reason: /no condition rule matched/ },
      { name: "list of values plus team", input: { targets: ["general", "cheap"], headers: { "x-llm-task": "translate" }, consumer: { team: "docs" } }, first: "cheap" },
      { name: "every condition of a rule must hold", input: { targets: ["general", "cheap"], headers: { "x-llm-task": "translate" }, consumer: { team: "eng" } }, first: "general" },
      { name: "labels", input: { targets: ["general", "premium"], consumer: { labels: { tier: "gold" } } }, first: "premium" },
      { name: "consumers", input: { targets: ["general", "cheap"], consumer: { id: "ci" } }, first: "cheap" },
      { name: "first matching rule wins", input: { targets: ["general", "coder", "premium"], headers: { "x-llm-task": "coding" }, consumer: { labels: { tier: "gold" } } }, first: "coder" },
      { name: "no match: chain order", input: { targets: ["general", "coder"] }, order: ["general", "coder"] },
      { name: "rule target not a candidate: chain order", input: { targets: ["general", "cheap"], headers: { "x-llm-task": "coding" } }, order: ["general", "cheap"], reason: /coder not a candidate/ },
    ],
  );
});

describe("hybrid", () => {
  // Costs at 100 prompt + 500 output tokens: cheap $0.000315, mid $0.0053, dear $0.039.
  const cheap = target("cheap", { price: [0.15, 0.6] });
  const mid = target("mid", { price: [3, 10] });
  const dear = target("dear", { price: [15, 75], capabilities: ["vision"] });
  const stats = { cheap: { latencyMs: 3_000, samples: 10 }, mid: { latencyMs: 800, samples: 10 }, dear: { latencyMs: 1_500, samples: 10 } };
  const targets = [dear, mid, cheap];
  table(
    {
      type: "hybrid",
      maxCostPerRequest: 0.01,
      maxLatencyMs: 2_000,
      task: { header: "x-llm-task" },
      preferences: { coding: { quality: 1 }, chat: { latency: 1 }, default: { cost: 1 } },
      quality: { dear: 1, mid: 0.6, cheap: 0.2 },
    },
    [
      { name: "limits filter, then default prefers cost", input: { targets, stats }, order: ["mid", "dear", "cheap"], reason: /hybrid \(default\)/ },
      { name: "without limits hit, cost preference picks the cheapest", input: { targets, stats: { ...stats, cheap: { latencyMs: 100, samples: 10 } } }, order: ["cheap", "mid", "dear"] },
      { name: "unknown latency passes", input: { targets, stats: { ...stats, cheap: {} } }, first: "cheap" },
      { name: "task preference: quality (dear is over budget)", input: { targets, stats: { ...stats, cheap: {} }, headers: { "x-llm-task": "coding" } }, order: ["mid", "cheap", "dear"], reason: /hybrid \(coding\)/ },
      { name: "unknown task uses default", input: { targets, stats: { ...stats, cheap: {} }, headers: { "x-llm-task": "poetry" } }, first: "cheap" },
      { name: "task preference: latency", input: { targets, stats: { ...stats, cheap: { latencyMs: 1_000, samples: 10 } }, headers: { "x-llm-task": "chat" } }, order: ["mid", "cheap", "dear"] },
      { name: "target that cannot serve goes last", input: { targets: [mid, cheap], stats: { ...stats, cheap: {} }, features: { required: ["vision"] } }, reason: /no target within limits/ },
    ],
  );
  table({ type: "hybrid", quality: { dear: 1, mid: 0.6 }, preferences: { default: { quality: 1 } } }, [
    { name: "no limits: quality decides", input: { targets: [cheap, mid, dear], stats }, order: ["dear", "mid", "cheap"] },
    { name: "unlisted quality is neutral 0.5", input: { targets: [cheap, target("ok", { price: [1, 1] })], stats }, order: ["cheap", "ok"] },
  ]);
  table({ type: "hybrid" }, [
    {
      name: "no preferences: equal weights of cost, latency, quality",
      // cheap: cost 1 + latency 0 = 1; mid: cost ~0.87 + latency 1 = 1.87; dear: 0 + ~0.68 = 0.68.
      input: { targets, stats },
      order: ["mid", "cheap", "dear"],
      reason: /equal weights/,
    },
  ]);
});

describe("every strategy ranks every candidate exactly once", () => {
  const configs: unknown[] = [
    { type: "ordered" },
    { type: "weighted", weights: { a: 1, c: 2 } },
    { type: "cost" },
    { type: "latency" },
    { type: "least-busy" },
    { type: "complexity", tiers: [{ name: "x", target: "c", when: { maxPromptTokens: 10 } }], otherwise: "b" },
    { type: "conditions", rules: [{ when: { consumers: ["alice"] }, target: "c" }] },
    { type: "hybrid", maxCostPerRequest: 0.0001 },
  ];
  const targets = [target("a", { price: [1, 1], contextWindow: 50 }), target("b"), target("c", { price: [0.1, 0.1] }), target("d", { price: [5, 5] })];
  for (const config of configs) {
    it((config as { type: string }).type, () => {
      const ranking = rankTargets(parse(config), input({ targets, stats: { a: { latencyMs: 10, samples: 9 } }, random: [0.5, 0.5] }));
      assert.deepEqual([...ranking.order].sort(), ["a", "b", "c", "d"]);
      assert.ok(ranking.reason.length > 0 && ranking.reason.length < 80);
    });
  }
});

// ---- schema and validation -------------------------------------------------------------------

describe("strategySchema", () => {
  it("fills defaults", () => {
    assert.deepEqual(parse({ type: "weighted", weights: { a: 1 } }), { type: "weighted", weights: { a: 1 }, stickyBy: "consumer" });
    assert.deepEqual(parse({ type: "cost" }), { type: "cost", assumedOutputTokens: 500 });
    assert.deepEqual(parse({ type: "latency" }), { type: "latency", minSamples: 5, explore: 0.05 });
    assert.deepEqual(parse({ type: "hybrid" }), { type: "hybrid", assumedOutputTokens: 500, preferences: {}, quality: {} });
  });
  const rejected: Array<[string, unknown]> = [
    ["unknown type", { type: "random" }],
    ["unknown key (strict)", { type: "ordered", weights: {} }],
    ["negative weight", { type: "weighted", weights: { a: -1 } }],
    ["uppercase sticky header", { type: "weighted", weights: { a: 1 }, stickyBy: { header: "X-Session" } }],
    ["explore above 1", { type: "latency", explore: 1.5 }],
    ["no tiers", { type: "complexity", tiers: [], otherwise: "a" }],
    ["empty keyword", { type: "complexity", tiers: [{ name: "t", target: "a", when: { keywordsAny: [" "] } }], otherwise: "a" }],
    ["unknown condition", { type: "conditions", rules: [{ when: { model: "x" }, target: "a" }] }],
    ["quality above 1", { type: "hybrid", quality: { a: 2 } }],
    ["unknown preference term", { type: "hybrid", preferences: { default: { speed: 1 } } }],
  ];
  for (const [name, config] of rejected) it(`rejects ${name}`, () => assert.equal(strategySchema.safeParse(config).success, false));
  it("allows $comment at every level", () => {
    assert.ok(strategySchema.safeParse({ $comment: "x", type: "complexity", tiers: [{ $comment: "x", name: "t", target: "a", when: { $comment: "x" } }], otherwise: "a" }).success);
    assert.ok(strategySchema.safeParse({ type: "hybrid", task: { $comment: "x", header: "x-task" }, preferences: { default: { $comment: "x", cost: 1 } } }).success);
  });
});

describe("validateStrategy", () => {
  const chain = ["a", "b", "c"];
  const cases: Array<{ name: string; config: unknown; issues: Array<{ path: (string | number)[]; message: RegExp }> }> = [
    { name: "ordered: nothing to check", config: { type: "ordered" }, issues: [] },
    { name: "weighted: fine", config: { type: "weighted", weights: { a: 3, b: 1 } }, issues: [] },
    { name: "weighted: unknown target", config: { type: "weighted", weights: { a: 1, z: 1 } }, issues: [{ path: ["weights", "z"], message: /"z" is not in this route's targets \(a, b, c\)/ }] },
    { name: "weighted: all zero", config: { type: "weighted", weights: { a: 0, b: 0 } }, issues: [{ path: ["weights"], message: /no target .* weight above 0/ }] },
    { name: "weighted: empty", config: { type: "weighted", weights: {} }, issues: [{ path: ["weights"], message: /weight above 0/ }] },
    {
      name: "weighted: only positive weight is outside the chain",
      config: { type: "weighted", weights: { a: 0, z: 2 } },
      issues: [
        { path: ["weights", "z"], message: /not in this route's targets/ },
        { path: ["weights"], message: /weight above 0/ },
      ],
    },
    {
      name: "complexity: bad references, duplicate name, impossible range, unreachable tier",
      config: {
        type: "complexity",
        tiers: [
          { name: "t", target: "z", when: { minPromptTokens: 100, maxPromptTokens: 10 } },
          { name: "t", target: "a", when: {} },
          { name: "after", target: "b", when: { maxMessages: 2 } },
        ],
        otherwise: "y",
      },
      issues: [
        { path: ["tiers", 0, "target"], message: /"z"/ },
        { path: ["tiers", 0, "when"], message: /never matches/ },
        { path: ["tiers", 1, "name"], message: /used twice/ },
        { path: ["tiers", 2], message: /never reached: tier 1/ },
        { path: ["otherwise"], message: /"y"/ },
      ],
    },
    {
      name: "conditions: bad reference, unreachable rule",
      config: {
        type: "conditions",
        rules: [
          { when: { headers: { "x-llm-task": "coding" } }, target: "q" },
          { when: { $comment: "everyone" }, target: "a" },
          { when: { teams: ["t"] }, target: "b" },
        ],
      },
      issues: [
        { path: ["rules", 0, "target"], message: /"q"/ },
        { path: ["rules", 2], message: /never reached: rule 1/ },
      ],
    },
    {
      name: "hybrid: unknown quality target, all-zero preference",
      config: { type: "hybrid", quality: { a: 1, x: 0.5 }, preferences: { chat: { cost: 0 } }, task: { header: "x-task" } },
      issues: [
        { path: ["quality", "x"], message: /"x"/ },
        { path: ["preferences", "chat"], message: /all targets score the same/ },
      ],
    },
    { name: "hybrid: task without preferences", config: { type: "hybrid", task: { header: "x-task" } }, issues: [{ path: ["task"], message: /changes nothing/ }] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const issues = validateStrategy(parse(c.config), chain);
      assert.deepEqual(
        issues.map((i) => i.path),
        c.issues.map((i) => i.path),
      );
      c.issues.forEach((expected, k) => {
        const got = issues[k];
        assert.ok(got);
        assert.match(got.message, expected.message);
        assert.ok(got.fix, "every issue says how to fix it");
      });
    });
  }
});
