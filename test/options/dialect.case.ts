// The contract every socket dialect keeps (connections/dialects/), run against each of them by
// dialects.test.ts the way replay-log.case.ts runs against every ReplaySource (hono's
// router/common.case.test.ts is the model). A dialect case says how a client of that protocol
// opens, subscribes and reads; the contract says what every client must see: messages in seq
// order, bursts whole and in order, a reset after a purge (where the protocol has one),
// presence joins and leaves, refusal of a channel it may not read, exclusion, and leaving.
import { describe, expect, it } from "vitest";
import { appendOk, call, publish, publishOk } from "../helpers";

/** What a client saw, in words every dialect can be read into. */
export type Seen = { t: "msg"; seq: number | null; event: string; data: unknown } | { t: "append"; id: string; text: string; done: boolean } | { t: "reset" } | { t: "join" | "leave"; id: string } | { t: "other" };

export interface Opened {
  /** The connection id `?exclude=` takes (cid, or Pusher socket_id). */
  cid: string;
  next(ms?: number): Promise<Seen>;
  settle(ms?: number): Promise<Seen[]>;
  close(): void;
}

export interface DialectCase {
  /** A fresh channel of a kind, with this case's prefix (a sharded case uses a sharded namespace). */
  channel(kind: "public" | "private" | "presence"): string;
  /** Opens a client subscribed to `ch` (with a grant for `sub` where the channel needs one). */
  open(ch: string, sub?: string): Promise<Opened>;
  /** Subscribes to a private channel with no grant: how it was refused, and whether the socket stays open. */
  refused(ch: string): Promise<{ code: string; staysOpen: boolean }>;
  has: { reset: boolean; presence: boolean };
}

async function messages(c: Opened, n: number): Promise<Extract<Seen, { t: "msg" }>[]> {
  const out: Extract<Seen, { t: "msg" }>[] = [];
  while (out.length < n) {
    const s = await c.next(3000);
    if (s.t === "msg") out.push(s);
  }
  return out;
}

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 3000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function dialectContract(name: string, make: () => DialectCase): void {
  const { has } = make();
  describe(`dialect contract: ${name}`, () => {
    it("delivers each message once, in seq order, with its event and data", async () => {
      const d = make();
      const ch = d.channel("public");
      const [a, b] = [await d.open(ch), await d.open(ch)];
      const sent = [await publishOk(ch, "score", { home: 1 }), await publishOk(ch, "score", "two"), await publishOk(ch, "note", [3])];
      for (const c of [a, b]) {
        const got = await messages(c, 3);
        expect(got.map((m) => [m.event, m.data])).toEqual([["score", { home: 1 }], ["score", "two"], ["note", [3]]]);
        if (got[0]!.seq !== null) expect(got.map((m) => m.seq)).toEqual(sent.map((r) => r.seq));
        expect((await c.settle(100)).filter((s) => s.t === "msg")).toEqual([]);
      }
      a.close();
      b.close();
    });

    it("delivers a growing message's appends in order: the message, then fragments that add up to its text", async () => {
      const d = make();
      const ch = d.channel("public");
      const c = await d.open(ch);
      await publishOk(ch, "answer", "Hello", "ans-1");
      const words = [",", " wor", "ld", "!"];
      for (const [i, w] of words.entries()) await appendOk(ch, "ans-1", w, { done: i === words.length - 1 });
      const [first] = await messages(c, 1);
      expect([first!.event, first!.data]).toEqual(["answer", "Hello"]);
      let text = "Hello";
      let done = false;
      while (!done) {
        const s = await c.next(3000);
        if (s.t !== "append") continue;
        expect(s.id).toBe("ans-1");
        text += s.text;
        done = s.done;
      }
      expect(text).toBe("Hello, world!");
      expect((await c.settle(100)).filter((s) => s.t === "append" || s.t === "msg")).toEqual([]);
      c.close();
    });

    it("delivers a burst whole and in seq order (batch frames unpacked as they came)", async () => {
      const d = make();
      const ch = d.channel("public");
      const c = await d.open(ch);
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => publishOk(ch, "burst", i)));
      const bySeq = [...results].sort((x, y) => x.seq - y.seq);
      const dataBySeq = new Map(results.map((r, i) => [r.seq, i]));
      const got = await messages(c, 40);
      expect(got.map((m) => m.data)).toEqual(bySeq.map((r) => dataBySeq.get(r.seq)));
      c.close();
    });

    it(`tells of a purge ${has.reset ? "with reset" : "(the protocol has no reset)"}, and live messages go on`, async () => {
      const d = make();
      const ch = d.channel("public");
      const c = await d.open(ch);
      await publishOk(ch, "before", 1);
      await messages(c, 1);
      expect((await call(`/v1/channels/${ch}/messages`, { method: "DELETE", headers: { authorization: "Bearer test-publish-key" } })).status).toBe(200);
      if (d.has.reset) expect(await until(() => c.next(3000), (s) => s.t === "reset")).toEqual({ t: "reset" });
      await publishOk(ch, "after", 2);
      expect((await messages(c, 1))[0]).toMatchObject({ event: "after", data: 2 });
      c.close();
    });

    // Presence channels cannot be sharded: that case has no presence to test.
    it.runIf(has.presence)("announces presence joins and leaves, one per user", async () => {
      const d = make();
      const ch = d.channel("presence");
      const alice = await d.open(ch, "alice");
      const bob = await d.open(ch, "bob");
      expect(await until(() => alice.next(3000), (s) => s.t === "join")).toEqual({ t: "join", id: "bob" });
      bob.close();
      expect(await until(() => alice.next(3000), (s) => s.t === "leave")).toEqual({ t: "leave", id: "bob" });
      alice.close();
    });

    it("refuses a private channel without a grant, and delivers nothing of it", async () => {
      const d = make();
      const ch = d.channel("private");
      const refusal = await d.refused(ch);
      expect(refusal.code).toBe("unauthorized");
      // A refused subscription leaves no subscriber behind.
      const stats = await (await call(`/v1/channels/${ch}`, { headers: { authorization: "Bearer test-publish-key" } })).json<{ subscribers: number }>();
      expect(stats.subscribers).toBe(0);
    });

    it("skips the connection a publish excludes, on every path", async () => {
      const d = make();
      const ch = d.channel("public");
      const [a, b] = [await d.open(ch), await d.open(ch)];
      const res = await publish(ch, { event: "not-for-a", data: 1 }, { query: `?exclude=${a.cid}` });
      expect(res.status).toBe(200);
      await publishOk(ch, "for-all", 2);
      expect((await messages(b, 2)).map((m) => m.event)).toEqual(["not-for-a", "for-all"]);
      expect((await messages(a, 1)).map((m) => m.event)).toEqual(["for-all"]);
      a.close();
      b.close();
    });

    it("leaves when the client closes: the channel counts no subscriber", async () => {
      const d = make();
      const ch = d.channel("public");
      const c = await d.open(ch);
      const stats = () => call(`/v1/channels/${ch}`).then((r) => r.json<{ subscribers: number }>());
      expect((await stats()).subscribers).toBe(1);
      c.close();
      expect((await until(stats, (s) => s.subscribers === 0)).subscribers).toBe(0);
    });
  });
}
