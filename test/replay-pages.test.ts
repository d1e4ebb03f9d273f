// A long replay goes out a page at a time (DESIGN v1.3 "Bounded memory"): at most 256 messages
// or about 1 MiB, then a `more` frame; the client answers `{"t":"more"}` once it has read the
// page. The same on every surface: test/options/replay-pages.test.ts; here, bytes, purges, SSE.
import { describe, expect, it } from "vitest";
import { call, channelName, publishOk, seqsOf, TestSocket, type FrameOf } from "./helpers";

/** Publishes `n` messages of about `bytes` each, 100 to a request. */
async function fill(ch: string, n: number, bytes = 10): Promise<void> {
  const pad = "p".repeat(bytes);
  for (let from = 0; from < n; from += 100) {
    const messages = Array.from({ length: Math.min(100, n - from) }, (_, i) => ({ channel: ch, event: "old", data: { i: from + i, pad } }));
    const res = await call("/v1/publish", { method: "POST", headers: { authorization: "Bearer test-publish-key", "content-type": "application/json" }, body: JSON.stringify({ messages }) });
    expect(res.status).toBe(200);
  }
}

/** Reads frames up to and including the next `more` (or until nothing comes): the msgs, and the more. */
async function page(s: TestSocket): Promise<{ msgs: FrameOf<"msg">[]; more: FrameOf<"more"> | null }> {
  const msgs: FrameOf<"msg">[] = [];
  for (;;) {
    // A quiet second ends the page (the first frame may take longer: the page is read first).
    const f = await s.next(msgs.length === 0 ? 3000 : 1000).catch(() => null);
    if (f === null) return { msgs, more: null };
    if (f.t === "more") return { msgs, more: f };
    if (f.t === "msg") msgs.push(f);
  }
}

describe("paged replay", () => {
  it("pages by bytes too: about 1 MiB a page", async () => {
    const ch = channelName("paged-bytes");
    await fill(ch, 40, 60_000);
    const [s] = await TestSocket.subscribe(ch, "?since=0");
    const first = await page(s);
    expect(first.msgs.length).toBe(17); // 17 × 60 KB ≤ 1 MiB < 18 × 60 KB
    expect(first.more?.seq).toBe(17);
    s.send({ t: "more" });
    expect((await page(s)).msgs.length).toBe(17);
    s.send({ t: "more" });
    const rest = await page(s);
    expect(seqsOf(rest.msgs)).toEqual([35, 36, 37, 38, 39, 40]);
    expect(rest.more).toBeNull();
    s.close();
  });

  it("a short replay needs no `more`: the whole of it, then live", async () => {
    const ch = channelName("short");
    await fill(ch, 20);
    const [s] = await TestSocket.subscribe(ch, "?since=5");
    const { msgs, more } = await page(s);
    expect(seqsOf(msgs)).toEqual(Array.from({ length: 15 }, (_, i) => i + 6));
    expect(more).toBeNull();
    s.close();
  });

  it("a purge during a replay ends it with the purge's reset; live after it", async () => {
    const ch = channelName("paged-purge");
    await fill(ch, 300);
    const [s] = await TestSocket.subscribe(ch, "?since=0");
    expect((await page(s)).more?.seq).toBe(256);
    const res = await call(`/v1/channels/${ch}/messages`, { method: "DELETE", headers: { authorization: "Bearer test-publish-key" } });
    expect(res.status).toBe(200);
    const reset = await s.expect("reset");
    s.send({ t: "more" }); // too late: nothing follows
    const after = await publishOk(ch, "live", 1);
    expect(await s.take("msg", 1)).toMatchObject([{ seq: after.seq, e: "live" }]);
    expect(after.seq).toBe(reset.seq + 1);
    expect(await s.settle(100)).toEqual([]);
    s.close();
  });

  it("an SSE stream takes the whole replay, page by page, as its client reads (the relay asks for each page)", async () => {
    const ch = channelName("paged-sse");
    await fill(ch, 600);
    const res = await call(`/v1/channels/${ch}/sse?since=0`);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while ((text.match(/^id: /gm)?.length ?? 0) < 600) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const ids = [...text.matchAll(/^id: [^:]+:(\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    expect(text).not.toContain("event: more");
    await reader.cancel();
  });
});
