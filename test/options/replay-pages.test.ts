// A long replay goes out a page at a time on every surface that resumes from a cursor: a hub's
// channel socket, a sharded channel's socket on its edges (rule "wide-*": shards 4) and a
// `/v1/ws` subscription. Each page is at most 256 messages, then `more`; the client's
// `{"t":"more"}` brings the next; messages published meanwhile follow the replay, in order, once.
import { describe, expect, it } from "vitest";
import type { ServerFrame } from "../../src/protocol";
import { call, channelName, publishOk, TestSocket, type Frame } from "../helpers";

type Msg = Extract<ServerFrame, { t: "msg" }>;

/** Publishes `n` small messages, 100 to a request. */
async function fill(ch: string, n: number): Promise<void> {
  for (let from = 0; from < n; from += 100) {
    const messages = Array.from({ length: Math.min(100, n - from) }, (_, i) => ({ channel: ch, event: "old", data: from + i }));
    const res = await call("/v1/publish", { method: "POST", headers: { authorization: "Bearer test-publish-key", "content-type": "application/json" }, body: JSON.stringify({ messages }) });
    expect(res.status).toBe(200);
  }
}

interface Resumed {
  /** Frames up to and including the next `more` (null when none came): the messages, unpacked from batches. */
  page(): Promise<{ seqs: number[]; more: { seq: number; ch?: string } | null }>;
  more(): void;
  close(): void;
}

function reader(s: TestSocket, ch: string | null): Resumed {
  const unpack = (f: Frame): Frame[] => (f.t === "batch" ? (f as Extract<ServerFrame, { t: "batch" }>).f.flatMap(unpack) : [f]);
  const queue: Frame[] = [];
  return {
    async page() {
      const seqs: number[] = [];
      for (;;) {
        if (queue.length === 0) {
          // A quiet second ends the page (the first frame may take longer: the page is read first).
          const f = await s.next(seqs.length === 0 ? 3000 : 1000).catch(() => null);
          if (f === null) return { seqs, more: null };
          queue.push(...unpack(f));
          continue;
        }
        const f = queue.shift()!;
        if (f.t === "more") return { seqs, more: f as { seq: number; ch?: string } };
        if (f.t === "msg") seqs.push((f as Msg).seq);
      }
    },
    more: () => s.send(ch === null ? { t: "more" } : { t: "more", ch }),
    close: () => s.close(),
  };
}

const surfaces: [string, (prefix: string) => string, (ch: string) => Promise<Resumed>][] = [
  ["a hub's channel socket", (p) => channelName(p), async (ch) => reader((await TestSocket.subscribe(ch, "?since=0"))[0], null)],
  ["a sharded channel's socket (on an edge)", (p) => channelName(`wide-${p}`), async (ch) => reader((await TestSocket.subscribe(ch, "?since=0&batch=1"))[0], null)],
  [
    "a /v1/ws subscription (on a connection edge)",
    (p) => channelName(p),
    async (ch) => {
      const s = await TestSocket.open("/v1/ws");
      await s.expect("welcome");
      s.send({ t: "sub", ch, since: 0 });
      await s.expect("subscribed");
      return reader(s, ch);
    },
  ],
];

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe.each(surfaces)("paged replay on %s", (_name, channel, resume) => {
  it("sends 256 messages, then more; each more brings the next page; live messages follow in order, once", async () => {
    const ch = channel("paged");
    await fill(ch, 600);
    const c = await resume(ch);
    const first = await c.page();
    expect(first.seqs).toEqual(range(1, 256));
    expect(first.more?.seq).toBe(256);

    const live = await publishOk(ch, "live", 1); // waits behind the replay
    c.more();
    const second = await c.page();
    expect(second.seqs).toEqual(range(257, 256));
    expect(second.more?.seq).toBe(512);

    c.more();
    const last = await c.page();
    expect(last.seqs).toEqual([...range(513, 88), live.seq]);
    expect(last.more).toBeNull();

    const next = await publishOk(ch, "live", 2);
    expect((await c.page()).seqs).toEqual([next.seq]);
    c.close();
  });

  it("a subscriber that never asks for more holds up nobody: others get live messages at once", async () => {
    const ch = channel("paged-stuck");
    await fill(ch, 300);
    const stuck = await resume(ch);
    expect((await stuck.page()).more?.seq).toBe(256);
    const [live] = await TestSocket.subscribe(ch, "?batch=1");
    const sent = await publishOk(ch, "live", 1);
    expect(await live.take("msg", 1)).toMatchObject([{ seq: sent.seq }]);
    expect((await stuck.page()).seqs).toEqual([]); // held: it is still on page 1
    stuck.close();
    live.close();
  });
});
