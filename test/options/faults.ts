// Faults the edge tests force from inside workerd: hub→edge pushes that are lost, as a dropped
// RPC would be. Every patch is undone after its test.
import { afterEach } from "vitest";
import { EdgeObject } from "../../src/edge-object";

/** Undo steps of the current test, run after it. */
export const restore: (() => void)[] = [];
afterEach(() => restore.splice(0).forEach((undo) => undo()));

/** Makes the next `n` pushes to edges fail, as a dropped hub→edge call would. */
export function dropPushes(n: number): void {
  const original = EdgeObject.prototype.receive;
  let left = n;
  EdgeObject.prototype.receive = async function (this: EdgeObject, ...args: Parameters<typeof original>) {
    if (left-- > 0) throw new Error("push dropped by the test");
    return original.apply(this, args);
  };
  restore.push(() => (EdgeObject.prototype.receive = original));
}

/**
 * Holds every message push to edges until `release()`, as an edge slower than its hub would:
 * counts how many are in flight at once. Catch-up calls (`sync`) are counted with them; pushes of
 * a presence change or a subscriber count go through (the hub sends those whatever is in flight).
 */
export function holdPushes(): { maxInFlight: () => number; calls: () => number; release(): void } {
  const { receive, sync } = EdgeObject.prototype;
  let inFlight = 0;
  let max = 0;
  let calls = 0;
  let open: () => void = () => {};
  const gate = new Promise<void>((r) => (open = r));
  const held = <A extends unknown[], R>(original: (...args: A) => Promise<R>) =>
    async function (this: EdgeObject, ...args: A): Promise<R> {
      const push = args[1] as object | undefined;
      if (push !== undefined && !("messages" in push)) return original.apply(this, args);
      calls++;
      max = Math.max(max, ++inFlight);
      try {
        await gate;
        return await original.apply(this, args);
      } finally {
        inFlight--;
      }
    };
  EdgeObject.prototype.receive = held(receive);
  EdgeObject.prototype.sync = held(sync);
  restore.push(() => {
    EdgeObject.prototype.receive = receive;
    EdgeObject.prototype.sync = sync;
  });
  return { maxInFlight: () => max, calls: () => calls, release: () => open() };
}
