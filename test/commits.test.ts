// Group commit for a hub's Durable Streams appends (hub/commits.ts): a lone write runs at once;
// writes that come while one runs wait and then run together, in the order they came; and no
// more than MAX_WAITING wait, so a write that never ends cannot queue the rest without bound.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Commits, MAX_WAITING } from "../src/hub/commits";
import { channelName, hubOf } from "./helpers";

describe("a hub's group commit", () => {
  it("runs a lone write at once, the ones that came meanwhile in order after it, and refuses past MAX_WAITING", async () => {
    await runInDurableObject(hubOf(channelName("commits")), async (_room, state) => {
      const commits = new Commits(state.storage);
      const order: number[] = [];
      let release: () => void = () => {};
      const stuck = new Promise<void>((r) => (release = r));
      // The first write runs at once and does not end until the test lets it.
      const first = commits.run(async () => {
        order.push(0);
        await stuck;
        return "0";
      }, () => "full");
      expect(order).toEqual([0]);
      const waiting = Array.from({ length: MAX_WAITING }, (_, i) => commits.run(async () => (order.push(i + 1), String(i + 1)), () => "full"));
      // One more than may wait: answered at once.
      expect(await commits.run(async () => "late", () => "full")).toBe("full");
      expect(order).toEqual([0]);
      release();
      expect(await first).toBe("0");
      expect(await Promise.all(waiting)).toEqual(Array.from({ length: MAX_WAITING }, (_, i) => String(i + 1)));
      expect(order).toEqual(Array.from({ length: MAX_WAITING + 1 }, (_, i) => i));
      // Idle again once their commit is done: the next write runs at once.
      await new Promise((r) => setTimeout(r, 10));
      const after: string[] = [];
      const next = commits.run(async () => (after.push("now"), "next"), () => "full");
      expect(after).toEqual(["now"]);
      expect(await next).toBe("next");
    });
  });
});
