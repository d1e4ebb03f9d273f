// Coalesced batch frames (DESIGN.md "Bursts"): sockets that opt in with ?batch=1 get the frames
// of a burst packed in `batch` frames, complete and in order; nothing is reordered, doubled or
// held back when there is no burst.
import { describe, expect, it } from "vitest";
import type { MsgFrame, ServerFrame } from "../src/protocol";
import { call, channelName, PUBLISH_KEY, publishOk, SseReader, TestSocket, type Frame } from "./helpers";

/** A burst: n messages to one channel in one batch publish, delivered in one room turn. */
async function burst(ch: string, from: number, n: number, pad = 0): Promise<void> {
  const messages = Array.from({ length: n }, (_, i) => ({ channel: ch, event: "m", data: { i: from + i, pad: "x".repeat(pad) } }));
  const res = await call("/v1/publish", { method: "POST", headers: { authorization: `Bearer ${PUBLISH_KEY}`, "content-type": "application/json" }, body: JSON.stringify({ messages }) });
  if (!res.ok) throw new Error(`burst failed: ${res.status}`);
  await res.body?.cancel();
}

/** Reads until `n` msg frames arrived; answers them unpacked, and the raw frames as received. */
async function collect(s: TestSocket, n: number): Promise<{ msgs: MsgFrame[]; raw: Frame[] }> {
  const msgs: MsgFrame[] = [];
  const raw: Frame[] = [];
  const unpack = (f: ServerFrame) => {
    if (f.t === "batch") f.f.forEach(unpack);
    else if (f.t === "msg") msgs.push(f);
  };
  while (msgs.length < n) {
    const f = await s.next();
    raw.push(f);
    if (f.t !== undefined) unpack(f);
  }
  return { msgs, raw };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const batches = (raw: Frame[]) => raw.filter((f): f is Extract<Frame, { t: "batch" }> => f.t === "batch");

describe("batch frames", () => {
  it("pack a burst for sockets that opted in, complete and in order", async () => {
    const ch = channelName("burst");
    const [s] = await TestSocket.subscribe(ch, "?batch=1");
    await burst(ch, 1, 40);
    const { msgs, raw } = await collect(s, 40);
    expect(msgs.map((m) => m.seq)).toEqual(range(1, 40));
    expect(msgs.map((m) => (m.d as { i: number }).i)).toEqual(range(1, 40));
    // The first frame went out at once; the rest joined one flush.
    expect(raw[0]).toMatchObject({ t: "msg", seq: 1 });
    expect(batches(raw)).toHaveLength(1);
    expect(batches(raw)[0]!.f.map((f) => (f as MsgFrame).seq)).toEqual(range(2, 40));
    expect(await s.settle()).toEqual([]);
  });

  it("send a lone publish at once, as a plain frame", async () => {
    const ch = channelName("lone");
    const [s] = await TestSocket.subscribe(ch, "?batch=1");
    for (let i = 1; i <= 3; i++) {
      await publishOk(ch, "m", i);
      expect(await s.next()).toMatchObject({ t: "msg", seq: i });
      await new Promise((r) => setTimeout(r, 5));
    }
  });

  it("hold at most 256 frames or 64 KiB of frames each; more follow in order", async () => {
    const ch = channelName("caps");
    const [s] = await TestSocket.subscribe(ch, "?batch=1");
    await burst(ch, 1, 100);
    await burst(ch, 101, 100);
    await burst(ch, 201, 100);
    const many = await collect(s, 300);
    expect(many.msgs.map((m) => m.seq)).toEqual(range(1, 300));
    for (const b of batches(many.raw)) expect(b.f.length).toBeLessThanOrEqual(256);

    const big = channelName("caps-bytes");
    const [t] = await TestSocket.subscribe(big, "?batch=1");
    await burst(big, 1, 30, 10_000); // ~10 KB each
    const { msgs, raw } = await collect(t, 30);
    expect(msgs.map((m) => m.seq)).toEqual(range(1, 30));
    expect(batches(raw).length).toBeGreaterThan(1);
    for (const b of batches(raw)) {
      expect(b.f.map((f) => JSON.stringify(f).length).reduce((a, n) => a + n, 0)).toBeLessThanOrEqual(64 * 1024);
    }
  });

  it("never reach sockets that did not opt in: they get every frame on its own", async () => {
    const ch = channelName("mixed");
    const [packed] = await TestSocket.subscribe(ch, "?batch=1");
    const [plain] = await TestSocket.subscribe(ch);
    await burst(ch, 1, 30);
    const a = await collect(packed, 30);
    const b = await collect(plain, 30);
    expect(a.msgs.map((m) => m.seq)).toEqual(range(1, 30));
    expect(b.msgs.map((m) => m.seq)).toEqual(range(1, 30));
    expect(batches(a.raw).length).toBeGreaterThan(0);
    expect(b.raw.every((f) => f.t === "msg")).toBe(true);
  });

  it("keep a socket that connects or resumes while a flush is pending exact: every seq once, in order", async () => {
    const ch = channelName("race");
    const [live] = await TestSocket.subscribe(ch, "?batch=1");
    await burst(ch, 1, 5);
    let total = 5;
    for (let round = 0; round < 10; round++) {
      // Start a burst and, without waiting for it, open sockets that resume from the middle and
      // from the start: whether they are accepted before, during or after the flush, each must
      // see every seq after its cursor exactly once.
      const pending = burst(ch, total + 1, 20);
      const since = Math.max(0, total - 3);
      const [resumed] = await TestSocket.subscribe(ch, `?batch=1&since=${since}`);
      const [fresh] = await TestSocket.subscribe(ch, "?batch=1&since=0");
      await pending;
      total += 20;
      expect((await collect(resumed, total - since)).msgs.map((m) => m.seq)).toEqual(range(since + 1, total));
      expect((await collect(fresh, total)).msgs.map((m) => m.seq)).toEqual(range(1, total));
      expect(await resumed.settle(20)).toEqual([]);
      resumed.close();
      fresh.close();
    }
    expect((await collect(live, total)).msgs.map((m) => m.seq)).toEqual(range(1, total));
  });

  it("go out before a reset, so a purge never overtakes what came before it", async () => {
    const ch = channelName("purge");
    const [s] = await TestSocket.subscribe(ch, "?batch=1");
    for (let round = 0; round < 5; round++) {
      // All ten are in the log before the purge starts, most of them still waiting for a flush.
      await burst(ch, round * 10 + 1, 10);
      await call(`/v1/channels/${ch}/messages`, { method: "DELETE", headers: { authorization: `Bearer ${PUBLISH_KEY}` } });
      const seen: string[] = [];
      const unpack = (f: ServerFrame) => (f.t === "batch" ? f.f.forEach(unpack) : seen.push(f.t === "msg" ? `m${f.seq}` : f.t));
      while (!seen.includes("reset")) {
        const f = await s.next();
        if (f.t !== undefined) unpack(f);
      }
      expect(seen).toEqual([...range(round * 10 + 1, round * 10 + 10).map((i) => `m${i}`), "reset"]);
    }
  });

  it("refuse a batch option that is not 1 or 0", async () => {
    const s = await TestSocket.open(`/v1/channels/${channelName()}/ws?batch=yes`);
    expect(await s.next()).toMatchObject({ t: "err", code: "bad_request", message: "batch must be 1 or 0" });
    expect((await s.closed).code).toBe(4400);
  });
});

describe("SSE under bursts", () => {
  it("gets several events in one write, each complete, in order, resumable by id", async () => {
    const ch = channelName("sse-burst");
    const sse = await SseReader.open(`/v1/channels/${ch}/sse`);
    await sse.expect("welcome");
    await burst(ch, 1, 25);
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) ids.push((await sse.expect("msg")).id!);
    expect(ids.map((id) => Number(id.split(":")[1]))).toEqual(range(1, 25));
    expect(sse.largestRead).toBeGreaterThan(1); // several events came in one chunk
    await sse.cancel();
  });
});
