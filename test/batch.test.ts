import { describe, expect, it } from "vitest";
import { call, channelName, type BatchResult, type HistoryPage, TestSocket, token } from "./helpers";

const batch = (body: unknown, key = "test-publish-key", contentType = "application/json") =>
  call("/v1/publish", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": contentType },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
const resultsOf = async (res: Response) => (await res.json<{ results: BatchResult[] }>()).results;
const historyOf = async (ch: string) => (await (await call(`/v1/channels/${ch}/messages`)).json<HistoryPage>()).messages.map((m) => [m.seq, m.e, m.d]);
/** A result that must be a success. */
const ok = (r: BatchResult) => {
  if ("error" in r) throw new Error(`expected a published result, got ${JSON.stringify(r)}`);
  return r;
};

describe("batch publish", () => {
  it("publishes messages across channels, in request order within each channel", async () => {
    const [a, b] = [channelName("a"), channelName("b")];
    const [sa] = await TestSocket.subscribe(a);
    const res = await batch({
      messages: [
        { channel: a, event: "e", data: 1 },
        { channel: b, event: "e", data: 2 },
        { channel: a, event: "e", data: 3, id: "a-3" },
        { channel: a, event: "e", data: 4 },
      ],
    });
    expect(res.status).toBe(200);
    const results = await resultsOf(res);
    expect(results.map(ok).map((r) => [r.channel, r.seq])).toEqual([
      [a, 1],
      [b, 1],
      [a, 2],
      [a, 3],
    ]);
    expect(results[2]).toMatchObject({ id: "a-3", delivered: 1, duplicate: false });
    expect((await sa.take("msg", 3)).map((m) => m.d)).toEqual([1, 3, 4]);
  });

  it("sends one message to a list of channels with one shared id", async () => {
    const chans = [channelName("x"), channelName("y"), channelName("z")];
    const results = await resultsOf(await batch({ channels: chans, event: "alert", data: { level: 2 }, id: "alert-9" }));
    expect(results.map(ok).map((r) => [r.channel, r.seq, r.id])).toEqual(chans.map((c) => [c, 1, "alert-9"]));
    // A retry of the same batch is answered as duplicates, never delivered twice.
    const again = await resultsOf(await batch({ channels: chans, event: "alert", data: { level: 2 }, id: "alert-9" }));
    expect(again.map(ok).every((r) => r.duplicate && r.seq === 1)).toBe(true);
  });

  it("reports per-message errors on a partial failure; what was acknowledged is in the log", async () => {
    const open = channelName("open");
    const closed = channelName("closed");
    const writer = await token({ sub: "w", pub: [`${open}`] });
    const results = await resultsOf(
      await batch(
        {
          messages: [
            { channel: open, event: "e", data: 1 },
            { channel: closed, event: "e", data: 2, id: "c-2" },
            { channel: open, event: "e", data: 3 },
          ],
        },
        writer,
      ),
    );
    expect(results[0]).toMatchObject({ channel: open, seq: 1 });
    expect(results[1]).toEqual({ channel: closed, id: "c-2", error: { code: "forbidden", message: expect.stringMatching(/publishing/) } });
    expect(results[2]).toMatchObject({ channel: open, seq: 2 });
    expect(await historyOf(open)).toEqual([
      [1, "e", 1],
      [2, "e", 3],
    ]);
    expect(await historyOf(closed)).toEqual([]);
  });

  it("refuses more than 100 messages with 413", async () => {
    const ch = channelName();
    const messages = Array.from({ length: 101 }, (_, i) => ({ channel: ch, event: "e", data: i }));
    const res = await batch({ messages });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "too_large" } });
    expect(await historyOf(ch)).toEqual([]);
  });

  const bad: [string, unknown, RegExp][] = [
    ["a non-object body", [1, 2], /messages/],
    ["no messages or channels", { event: "e" }, /"messages" array or a "channels" array/],
    ["an empty list", { messages: [] }, /must not be empty/],
    ["an item that is not an object", { messages: [{ channel: "ok", event: "e", data: 1 }, 7] }, /messages\[1\] must be an object/],
    ["a bad channel name", { messages: [{ channel: "no spaces", event: "e", data: 1 }] }, /messages\[0\]\.channel/],
    ["a missing event", { messages: [{ channel: "ok", event: "e", data: 1 }, { channel: "ok", data: 1 }] }, /messages\[1\]: event/],
    ["missing data", { channels: ["ok"], event: "e" }, /channels\[0\]: data is required/],
    ["a bad id", { channels: ["ok"], event: "e", data: 1, id: 12 }, /id must be a string/],
  ];
  for (const [what, body, message] of bad) {
    it(`refuses ${what} with 400 naming the problem, publishing nothing`, async () => {
      const res = await batch(body);
      expect(res.status).toBe(400);
      const err = await res.json<{ error: { code: string; message: string } }>();
      expect(err.error.code).toBe("bad_request");
      expect(err.error.message).toMatch(message);
    });
  }

  it("refuses malformed JSON (400), other content types (415) and a missing credential (401)", async () => {
    expect((await batch("{")).status).toBe(400);
    expect((await batch("x", "test-publish-key", "text/plain")).status).toBe(415);
    expect((await call("/v1/publish", { method: "POST", body: "{}" })).status).toBe(401);
    expect((await batch({ channels: ["a"], event: "e", data: 1 }, "wrong")).status).toBe(403);
  });
});
