// History answers at most 4 MiB (DESIGN.md v1.3 "Bounded memory and time per request"): a page
// that would pass it is cut before the frame that would, says `"more": true`, and a client that
// goes on from the last message it got (`since` forward, `before` back) gets the rest exactly once.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { historyBody } from "../src/hub/history";
import { utf8Length } from "../src/server/utf8";
import { call, channelName, type HistoryPage, hubOf, publishOk, seqsOf } from "./helpers";

const MIB4 = 4 * 1024 * 1024;
const COUNT = 100;

/** A page, and its size in bytes as sent. */
async function page(ch: string, query: string): Promise<{ bytes: number; body: HistoryPage }> {
  const res = await call(`/v1/channels/${ch}/messages${query}`);
  expect(res.status).toBe(200);
  const raw = new Uint8Array(await res.arrayBuffer());
  return { bytes: raw.byteLength, body: JSON.parse(new TextDecoder().decode(raw)) as HistoryPage };
}

/**
 * 100 messages of 30,000 two-byte characters each: 60 KB as sent (6 MB in all) but 30,000
 * UTF-16 units, so a page counted in characters would hold all 100 and pass 4 MiB.
 */
async function bigChannel(): Promise<string> {
  const ch = channelName("hist-bytes");
  for (let i = 1; i <= COUNT; i++) await publishOk(ch, "m", `${i}:${"é".repeat(30_000)}`);
  return ch;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("history is cut at 4 MiB", () => {
  it("cuts limit=1000 under 4 MiB with more: true; since = its last seq gets the rest exactly once", async () => {
    const ch = await bigChannel();
    const first = await page(ch, "?limit=1000");
    expect(first.bytes).toBeLessThanOrEqual(MIB4);
    expect(first.body.more).toBe(true);
    const got = seqsOf(first.body.messages);
    // Cut at its newest end: it starts where the last `limit` start and runs on without a gap.
    expect(got).toEqual(range(1, got.length));
    // Nearly full: the cut is at the frame that would pass the cap, not far before it.
    expect(first.bytes).toBeGreaterThan(MIB4 - 70_000);
    // The answer's seq stays the channel's newest; the cursor to go on with is the last message's.
    expect(first.body.seq).toBe(COUNT);
    const last = got[got.length - 1]!;
    const rest = await page(ch, `?since=${last}&epoch=${first.body.epoch}&limit=1000`);
    expect(rest.body.more).toBeUndefined();
    expect([...got, ...seqsOf(rest.body.messages)]).toEqual(range(1, COUNT));
    expect(rest.body.messages[0]!.d).toBe(`${last + 1}:${"é".repeat(30_000)}`);
  });

  it("cuts a since page the same way, and pages forward to the end", async () => {
    const ch = await bigChannel();
    const seen: number[] = [];
    let since = 0;
    let pages = 0;
    for (;;) {
      const { bytes, body } = await page(ch, `?since=${since}&limit=1000`);
      expect(bytes).toBeLessThanOrEqual(MIB4);
      seen.push(...seqsOf(body.messages));
      pages++;
      if (!body.more) break;
      since = body.messages[body.messages.length - 1]!.seq;
    }
    expect(seen).toEqual(range(1, COUNT));
    expect(pages).toBe(2);
  });

  it("cuts a before page at its oldest end; before = its last seq goes on back to the start", async () => {
    const ch = await bigChannel();
    const first = await page(ch, `?before=${COUNT + 1}&limit=1000`);
    expect(first.bytes).toBeLessThanOrEqual(MIB4);
    expect(first.body.more).toBe(true);
    const got = seqsOf(first.body.messages);
    expect(got).toEqual(range(COUNT - got.length + 1, COUNT).reverse());
    const rest = await page(ch, `?before=${got[got.length - 1]}&limit=1000`);
    expect(rest.body.more).toBeUndefined();
    expect([...got, ...seqsOf(rest.body.messages)]).toEqual(range(1, COUNT).reverse());
  });

  it("leaves a page under the cap as it was: whole, and no more field", async () => {
    const ch = await bigChannel();
    const { body } = await page(ch, "?limit=10");
    expect(seqsOf(body.messages)).toEqual(range(COUNT - 9, COUNT));
    expect("more" in body).toBe(false);
  });

  it("holds to the cap to the byte: a page of exactly the cap is whole, one byte less cuts it", async () => {
    const ch = channelName("hist-bytes");
    for (let i = 1; i <= 5; i++) await publishOk(ch, "m", `${i}:${"€".repeat(100)}`);
    await runInDurableObject(hubOf(ch), (room) => {
      const query = { cursor: null, before: null, limit: 1000 };
      const whole = historyBody(room.log, ch, query, Date.now());
      const size = utf8Length(whole);
      expect(size).toBe(new TextEncoder().encode(whole).byteLength);
      expect(historyBody(room.log, ch, query, Date.now(), size)).toBe(whole);
      const cut = historyBody(room.log, ch, query, Date.now(), size - 1);
      expect(utf8Length(cut)).toBeLessThanOrEqual(size - 1);
      expect(JSON.parse(cut)).toMatchObject({ more: true, messages: [{ seq: 1 }, { seq: 2 }, { seq: 3 }, { seq: 4 }] });
      // However small the cap, a page holds one message, so a client paging on always moves.
      expect(JSON.parse(historyBody(room.log, ch, query, Date.now(), 10))).toMatchObject({ more: true, messages: [{ seq: 1 }] });
    });
  });
});
