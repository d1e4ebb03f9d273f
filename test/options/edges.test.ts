// Sharded channels (DESIGN.md "Edges"): rule "shard-*" has shards: 3 (vitest.config.ts). The
// room is the hub; sockets live on edges; every subscriber sees every seq once and in order,
// whatever fails in between.
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { RoomObject } from "../../src/room-object";
import { EdgeObject } from "../../src/edge-object";
import type { MsgFrame, ServerFrame, WelcomeFrame } from "../../src/protocol";
import { connectRequest } from "../../src/connections/connect";
import { edgeName } from "../../src/rpc";
import { HELD_MAX, HELD_MAX_BYTES } from "../../src/hub/edge-links";
import { EDGES_BEHIND_KEY } from "../../src/schema";
import { call, channelName, edgeOf, eventually, expiresSoon, hubOf, pastExp, PUBLISH_KEY, publishOk, TestSocket, token } from "../helpers";
import { loggedEvents } from "../logs";
import { dropPushes, holdPushes, restore } from "./faults";

const SHARDS = 3;
const hub = hubOf;
const edge = (ch: string, k: number) => edgeOf(edgeName(ch, k));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const stats = async (ch: string) => (await call(`/v1/channels/${ch}`)).json<{ subscribers: number; edges?: number; seq: number }>();

/** Opens a socket on edge k of a channel, as the Worker would have. */
async function onEdge(ch: string, k: number, start: { since?: number; epoch?: string } = {}): Promise<[TestSocket, WelcomeFrame]> {
  const cursor = start.since === undefined ? null : { seq: start.since, epoch: start.epoch ?? null };
  const request = connectRequest({ channel: ch, identity: { sub: null, canPublish: false, exp: null, info: null }, start: { cursor, rewind: 0 }, transport: "ws", batch: true });
  const s = await TestSocket.of(await edge(ch, k).fetch(request));
  const welcome = await s.expect("welcome");
  if (welcome.v !== 1) throw new Error("a channel's welcome is v1");
  return [s, welcome];
}

/** Reads msg frames (unpacking batches) until the socket has seen seq `to`; answers the seqs. */
async function seqsUntil(s: TestSocket, to: number, ms = 3000): Promise<{ seqs: number[]; resets: number }> {
  const seqs: number[] = [];
  let resets = 0;
  const take = (f: ServerFrame) => {
    if (f.t === "batch") f.f.forEach(take);
    else if (f.t === "msg") seqs.push((f as MsgFrame).seq);
    else if (f.t === "reset") resets++;
  };
  while (seqs.at(-1) !== to) {
    const f = await s.next(ms);
    if (f.t !== undefined) take(f);
  }
  return { seqs, resets };
}

/** A socket on edge 0 of a channel, once it got the channel's first message (seq 1). */
async function caughtUpOnEdge(ch: string, { hubWokenFirst = false } = {}): Promise<TestSocket> {
  const [s] = await onEdge(ch, 0);
  if (hubWokenFirst) await runDurableObjectAlarm(hub(ch)); // the hub's first wake-up, out of the way
  await publishOk(ch, "m", 0);
  expect((await seqsUntil(s, 1)).seqs).toEqual([1]);
  return s;
}

describe("a sharded channel", () => {
  it("spreads sockets over its edges; every socket gets every seq once, in order; stats sum the edges", async () => {
    const ch = channelName("shard");
    const sockets = [];
    for (let i = 0; i < 12; i++) sockets.push((await TestSocket.subscribe(ch, "?batch=1"))[0]);
    for (let i = 1; i <= 20; i++) await publishOk(ch, "m", i);
    for (const s of sockets) expect((await seqsUntil(s, 20)).seqs).toEqual(range(1, 20));
    const st = await stats(ch);
    expect(st.subscribers).toBe(12);
    expect(st.edges).toBeGreaterThan(1);
    expect(st.edges).toBeLessThanOrEqual(SHARDS);
    // The hub holds none of them.
    expect(await runInDurableObject(hub(ch), (_room, state) => state.getWebSockets().length)).toBe(0);
  });

  it("welcomes with the hub's epoch, also before the first publish, and serves a resume from an edge's tail", async () => {
    const ch = channelName("shard");
    const [a, welcome] = await onEdge(ch, 0);
    expect(welcome).toMatchObject({ seq: 0, epoch: expect.stringMatching(/^[0-9a-f]{12}$/) });
    for (let i = 1; i <= 5; i++) await publishOk(ch, "m", i);
    expect((await seqsUntil(a, 5)).seqs).toEqual(range(1, 5));
    const history = await (await call(`/v1/channels/${ch}/messages`)).json<{ epoch: string }>();
    expect(history.epoch).toBe(welcome.epoch);
    const [b] = await onEdge(ch, 0, { since: 2, epoch: welcome.epoch });
    expect((await seqsUntil(b, 5)).seqs).toEqual([3, 4, 5]);
  });

  it("resumes exactly on another edge than the one before", async () => {
    const ch = channelName("shard");
    const [first, welcome] = await onEdge(ch, 0);
    for (let i = 1; i <= 4; i++) await publishOk(ch, "m", i);
    expect((await seqsUntil(first, 4)).seqs).toEqual(range(1, 4));
    first.close();
    for (let i = 5; i <= 7; i++) await publishOk(ch, "m", i);
    // Edge 1 never had a socket of this channel: it asks the hub for the replay.
    const [again] = await onEdge(ch, 1, { since: 4, epoch: welcome.epoch });
    await publishOk(ch, "m", 8);
    expect((await seqsUntil(again, 8)).seqs).toEqual(range(5, 8));
    expect(await again.settle()).toEqual([]);
  });

  it("keeps every seq once when publishes race resumes", async () => {
    const ch = channelName("shard");
    const [live, welcome] = await onEdge(ch, 2);
    let total = 0;
    for (let round = 0; round < 6; round++) {
      const burst = Promise.all(range(1, 5).map((i) => publishOk(ch, "m", `${round}-${i}`)));
      const since = total;
      const [resumed] = await onEdge(ch, round % SHARDS, { since, epoch: welcome.epoch });
      await burst;
      total += 5;
      expect((await seqsUntil(resumed, total)).seqs).toEqual(range(since + 1, total));
      resumed.close();
    }
    expect((await seqsUntil(live, total)).seqs).toEqual(range(1, total));
  });

  it("survives an edge that is evicted (memory lost) and rebuilt", async () => {
    const ch = channelName("shard");
    const [s] = await onEdge(ch, 1);
    for (let i = 1; i <= 3; i++) await publishOk(ch, "m", i);
    expect((await seqsUntil(s, 3)).seqs).toEqual([1, 2, 3]);
    await evictDurableObject(edge(ch, 1));
    for (let i = 4; i <= 6; i++) await publishOk(ch, "m", i);
    expect((await seqsUntil(s, 6)).seqs).toEqual([4, 5, 6]);
    expect(await s.settle()).toEqual([]);
  });

  it("keeps its edge list through a hub that is evicted (the list is in the hub's storage)", async () => {
    const ch = channelName("shard");
    const [s] = await onEdge(ch, 2);
    await publishOk(ch, "m", 1);
    expect((await seqsUntil(s, 1)).seqs).toEqual([1]);
    await evictDurableObject(hub(ch));
    await publishOk(ch, "m", 2);
    expect((await seqsUntil(s, 2)).seqs).toEqual([2]);
  });

  it("repairs a dropped push from the hub's log on the next frame, without a duplicate", async () => {
    const ch = channelName("shard");
    const [s] = await onEdge(ch, 0);
    await publishOk(ch, "m", 1);
    expect((await seqsUntil(s, 1)).seqs).toEqual([1]);
    // The hub's own wake-up after its first subscriber runs first: run later, it would also tell
    // the edge to catch up, and the gap would never be seen.
    await runDurableObjectAlarm(hub(ch));
    dropPushes(1);
    await publishOk(ch, "m", 2); // this push is lost
    await new Promise((r) => setTimeout(r, 50));
    await publishOk(ch, "m", 3); // the edge sees seq 3 after 1: it fetches 2 first
    expect((await seqsUntil(s, 3)).seqs).toEqual([2, 3]);
    expect(await s.settle()).toEqual([]);
    expect(loggedEvents("gap")).toMatchObject([{ channel: ch, to: 2, reset: false }]);
  });

  it("sends a slow edge one push at a time, and what came meanwhile in one push when it settles, each seq once, in order", async () => {
    const ch = channelName("shard");
    const s = await caughtUpOnEdge(ch);
    const slow = holdPushes();
    for (let i = 1; i <= 30; i++) {
      await publishOk(ch, "m", i);
      await new Promise((r) => setTimeout(r, 2)); // each publish in a turn of its own
    }
    // 0.3.0 had all 30 in flight, each queued on the edge's chain; 0.4.0 had two.
    expect(slow.maxInFlight()).toBe(1);
    expect(slow.calls()).toBe(1);
    slow.release();
    expect((await seqsUntil(s, 31)).seqs).toEqual(range(2, 31));
    expect(slow.calls()).toBe(2); // seqs 3..31 went in one push
    expect(await s.settle()).toEqual([]);
  });

  it(`tells an edge that fell more than ${HELD_MAX} messages behind to catch up from the log, each seq once, in order`, async () => {
    const ch = channelName("wide"); // "wide-*" keeps 1000 messages
    const s = await caughtUpOnEdge(ch);
    const slow = holdPushes();
    for (let i = 2; i <= HELD_MAX + 50; i++) await publishOk(ch, "m", i);
    expect(slow.maxInFlight()).toBe(1);
    slow.release();
    expect((await seqsUntil(s, HELD_MAX + 50, 10_000)).seqs).toEqual(range(2, HELD_MAX + 50));
    // The held push, then one catch-up: the hub kept no more than HELD_MAX messages for it.
    expect(slow.calls()).toBe(2);
    expect(loggedEvents("sync")).toMatchObject([{ channel: ch }]);
    expect(await s.settle()).toEqual([]);
  }, 30_000);

  it(`tells an edge that fell more than ${HELD_MAX_BYTES / 1024 / 1024} MiB behind to catch up from the log: the hub holds no more for it`, async () => {
    const ch = channelName("wide");
    const s = await caughtUpOnEdge(ch);
    const slow = holdPushes();
    const big = "x".repeat(60_000);
    for (let i = 2; i <= 22; i++) await publishOk(ch, "m", big); // 21 × 60 KB: past 1 MiB
    slow.release();
    expect((await seqsUntil(s, 22, 10_000)).seqs).toEqual(range(2, 22));
    expect(slow.calls()).toBe(2); // the held push, then one catch-up
    expect(loggedEvents("sync")).toMatchObject([{ channel: ch }]);
  }, 30_000);

  it("catches an edge up on the hub's next reconciliation when the hub lost what it held for it, on a channel gone quiet", async () => {
    const ch = channelName("shard");
    const s = await caughtUpOnEdge(ch, { hubWokenFirst: true });
    const slow = holdPushes();
    await publishOk(ch, "m", 1); // seq 2: its push is in flight, held by the test
    await new Promise((r) => setTimeout(r, 10));
    await publishOk(ch, "m", 2); // seq 3: held by the hub until that push settles
    // The hub loses what it held, as a restart between the two would (the test pool's eviction
    // waits for the call in flight, so the memory is dropped here instead).
    await runInDurableObject(hub(ch), (room) => (room.edges as unknown as { held: Map<string, unknown> }).held.clear());
    slow.release();
    expect((await seqsUntil(s, 2)).seqs).toEqual([2]);
    expect(await s.settle()).toEqual([]); // nothing more comes by itself: no publish follows
    await runDurableObjectAlarm(hub(ch));
    expect((await seqsUntil(s, 3)).seqs).toEqual([3]);
    expect(loggedEvents("sync")).toMatchObject([{ channel: ch, seq: 3 }]);
    expect(await s.settle()).toEqual([]);
  });

  it("gives an edge the purge's reset it never got on the hub's next reconciliation, on a channel gone quiet", async () => {
    const ch = channelName("shard");
    const s = await caughtUpOnEdge(ch, { hubWokenFirst: true });
    dropPushes(1);
    const purged = await (await call(`/v1/channels/${ch}/messages`, { method: "DELETE", headers: { authorization: `Bearer ${PUBLISH_KEY}` } })).json<{ epoch: string }>();
    await eventually(async () => loggedEvents("error").some((l) => l.where === "push to edge"), Boolean); // the reset's push failed
    // The failed push's mark is lost too (as with the hub's memory): only the reconciliation is left.
    await runInDurableObject(hub(ch), (_room, state) => state.storage.kv.delete(EDGES_BEHIND_KEY));
    expect(await s.settle()).toEqual([]);
    await runDurableObjectAlarm(hub(ch));
    expect(await s.expect("reset")).toMatchObject({ epoch: purged.epoch });
  });

  it("answers a flood of stats requests asking each edge once per round trip, not once per request", async () => {
    const ch = channelName("shard");
    for (let k = 0; k < SHARDS; k++) await onEdge(ch, k);
    const original = EdgeObject.prototype.counts;
    let asked = 0;
    EdgeObject.prototype.counts = async function (this: EdgeObject, ...args: Parameters<typeof original>) {
      asked++;
      await new Promise((r) => setTimeout(r, 500)); // edges that take a while to answer (longer than the 40 requests take to come)
      return original.apply(this, args);
    };
    restore.push(() => void (EdgeObject.prototype.counts = original));
    const answers = await Promise.all(Array.from({ length: 40 }, () => stats(ch)));
    expect(answers.every((a) => a.subscribers === SHARDS)).toBe(true);
    expect(asked).toBeLessThanOrEqual(2 * SHARDS); // 0.4.0-dev: 40 × SHARDS
    // Asked again afterwards, the edges answer afresh.
    const [extra] = await onEdge(ch, 0);
    expect((await stats(ch)).subscribers).toBe(SHARDS + 1);
    extra.close();
  });

  it("keeps a publish's exclusion through gap repair: the log says whom it skips", async () => {
    const ch = channelName("shard");
    const [skipped, welcome] = await onEdge(ch, 0);
    const [other] = await onEdge(ch, 0);
    await publishOk(ch, "m", 1);
    for (const s of [skipped, other]) expect((await seqsUntil(s, 1)).seqs).toEqual([1]);
    dropPushes(1);
    // Seq 2 skips the first socket, and its push is lost: the edge gets it back from the log.
    expect((await call(`/v1/channels/${ch}/messages?exclude=${welcome.cid}`, { method: "POST", headers: { authorization: `Bearer ${PUBLISH_KEY}`, "content-type": "application/json" }, body: JSON.stringify({ event: "m", data: 2 }) })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    await publishOk(ch, "m", 3);
    expect((await seqsUntil(other, 3)).seqs).toEqual([2, 3]);
    expect((await seqsUntil(skipped, 3)).seqs).toEqual([3]);
  });

  it("repairs a gap longer than a page in pages of at most 256 messages, each seq once, in order", async () => {
    const ch = channelName("wide"); // "wide-*": shards 4 and the default log of 1000 (shard-* keeps 50)
    const [s] = await onEdge(ch, 0);
    await publishOk(ch, "m", 0);
    expect((await seqsUntil(s, 1)).seqs).toEqual([1]);
    const pages: number[] = [];
    const original = RoomObject.prototype.replayFor;
    RoomObject.prototype.replayFor = async function (this: RoomObject, ...args: Parameters<typeof original>) {
      const answer = await original.apply(this, args);
      if (!answer.replay.reset) pages.push(answer.replay.messages.length);
      return answer;
    };
    restore.push(() => void (RoomObject.prototype.replayFor = original));
    dropPushes(300);
    for (let i = 2; i <= 301; i++) await publishOk(ch, "m", i); // every push lost
    await new Promise((r) => setTimeout(r, 50));
    await publishOk(ch, "m", 302); // the edge sees 302 after 1: it fetches 2..301 first
    expect((await seqsUntil(s, 302, 10_000)).seqs).toEqual(range(2, 302));
    expect(pages.length).toBeGreaterThanOrEqual(2);
    expect(Math.max(...pages)).toBeLessThanOrEqual(256);
  }, 30_000);

  it("retries a failed push from the hub's alarm when no further publish comes", async () => {
    const ch = channelName("shard");
    const [s] = await onEdge(ch, 2);
    // The hub's own wake-up after its first subscriber (directory, webhooks) runs first, so the
    // alarm run below is the one the failed push asked for.
    await runDurableObjectAlarm(hub(ch));
    dropPushes(1);
    await publishOk(ch, "m", 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(await s.settle()).toEqual([]);
    expect(await runDurableObjectAlarm(hub(ch))).toBe(true);
    expect((await seqsUntil(s, 1)).seqs).toEqual([1]);
    expect(loggedEvents("sync")).toMatchObject([{ channel: ch, seq: 1 }]);
  });

  it("acks a socket's pub from the hub, and every socket on every edge gets it", async () => {
    const ch = channelName("shard");
    const t = await token({ sub: "writer", ch: [ch], pub: [ch] });
    const [writer] = await TestSocket.subscribe(ch, `?token=${t}`);
    const [reader] = await onEdge(ch, 0);
    const [other] = await onEdge(ch, 1);
    writer.send({ t: "pub", e: "chat", d: "hi", id: "p-1" });
    expect(await writer.take("ack", 1)).toEqual([{ t: "ack", id: "p-1", seq: 1, duplicate: false }]);
    for (const s of [reader, other]) expect((await seqsUntil(s, 1)).seqs).toEqual([1]);
    expect(await (await call(`/v1/channels/${ch}/messages`)).json()).toMatchObject({ messages: [{ seq: 1, u: "writer", d: "hi" }] });
  });

  it("keeps the purge's epoch when a push from before the purge arrives after its reset", async () => {
    const ch = channelName("shard");
    const [s, welcome] = await onEdge(ch, 0);
    // The hub's first wake-up, out of the way: its reconciliation would set the edge back to the
    // hub's own epoch, which this test's made-up purge is not.
    await runDurableObjectAlarm(hub(ch));
    await publishOk(ch, "m", 1);
    expect((await seqsUntil(s, 1)).seqs).toEqual([1]);
    // The purge's reset overtakes a push of the old epoch (each push is its own call).
    await edge(ch, 0).receive(ch, { epoch: "fresh0000000", reset: 1 });
    await edge(ch, 0).receive(ch, { epoch: welcome.epoch, messages: [{ seq: 1, id: "old", event: "m", data: "1", ts: Date.now(), sender: null }] });
    const frames = await s.settle(200);
    const flat = frames.flatMap((f): { t?: string }[] => (f.t === "batch" ? f.f : [f]));
    expect(flat.filter((f) => f.t === "reset")).toEqual([expect.objectContaining({ t: "reset", seq: 1, epoch: "fresh0000000" })]);
    expect(flat.filter((f) => f.t === "msg")).toEqual([]);
  });

  it("sends reset from every edge on purge, and carries on counting", async () => {
    const ch = channelName("shard");
    const sockets = await Promise.all(range(0, SHARDS - 1).map((k) => onEdge(ch, k)));
    await publishOk(ch, "m", 1);
    const purged = await (await call(`/v1/channels/${ch}/messages`, { method: "DELETE", headers: { authorization: `Bearer ${PUBLISH_KEY}` } })).json<{ epoch: string }>();
    for (const [s] of sockets) {
      const frames: string[] = [];
      while (!frames.includes("reset")) {
        const f = await s.next();
        if (f.t === "batch") frames.push(...f.f.map((x) => x.t));
        else if (f.t !== undefined) frames.push(f.t);
      }
      expect(frames).toEqual(["msg", "reset"]);
    }
    await publishOk(ch, "m", 2);
    for (const [s] of sockets) expect(await s.expect("msg")).toMatchObject({ seq: 2 });
    expect((await stats(ch)).seq).toBe(2);
    expect(purged.epoch).toMatch(/^[0-9a-f]{12}$/);
  });

  it("sweeps expired tokens on each edge", async () => {
    const ch = channelName("shard");
    const exp = expiresSoon();
    const t = await token({ sub: "u", ch: [ch] }, { expiresIn: exp });
    const [s] = await TestSocket.subscribe(ch, `?token=${t}`);
    await pastExp(exp);
    for (let k = 0; k < SHARDS; k++) await runDurableObjectAlarm(edge(ch, k));
    expect(await s.next()).toMatchObject({ t: "err", code: "unauthorized", close: 4401 });
    expect((await s.closed).code).toBe(4401);
  });

  it("leaves the hub's list when its last socket goes, also after the edge was evicted", async () => {
    const ch = channelName("shard");
    const [s] = await onEdge(ch, 1);
    await publishOk(ch, "m", 1);
    expect((await seqsUntil(s, 1)).seqs).toEqual([1]);
    await evictDurableObject(edge(ch, 1));
    s.close();
    await s.closed;
    expect((await eventually(() => stats(ch), (st) => st.edges === undefined)).edges).toBeUndefined();
  });

  it("leaves the hub's list when its last socket goes", async () => {
    const ch = channelName("shard");
    const [a] = await onEdge(ch, 0);
    const [b] = await onEdge(ch, 1);
    expect((await stats(ch)).edges).toBe(2);
    a.close();
    await a.closed;
    expect(await eventually(() => stats(ch), (st) => st.edges === 1)).toMatchObject({ edges: 1, subscribers: 1 });
    b.close();
  });
});

describe("SSE on a sharded channel", () => {
  it("streams from an edge and resumes from Last-Event-ID on any edge", async () => {
    const { SseReader } = await import("../helpers");
    const ch = channelName("shard");
    const sse = await SseReader.open(`/v1/channels/${ch}/sse`);
    await sse.expect("welcome");
    for (let i = 1; i <= 3; i++) await publishOk(ch, "m", i);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await sse.expect("msg")).id!);
    await sse.cancel();
    await publishOk(ch, "m", 4);
    const again = await SseReader.open(`/v1/channels/${ch}/sse`, { "last-event-id": ids[1]! });
    await again.expect("welcome");
    expect([(await again.expect("msg")).frame.seq, (await again.expect("msg")).frame.seq]).toEqual([3, 4]);
    await again.cancel();
    expect((await stats(ch)).edges).toBeGreaterThanOrEqual(1);
  });
});
