// Settings read once per env object (per isolate): objects ask for them on hot paths.
import { ServiceError } from "../server/service-error.js";
import type { Vars } from "./vars.js";

/**
 * A setting read from the env once per env object (per isolate), since rooms ask on hot paths.
 * A mistake (a ServiceError) is kept too, and thrown on every ask until the config is fixed.
 */
export function perEnv<T>(read: (env: Partial<Vars>) => T): (env: Partial<Vars>) => T {
  const cache = new WeakMap<object, { value: T } | { error: ServiceError }>();
  return (env) => {
    let entry = cache.get(env);
    if (entry === undefined) {
      try {
        entry = { value: read(env) };
      } catch (err) {
        if (!(err instanceof ServiceError)) throw err;
        entry = { error: err };
      }
      cache.set(env, entry);
    }
    if ("error" in entry) throw entry.error;
    return entry.value;
  };
}

/** Comma-separated secret lists (rotation): empty entries are dropped. */
export function secretList(value: string | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}
