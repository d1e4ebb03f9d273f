/** Serves the worker on the npm `workerd` binary directly (see serve-workerd.mjs). */
export function serveOnWorkerd(
  vars?: Record<string, string>,
  options?: { logs?: "ignore" | "inherit"; v8Flags?: string[]; entry?: string },
): Promise<{ url: string; pid: number; stop: () => Promise<void> }>;
