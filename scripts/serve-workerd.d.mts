/** Serves the worker on the npm `workerd` binary directly (see serve-workerd.mjs). */
export function serveOnWorkerd(
  vars?: Record<string, string>,
  options?: { logs?: "ignore" | "inherit"; v8Flags?: string[]; entry?: string },
): Promise<{ url: string; pid: number; stop: () => Promise<void> }>;

/** CPU time (user + system) of a process so far, in ms, from /proc (Linux); null elsewhere. */
export function cpuMs(pid: number): number | null;

/** A port nothing listens on now. */
export function freePort(): Promise<number>;
