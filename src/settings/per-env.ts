// Settings read once per env object (per isolate), and the one path of a configuration mistake:
// a reader throws ConfigError naming the var, rule and field; it becomes a 500 `internal`
// ServiceError that every request answers (the Worker checks every reader before any route),
// said once per isolate in the log, never a silent fallback to defaults.
import { log } from "../server/log.js";
import { ServiceError } from "../server/service-error.js";
import { ConfigError } from "./channel-options.js";
import type { Vars } from "./vars.js";

export { ConfigError };

/** Every reader made by perEnv: checkSettings runs them all. */
const readers: ((env: Partial<Vars>) => unknown)[] = [];

/**
 * A setting read from the env once per env object (per isolate), since rooms ask on hot paths.
 * A mistake is kept too, and thrown on every ask until the config is fixed.
 */
export function perEnv<T>(read: (env: Partial<Vars>) => T): (env: Partial<Vars>) => T {
  const cache = new WeakMap<object, { value: T } | { error: ServiceError }>();
  const reader = (env: Partial<Vars>) => {
    let entry = cache.get(env);
    if (entry === undefined) {
      try {
        entry = { value: read(env) };
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        entry = { error: new ServiceError("internal", `configuration error: ${err.message}`, undefined, { cause: err }) };
        log("config", { error: entry.error.message });
      }
      cache.set(env, entry);
    }
    if ("error" in entry) throw entry.error;
    return entry.value;
  };
  readers.push(reader);
  return reader;
}

/** Throws the first configuration mistake of any setting (the Worker's check before any route). */
export function checkSettings(env: Partial<Vars>): void {
  for (const read of readers) read(env);
}

/** Comma-separated secret lists (rotation): empty entries are dropped. */
export function secretList(value: string | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}
