// A sharded channel ("shard-*": 3 edges here) while its pushes fail: the hub marks the edges
// behind in storage once, not once per failed push, and the alarm still brings them up to date.
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { expect, it } from "vitest";
import { connectRequest } from "../../src/connections/connect";
import { edgeName } from "../../src/rpc";
import { EDGES_BEHIND_KEY } from "../../src/schema";
import type { MsgFrame, ServerFrame } from "../../src/protocol";
import { channelName, edgeOf, eventually, hubOf, publishOk, TestSocket } from "../helpers";
import { loggedEvents } from "../logs";
import { dropPushes, restore } from "./faults";

/** Counts the hub's storage writes of the edges-behind mark (the kv API is shared by every object of the isolate). */
async function countBehindWrites(ch: string): Promise<{ n: number }> {
  const counter = { n: 0 };
  await runInDurableObject(hubOf(ch), (_room, state) => {
    const proto = Object.getPrototypeOf(state.storage.kv) as { put: (key: string, value: unknown) => void };
    const original = proto.put;
    proto.put = function (this: unknown, key: string, value: unknown) {
      if (key === EDGES_BEHIND_KEY) counter.n++;
      return original.call(this, key, value);
    };
    restore.push(() => (proto.put = original));
  });
  return counter;
}

async function onEdge(ch: string, k: number): Promise<TestSocket> {
  const request = connectRequest({ channel: ch, identity: { sub: null, canPublish: false, exp: null, info: null }, start: { cursor: null, rewind: 0 }, transport: "ws", batch: true });
  const s = await TestSocket.of(await edgeOf(edgeName(ch, k)).fetch(request));
  await s.expect("welcome");
  return s;
}

async function seqsUntil(s: TestSocket, to: number): Promise<number[]> {
  const seqs: number[] = [];
  const take = (f: ServerFrame) => (f.t === "batch" ? f.f.forEach(take) : f.t === "msg" && seqs.push((f as MsgFrame).seq));
  while (seqs.at(-1) !== to) {
    const f = await s.next(3000);
    if (f.t !== undefined) take(f);
  }
  return seqs;
}

const pause = () => new Promise((r) => setTimeout(r, 50));

it("writes edges-behind once while pushes keep failing, and the alarm still catches the edge up", async () => {
  const ch = channelName("shard");
  const s = await onEdge(ch, 1);
  // The hub's own wake-up after its first subscriber (directory, webhooks) runs first: the
  // alarm that catches the edge up is the one the failed pushes asked for.
  await runDurableObjectAlarm(hubOf(ch));
  const writes = await countBehindWrites(ch);
  dropPushes(4);
  const failedPushes = () => loggedEvents("error").filter((l) => l.where === "push to edge").length;
  for (let i = 1; i <= 4; i++) {
    await publishOk(ch, "m", i);
    expect(await eventually(async () => failedPushes(), (n) => n === i)).toBe(i); // each publish its own push, each push failing
  }
  await pause();
  expect(failedPushes()).toBe(4);
  expect(writes.n).toBe(1);
  expect(await s.settle()).toEqual([]);
  expect(await runDurableObjectAlarm(hubOf(ch))).toBe(true);
  expect(await seqsUntil(s, 4)).toEqual([1, 2, 3, 4]);
  // Caught up, the mark is gone: the next failure writes it again.
  expect(await runInDurableObject(hubOf(ch), (_room, state) => state.storage.kv.get(EDGES_BEHIND_KEY))).toBeUndefined();
  dropPushes(1);
  await publishOk(ch, "m", 5);
  expect(await eventually(async () => failedPushes(), (n) => n === 5)).toBe(5);
  expect(writes.n).toBe(2);
});
