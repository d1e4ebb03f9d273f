// Appends where a channel has options: a latest-value namespace (price-*: logMaxMessages 1), a
// sharded channel's edges (wide-*: shards 4) and `/v1/ws`. Every fragment after a cursor once,
// in order; a late joiner gets each message whole.
import { describe, expect, it } from "vitest";
import { appendOk, call, channelName, publishOk, TestSocket, type Frame } from "../helpers";

describe("appends with channel options", () => {
  it("gives a latest-value channel's subscriber the last message whole, though it keeps one entry", async () => {
    const ch = channelName("price");
    await publishOk(ch, "quote", "old", "before");
    await publishOk(ch, "answer", "x", "a");
    await appendOk(ch, "a", "y");
    await appendOk(ch, "a", "z", { done: true });
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
    await appendOk(ch, "m", " four", { done: true });
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
    await appendOk(ch, "m", "c", { done: true });
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

describe("appends and retention", () => {
  it("keeps messages by their own count where appends fill the log: no hole between grown ones (chat-*: 5)", async () => {
    const ch = channelName("chat");
    await publishOk(ch, "answer", "A", "a");
    await appendOk(ch, "a", "a");
    await publishOk(ch, "question", "B?", "b");
    await publishOk(ch, "answer", "C", "c");
    for (let i = 0; i < 10; i++) await appendOk(ch, "c", "c");
    const page = await (await call(`/v1/channels/${ch}/messages`)).json<{ messages: { id: string; d: string }[] }>();
    expect(page.messages.map((m) => [m.id, m.d])).toEqual([
      ["a", "Aa"],
      ["b", "B?"],
      ["c", "C" + "c".repeat(10)],
    ]);
  });

  it("gives a rewind of grown messages longer than a page as one page of the newest, never their appends again", async () => {
    const ch = channelName("grow");
    // 20 grown messages of ~60 KB: about 1.2 MB, over one replay page (about 1 MiB).
    for (let i = 0; i < 20; i++) {
      await publishOk(ch, "answer", `${i}:` + "x".repeat(60_000), `m${i}`);
      await appendOk(ch, `m${i}`, "!");
    }
    const [s, welcome] = await TestSocket.subscribe(ch, "?rewind=20");
    const frames: Frame[] = [];
    while (!frames.some((f) => f.t === "msg" && (f as { id?: string }).id === "m19")) frames.push(await s.next(5000));
    frames.push(...(await s.settle(300)));
    expect(frames.filter((f) => f.t === "more" || f.t === "append")).toEqual([]);
    const got = frames.filter((f) => f.t === "msg") as unknown as { id: string; d: string }[];
    expect(got.length).toBeGreaterThan(10);
    expect(got.length).toBeLessThan(20);
    expect(got.at(-1)).toMatchObject({ id: "m19", d: "19:" + "x".repeat(60_000) + "!" });
    expect(welcome.seq).toBe(40);
  });
});
