// Holds the live policy. Reload (file change or SIGHUP) compiles the new file completely before
// swapping one reference; a bad file is reported and the last good policy keeps serving. Streams
// capture the policy when they start, so requests in flight finish on the policy they began with.
import { readFile } from "node:fs/promises";
import { readFileSync, watch, type FSWatcher } from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import { compilePolicyText, type CompiledPolicy } from "./compile";

/**
 * A rule a policy must meet in this process on top of being valid, because of how the process runs
 * (e.g. `serve --workers N` without Redis refuses quota rules: each worker would count them apart).
 * Throws a PolicyError naming the fix.
 */
export type PolicyRequirement = (policy: CompiledPolicy) => void;

export type ReloadResult = { ok: true; policy: CompiledPolicy; changed: boolean } | { ok: false; error: Error };

export class PolicyStore {
  #current: CompiledPolicy;
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #reloading: Promise<ReloadResult> | undefined;
  #again = false;
  readonly #listeners: Array<(r: ReloadResult) => void> = [];

  private constructor(
    readonly file: string,
    initial: CompiledPolicy,
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv,
    private readonly requirements: readonly PolicyRequirement[],
  ) {
    this.#current = initial;
  }

  /**
   * Loads the file synchronously at start-up; throws PolicyError on a bad file. `requirements` apply
   * at open (a failing policy refuses to start) and on every reload (a failing policy is rejected
   * like an invalid file and the last good one keeps serving).
   */
  static open(file: string, log: Logger, env: NodeJS.ProcessEnv = process.env, requirements: readonly PolicyRequirement[] = []): PolicyStore {
    const abs = path.resolve(file);
    const policy = compilePolicyText(readFileSync(abs, "utf8"), { file: abs, resolveSecrets: true, env });
    for (const check of requirements) check(policy);
    return new PolicyStore(abs, policy, log, env, requirements);
  }

  get current(): CompiledPolicy {
    return this.#current;
  }

  onReload(listener: (r: ReloadResult) => void): void {
    this.#listeners.push(listener);
  }

  /** Re-reads the file. Concurrent calls share one reload. */
  reload(): Promise<ReloadResult> {
    if (this.#reloading) {
      // The file may have changed again after the running reload read it: read it once more.
      this.#again = true;
      return this.#reloading;
    }
    this.#reloading = this.#reload().finally(() => {
      this.#reloading = undefined;
      if (this.#again) {
        this.#again = false;
        void this.reload();
      }
    });
    return this.#reloading;
  }

  async #reload(): Promise<ReloadResult> {
    let result: ReloadResult;
    try {
      const text = await readFile(this.file, "utf8");
      const policy = compilePolicyText(text, { file: this.file, resolveSecrets: true, env: this.env });
      for (const check of this.requirements) check(policy);
      const changed = policy.hash !== this.#current.hash;
      if (changed) this.#current = policy;
      result = { ok: true, policy, changed };
      if (changed) this.log.info({ policyHash: policy.hash }, "policy reloaded");
    } catch (err) {
      result = { ok: false, error: err as Error };
      this.log.error({ policyError: (err as Error).message, keptPolicyHash: this.#current.hash }, "policy reload rejected; keeping the last good policy");
    }
    for (const l of this.#listeners) l(result);
    return result;
  }

  /**
   * Watches the file's directory, not the file: editors and Kubernetes ConfigMaps replace files by
   * rename, which a watch on the old inode would miss. Bursts of events are debounced.
   */
  watch(debounceMs = 200): void {
    if (this.#watcher) return;
    const dir = path.dirname(this.file);
    const base = path.basename(this.file);
    this.#watcher = watch(dir, (_event, name) => {
      if (name !== null && name !== base && name !== "..data") return;
      clearTimeout(this.#debounce);
      this.#debounce = setTimeout(() => void this.reload(), debounceMs);
    });
    this.#watcher.on("error", (err) => this.log.warn({ err }, "policy watch failed; SIGHUP still reloads"));
    this.#watcher.unref();
  }

  close(): void {
    clearTimeout(this.#debounce);
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}
