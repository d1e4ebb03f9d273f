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
