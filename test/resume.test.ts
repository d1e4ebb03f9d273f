import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, channelName, publishOk, seqsOf, TestSocket, hubOf } from "./helpers";

const stubOf = hubOf;
const seqs = seqsOf;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("resume", () => {
  it("replays exactly the missed messages, in order, before live ones", async () => {
    const ch = channelName();
    const [first] = await TestSocket.subscribe(ch);
    for (let i = 1; i <= 5; i++) await publishOk(ch, "m", i);
    const seen = await first.take("msg", 3);
    first.close();
    for (let i = 6; i <= 8; i++) await publishOk(ch, "m", i);
    const { epoch } = await (await call(`/v1/channels/${ch}`)).json<{ epoch: string }>();

    const last = seen.at(-1)!.seq; // 3: the client saw 1..3
    const [again, welcome] = await TestSocket.subscribe(ch, `?since=${last}&epoch=${epoch}`);
    expect(welcome).toMatchObject({ seq: 8, epoch });
    await publishOk(ch, "m", 9);
    const msgs = await again.take("msg", 6);
    expect(seqs(msgs)).toEqual([4, 5, 6, 7, 8, 9]);
    expect(msgs.map((m) => m.d)).toEqual([4, 5, 6, 7, 8, 9]);
    expect(await again.settle()).toEqual([]);
  });

  it("has no gap and no duplicate when publishes race the reconnect", async () => {
    const ch = channelName();
    await publishOk(ch, "m", 0); // seq 1: creates the epoch
    for (let round = 0; round < 5; round++) {
      const seq = (await (await call(`/v1/channels/${ch}`)).json<{ seq: number }>()).seq;
      // Publishes in flight while the socket resumes from `seq`: each lands either before the
      // accept (replayed) or after it (live), never both, never neither.
      const inflight = Array.from({ length: 30 }, (_, i) => publishOk(ch, "race", i));
      const [s] = await TestSocket.subscribe(ch, `?since=${seq}`);
      await Promise.all(inflight);
      const msgs = await s.take("msg", 30);
      expect(seqs(msgs)).toEqual(range(seq + 1, seq + 30));
      expect(await s.settle(50)).toEqual([]);
      s.close();
    }
  });

  it("resumes at the head with nothing to replay", async () => {
    const ch = channelName();
    await publishOk(ch, "m", 1);
    const [s, w] = await TestSocket.subscribe(ch, "?since=1");
    expect(w.seq).toBe(1);
    expect(await s.settle()).toEqual([]);
  });

  it("since=0 on a fresh channel receives everything from the first publish", async () => {
    const ch = channelName();
    for (let i = 1; i <= 3; i++) await publishOk(ch, "m", i);
    const [s] = await TestSocket.subscribe(ch, "?since=0");
    expect(seqs(await s.take("msg", 3))).toEqual([1, 2, 3]);
  });

  it("sends reset (and no replay) for another epoch", async () => {
    const ch = channelName();
    await publishOk(ch, "m", 1);
    await publishOk(ch, "m", 2);
    const [s, w] = await TestSocket.subscribe(ch, "?since=1&epoch=0123456789ab");
    expect(await s.next()).toEqual({ t: "reset", seq: 2, epoch: w.epoch });
    await publishOk(ch, "m", 3);
    expect(await s.next()).toMatchObject({ t: "msg", seq: 3 });
  });

  it("sends reset for a cursor newer than the room's seq", async () => {
    const ch = channelName();
    await publishOk(ch, "m", 1);
    const [s] = await TestSocket.subscribe(ch, "?since=50");
    expect(await s.next()).toMatchObject({ t: "reset", seq: 1 });
    expect(await s.settle()).toEqual([]);
  });

  it("sends reset when the room has no log but the client claims another epoch", async () => {
    const ch = channelName();
    const [s, w] = await TestSocket.subscribe(ch, "?since=0&epoch=aaaaaaaaaaaa");
    expect(w).toMatchObject({ seq: 0, epoch: expect.stringMatching(/^[0-9a-f]{12}$/) });
    expect(await s.next()).toEqual({ t: "reset", seq: 0, epoch: w.epoch });
  });

  it("rewind=N sends the last N messages to a new subscriber; since wins over rewind", async () => {
    const ch = channelName();
    for (let i = 1; i <= 6; i++) await publishOk(ch, "m", i);
    const [s] = await TestSocket.subscribe(ch, "?rewind=3");
    expect(seqs(await s.take("msg", 3))).toEqual([4, 5, 6]);
    const [all] = await TestSocket.subscribe(ch, "?rewind=100");
    expect(seqs(await all.take("msg", 6))).toEqual(range(1, 6));
    const [resumed] = await TestSocket.subscribe(ch, "?since=5&rewind=3");
    expect(seqs(await resumed.take("msg", 1))).toEqual([6]);
    expect(await resumed.settle()).toEqual([]);
  });

  it("refuses a bad cursor with 4400 and a bad_request err frame", async () => {
    const ch = channelName();
    for (const q of ["?since=-1", "?since=abc", "?since=1.5", "?since=1e3", "?epoch=abc", "?since=1&epoch=no%20spaces", "?rewind=101", "?rewind=-2"]) {
      const s = await TestSocket.open(`/v1/channels/${ch}/ws${q}`);
      expect(await s.next()).toMatchObject({ t: "err", code: "bad_request" });
      expect((await s.closed).code).toBe(4400);
    }
  });
});

describe("a room rebuilt from storage and attachments alone", () => {
  it("keeps serving sockets, resume, dedupe and stats after eviction", async () => {
    const ch = channelName();
    const [live] = await TestSocket.subscribe(ch);
    await publishOk(ch, "m", 1, "id-1");
    await publishOk(ch, "m", 2, "id-2");
    expect(seqs(await live.take("msg", 2))).toEqual([1, 2]);
    const before = await (await call(`/v1/channels/${ch}`)).json<{ epoch: string }>();

    // Tear down the instance: memory is gone, the socket hibernates, storage stays.
    await evictDurableObject(stubOf(ch));

    expect(await (await call(`/v1/channels/${ch}`)).json()).toMatchObject({ subscribers: 1, seq: 2, epoch: before.epoch, log: { count: 2, oldestSeq: 1 } });
    expect(await publishOk(ch, "m", 2, "id-2")).toMatchObject({ seq: 2, duplicate: true });
    expect(await publishOk(ch, "m", 3)).toMatchObject({ seq: 3, delivered: 1 });
    expect(seqs(await live.take("msg", 1))).toEqual([3]);

    await evictDurableObject(stubOf(ch));
    const [resumed] = await TestSocket.subscribe(ch, `?since=1&epoch=${before.epoch}`);
    expect(seqs(await resumed.take("msg", 2))).toEqual([2, 3]);

    // The hibernated socket's attachment still carries its channel: the welcome it got and
    // the frames it gets now name the same channel.
    live.send("ping");
    expect(await live.next()).toEqual({ raw: "pong" });
  });

  it("keeps counting seqs from storage, not memory", async () => {
    const ch = channelName();
    for (let i = 1; i <= 3; i++) await publishOk(ch, "m", i);
    await evictDurableObject(stubOf(ch));
    const seq = await runInDurableObject(stubOf(ch), (_room, state) => state.storage.sql.exec<{ n: number }>("SELECT MAX(seq) AS n FROM log").one().n);
    expect(seq).toBe(3);
    expect((await publishOk(ch, "m", 4)).seq).toBe(4);
  });
});
