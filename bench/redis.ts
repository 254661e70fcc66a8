// The Redis the quota rows run against: REDIS_URL, else redis://127.0.0.1:6379 (the bench does not
// start one). Each run uses its own key prefix and deletes its keys at the end, so runs sharing a
// server never see each other's counters.
import { randomBytes } from "node:crypto";
import Redis from "ioredis";

export class BenchRedis {
  readonly prefix = `llmr-bench:${randomBytes(6).toString("hex")}:`;

  private constructor(
    readonly url: string,
    private readonly redis: Redis,
  ) {}

  /** Connected and answering PING, or the reason why not (the Redis row is then skipped). */
  static async connect(): Promise<BenchRedis | string> {
    const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
    const redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 1000, retryStrategy: () => null });
    redis.on("error", () => undefined);
    try {
      await redis.connect();
      const pong = await redis.ping();
      if (pong !== "PONG") throw new Error(`PING answered ${pong}`);
      return new BenchRedis(url, redis);
    } catch (err) {
      redis.disconnect();
      return `no Redis at ${url} (${(err as Error).message}; set REDIS_URL)`;
    }
  }

  /** redis-server's CPU time so far (user + system, whole server), µs. */
  async cpuUs(): Promise<number> {
    const info = await this.redis.info("cpu");
    const seconds = (name: string) => Number(info.match(new RegExp(`^${name}:([0-9.]+)`, "m"))?.[1] ?? NaN);
    return (seconds("used_cpu_user") + seconds("used_cpu_sys")) * 1e6;
  }

  /** This run's keys. */
  async keys(): Promise<string[]> {
    const out: string[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await this.redis.scan(cursor, "MATCH", `${this.prefix}*`, "COUNT", 1000);
      cursor = next;
      out.push(...keys);
    } while (cursor !== "0");
    return out;
  }

  async dropKeys(): Promise<void> {
    const keys = await this.keys();
    if (keys.length > 0) await this.redis.unlink(...keys);
  }

  close(): void {
    this.redis.disconnect();
  }
}
