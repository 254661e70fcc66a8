// A real Redis for tests: REDIS_URL, else the server at 127.0.0.1:6379, else a redis-server from
// PATH started on a free port. Where none exists the Redis tests are skipped with the reason, and
// LLM_ROUTER_REQUIRE_REDIS=1 (set by .ci/run) turns that skip into a failure.
// Each test run uses its own key prefix, so runs sharing one server never see each other's keys.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import Redis from "ioredis";

export interface TestRedis {
  url: string;
  /** Unique per call: pass to the store / service as the key prefix. */
  prefix(): string;
}

let found: Promise<TestRedis | string> | undefined;
const started: ChildProcess[] = [];

/** The Redis to test against, or the reason there is none. */
export function testRedis(): Promise<TestRedis | string> {
  found ??= locate();
  return found;
}

/**
 * For node:test: `{ skip }` options of a suite that needs Redis. Throws instead of skipping when
 * LLM_ROUTER_REQUIRE_REDIS=1.
 */
export async function redisOrSkip(): Promise<{ redis: TestRedis | undefined; skip: string | false }> {
  const r = await testRedis();
  if (typeof r !== "string") return { redis: r, skip: false };
  if (process.env.LLM_ROUTER_REQUIRE_REDIS === "1") throw new Error(`Redis required (LLM_ROUTER_REQUIRE_REDIS=1) but unavailable: ${r}`);
  return { redis: undefined, skip: r };
}

/**
 * A suite that needs Redis: `body` registers its tests once Redis is found; without Redis the suite
 * reports one skipped test with the reason (a failure under LLM_ROUTER_REQUIRE_REDIS=1).
 */
export function describeWithRedis(name: string, body: (redis: TestRedis) => void): void {
  describe(name, async () => {
    const { redis, skip } = await redisOrSkip();
    if (redis === undefined) {
      it("needs Redis", { skip: skip || true }, () => undefined);
      return;
    }
    body(redis);
  });
}

async function locate(): Promise<TestRedis | string> {
  const candidates = process.env.REDIS_URL ? [process.env.REDIS_URL] : ["redis://127.0.0.1:6379"];
  for (const url of candidates) if (await pings(url)) return withPrefix(url);
  const own = await startRedisServer().catch((err: Error) => err.message);
  if (typeof own !== "string") return withPrefix(own.url);
  return `no Redis at ${candidates.join(", ")} and redis-server could not be started (${own})`;
}

function withPrefix(url: string): TestRedis {
  return { url, prefix: () => `llmr-test:${randomBytes(6).toString("hex")}:` };
}

async function pings(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr !== null ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

/** A private redis-server (tests that stop and restart Redis use their own). */
export interface OwnRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Starts it again on the same port (after stop). */
  restart(): Promise<void>;
}

export async function startRedisServer(port?: number): Promise<OwnRedis> {
  const p = port ?? (await freePort());
  let child = await launch(p);
  const own: OwnRedis = {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.ref(); // waited for: it holds the process until it has exited
      child.kill("SIGKILL");
      await exited;
    },
    restart: async () => {
      child = await launch(p);
    },
  };
  return own;
}

async function launch(port: number): Promise<ChildProcess> {
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  // Unreferenced: a running redis-server must not keep the test file's process alive once its
  // tests are done (node --test waits for that exit, so it would hang the whole run); the exit
  // hook below kills it.
  child.unref();
  started.push(child);
  const failed = new Promise<never>((_, reject) => child.once("error", (err) => reject(err)));
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50; i++) {
    const ok = await Promise.race([pings(url), failed]);
    if (ok) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`redis-server did not answer on port ${port}`);
}

/** A private three-primary Redis Cluster (redis-server and redis-cli from PATH). */
export interface OwnCluster {
  /** Seed URLs separated by commas (the form `serve --redis-cluster --redis-url` takes). */
  url: string;
  stop(): Promise<void>;
}

export async function startRedisCluster(): Promise<OwnCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), "llmr-cluster-"));
  const ports = [await freePort(), await freePort(), await freePort()];
  const children: ChildProcess[] = [];
  for (const p of ports) {
    const child = spawn("redis-server", ["--port", String(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, `nodes-${p}.conf`)], { stdio: "ignore" });
    child.unref();
    started.push(child);
    children.push(child);
  }
  const stop = async () => {
    await Promise.all(
      children.map(async (c) => {
        if (c.exitCode !== null) return;
        const exited = new Promise((r) => c.once("exit", r));
        c.ref(); // waited for: it holds the process until it has exited
        c.kill("SIGKILL");
        await exited;
      }),
    );
  };
  try {
    for (const p of ports) {
      let up = false;
      for (let i = 0; i < 50 && !up; i++) {
        up = await pings(`redis://127.0.0.1:${p}`);
        if (!up) await new Promise((r) => setTimeout(r, 100));
      }
      if (!up) throw new Error(`cluster node on port ${p} did not answer`);
    }
    execFileSync("redis-cli", ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "0", "--cluster-yes"], { stdio: "ignore", timeout: 20_000 });
    for (let i = 0; ; i++) {
      const info = execFileSync("redis-cli", ["-p", String(ports[0]), "cluster", "info"], { encoding: "utf8" });
      if (info.includes("cluster_state:ok")) break;
      if (i > 100) throw new Error("Redis Cluster did not reach cluster_state:ok");
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: ports.map((p) => `redis://127.0.0.1:${p}`).join(","), stop };
}

/**
 * A suite that needs a Redis Cluster of its own; skipped with the reason when one cannot be started
 * (a failure under LLM_ROUTER_REQUIRE_REDIS=1).
 */
export function describeWithRedisCluster(name: string, body: (cluster: () => OwnCluster) => void): void {
  describe(name, async () => {
    let cluster: OwnCluster | string;
    try {
      cluster = await startRedisCluster();
    } catch (err) {
      cluster = `no Redis Cluster could be started (${(err as Error).message})`;
    }
    if (typeof cluster === "string") {
      if (process.env.LLM_ROUTER_REQUIRE_REDIS === "1") throw new Error(`Redis Cluster required (LLM_ROUTER_REQUIRE_REDIS=1) but unavailable: ${cluster}`);
      it("needs a Redis Cluster", { skip: cluster }, () => undefined);
      return;
    }
    const own = cluster;
    after(() => own.stop());
    body(() => own);
  });
}

process.on("exit", () => {
  for (const c of started) if (c.exitCode === null) c.kill("SIGKILL");
});
