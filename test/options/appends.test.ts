// Appends where a channel has options: a latest-value namespace (price-*: logMaxMessages 1), a
// sharded channel's edges (wide-*: shards 4) and `/v1/ws`. Every fragment after a cursor once,
// in order; a late joiner gets each message whole.
import { describe, expect, it } from "vitest";
import { channelName, publish, publishOk, TestSocket } from "../helpers";

async function appendOk(ch: string, to: string, text: string, done = false) {
  const res = await publish(ch, { append: to, data: text, ...(done ? { done: true } : {}) });
  if (!res.ok) throw new Error(`append failed: ${res.status} ${await res.text()}`);
  return res.json<{ seq: number; ref: number }>();
}

describe("appends with channel options", () => {
  it("gives a latest-value channel's subscriber the last message whole, though it keeps one entry", async () => {
    const ch = channelName("price");
    await publishOk(ch, "quote", "old", "before");
    await publishOk(ch, "answer", "x", "a");
    await appendOk(ch, "a", "y");
    await appendOk(ch, "a", "z", true);
    const [s] = await TestSocket.subscribe(ch);
    const [m] = await s.take("msg", 1);
    expect(m).toMatchObject({ id: "a", d: "xyz", done: true });
    expect(await s.settle()).toEqual([]);
  });

  it("resumes a sharded channel's socket on its edge with every fragment after the cursor, and rewinds it whole", async () => {
    const ch = channelName("wide");
    const [s] = await TestSocket.subscribe(ch);
    const created = await publishOk(ch, "answer", "one", "m");
    const first = await appendOk(ch, "m", " two");
    await s.take("append", 1);
    s.close();
    await appendOk(ch, "m", " three");
    await appendOk(ch, "m", " four", true);
    const [again] = await TestSocket.subscribe(ch, `?since=${first.seq}`);
    expect((await again.take("append", 2)).map((f) => [f.seq, f.d, f.ref])).toEqual([
      [first.seq + 1, " three", created.seq],
      [first.seq + 2, " four", created.seq],
    ]);
    const [late] = await TestSocket.subscribe(ch, "?rewind=5");
    const [whole] = await late.take("msg", 1);
    expect(whole).toMatchObject({ id: "m", d: "one two three four", done: true, v: first.seq + 2 });
    expect((await late.settle()).filter((f) => f.t === "msg" || f.t === "append")).toEqual([]);
  });

  it("gives /v1/ws the append frames with ch, and a `sub` with since every fragment after it", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "a", "m");
    const s = await TestSocket.open("/v1/ws");
    await s.expect("welcome");
    s.send({ t: "sub", ch, since: 1 });
    await s.expect("subscribed");
    await appendOk(ch, "m", "b");
    await appendOk(ch, "m", "c", true);
    const got: { t: string; ch?: string; d?: string; done?: boolean }[] = [];
    while (got.length < 2) {
      const f = await s.next();
      if (f.t === "batch") got.push(...(f.f as typeof got));
      else if (f.t === "append") got.push(f);
    }
    expect(got.map((f) => [f.t, f.ch, f.d, f.done ?? false])).toEqual([
      ["append", ch, "b", false],
      ["append", ch, "c", true],
    ]);
  });
});
