import type { Env } from "../env.js";

export type Metric = "publish" | "delivered" | "connect" | "refused";

/**
 * Per-channel counters in Workers Analytics Engine when the `ANALYTICS` binding is configured
 * (see docs/operations.md "Observability"); a no-op without it. Writes are fire-and-forget and never throw.
 */
export function count(env: Pick<Env, "ANALYTICS">, channel: string, metric: Metric, value = 1): void {
  if (!env.ANALYTICS) return;
  try {
    env.ANALYTICS.writeDataPoint({ blobs: [channel, metric], doubles: [value], indexes: [channel.slice(0, 96)] });
  } catch {
    // metrics must never break the request they describe
  }
}
