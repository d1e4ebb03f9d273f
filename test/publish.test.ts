import { describe, expect, it } from "vitest";
import { call, channelName, publish, publishOk, TestSocket } from "./helpers";

describe("HTTP publish", () => {
  it("delivers every message to every socket with consecutive seqs", async () => {
    const ch = channelName();
    const sockets = await Promise.all(Array.from({ length: 20 }, () => TestSocket.subscribe(ch).then(([s]) => s)));
    for (let i = 1; i <= 10; i++) {
      const r = await publishOk(ch, "tick", { i });
      expect(r).toMatchObject({ seq: i, delivered: 20, duplicate: false });
      expect(typeof r.id).toBe("string");
    }
    for (const s of sockets) {
      const msgs = await s.take("msg", 10);
      expect(msgs.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(msgs.map((m) => (m.d as { i: number }).i)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(msgs[0]).toMatchObject({ t: "msg", ch, e: "tick" });
      expect(typeof msgs[0]!.ts).toBe("number");
      expect(msgs[0]).not.toHaveProperty("u");
    }
  });

  it("is idempotent: a repeated id answers the first seq and is not delivered again", async () => {
    const ch = channelName();
    const [s] = await TestSocket.subscribe(ch);
    const first = await publishOk(ch, "order", { n: 1 }, "order-42");
    const again = await publishOk(ch, "order", { n: 1 }, "order-42");
    expect(first).toEqual({ seq: 1, id: "order-42", delivered: 1, duplicate: false });
    expect(again).toEqual({ seq: 1, id: "order-42", delivered: 0, duplicate: true });
    await publishOk(ch, "order", { n: 2 }, "order-43");
    const msgs = await s.take("msg", 2);
    expect(msgs.map((m) => [m.seq, m.id])).toEqual([
      [1, "order-42"],
      [2, "order-43"],
    ]);
    expect(await s.settle()).toEqual([]);
  });

  it("publishes a text/plain body (or one with no content type) as event 'message'", async () => {
    const ch = channelName();
    const [s] = await TestSocket.subscribe(ch);
    expect((await publish(ch, "hello there", { contentType: "text/plain; charset=utf-8" })).status).toBe(200);
    const res = await call(`/v1/channels/${ch}/messages`, { method: "POST", headers: { authorization: "Bearer test-publish-key" }, body: "no type" });
    expect(res.status).toBe(200);
    const msgs = await s.take("msg", 2);
    expect(msgs.map((m) => [m.e, m.d])).toEqual([
      ["message", "hello there"],
      ["message", "no type"],
    ]);
  });

  it("keeps any JSON value as data, including null, arrays and unicode", async () => {
    const ch = channelName();
    const [s] = await TestSocket.subscribe(ch);
    const values = [null, [1, "two", { three: 3 }], "héllo ✓ 🚀", 0, false, { nested: { deep: [true] } }];
    for (const data of values) await publishOk(ch, "v", data);
    expect((await s.take("msg", values.length)).map((m) => m.d)).toEqual(values);
  });

  it("?exclude=CID skips the sender's own socket", async () => {
    const ch = channelName();
    const [sender, welcome] = await TestSocket.subscribe(ch);
    const [other] = await TestSocket.subscribe(ch);
    const res = await publish(ch, { event: "e", data: 1 }, { query: `?exclude=${welcome.cid}` });
    expect(await res.json()).toMatchObject({ seq: 1, delivered: 1 });
    expect((await other.expect("msg")).seq).toBe(1);
    expect(await sender.settle()).toEqual([]);
  });

  it("answers stats without creating storage for an unused channel", async () => {
    const ch = channelName();
    const empty = await call(`/v1/channels/${ch}`);
    expect(await empty.json()).toEqual({
      channel: ch,
      subscribers: 0,
      transports: { ws: 0, sse: 0 },
      presence: null,
      publishes: 0,
      seq: 0,
      epoch: expect.stringMatching(/^[0-9a-f]{12}$/),
      log: { count: 0, oldestSeq: null },
      options: { rule: null, logMaxMessages: 1000, logMaxAgeS: 3600, dedupeWindowS: 300, requireAuth: false, clientPublish: true, clientPubPerS: 10, presenceMaxMembers: 1000, maxSockets: 30000, latest: false, shards: 1, webhooks: true },
    });
    const [s] = await TestSocket.subscribe(ch);
    await publishOk(ch, "a", 1);
    await publishOk(ch, "a", 2);
    const stats = await (await call(`/v1/channels/${ch}`)).json<Record<string, unknown>>();
    expect(stats).toMatchObject({ channel: ch, subscribers: 1, transports: { ws: 1, sse: 0 }, publishes: 2, seq: 2, log: { count: 2, oldestSeq: 1 } });
    expect(stats.epoch).toMatch(/^[0-9a-f]{12}$/);
    s.close();
  });
});

describe("HTTP publish: bad input gets a clear answer", () => {
  const cases: [string, () => Promise<Response>, number, string, RegExp][] = [
    ["malformed JSON", () => publish("bad-in", '{"event": "x", "data": '), 400, "bad_request", /not valid JSON/],
    ["a JSON array body", () => publish("bad-in", "[1,2]"), 400, "bad_request", /JSON object/],
    ["a missing event", () => publish("bad-in", { data: 1 }), 400, "bad_request", /event must be a string/],
    ["an empty event", () => publish("bad-in", { event: "", data: 1 }), 400, "bad_request", /event must be 1-128/],
    ["an event of 129 chars", () => publish("bad-in", { event: "e".repeat(129), data: 1 }), 400, "bad_request", /event must be 1-128/],
    ["a numeric event", () => publish("bad-in", { event: 7, data: 1 }), 400, "bad_request", /event must be a string/],
    ["missing data", () => publish("bad-in", { event: "x" }), 400, "bad_request", /data is required/],
    ["a numeric id", () => publish("bad-in", { event: "x", data: 1, id: 5 }), 400, "bad_request", /id must be a string/],
    ["an id of 129 chars", () => publish("bad-in", { event: "x", data: 1, id: "i".repeat(129) }), 400, "bad_request", /id must be 1-128/],
    ["an unsupported content type", () => publish("bad-in", "<x/>", { contentType: "application/xml" }), 415, "unsupported_media_type", /application\/xml/],
    ["a body over MAX_MESSAGE_BYTES", () => publish("bad-in", { event: "x", data: "a".repeat(70_000) }), 413, "too_large", /MAX_MESSAGE_BYTES/],
    ["a bad exclude", () => publish("bad-in", { event: "x", data: 1 }, { query: "?exclude=../x" }), 400, "bad_request", /exclude/],
  ];
  for (const [what, send, status, code, message] of cases) {
    it(`${what} → ${status} ${code}`, async () => {
      const res = await send();
      expect(res.status).toBe(status);
      const body = await res.json<{ error: { code: string; message: string } }>();
      expect(body.error.code).toBe(code);
      expect(body.error.message).toMatch(message);
    });
  }

  it("writes nothing for a refused publish", async () => {
    const ch = channelName();
    await publish(ch, '{"event":');
    await publish(ch, { event: "x", data: "a".repeat(70_000) });
    const stats = await (await call(`/v1/channels/${ch}`)).json<Record<string, unknown>>();
    expect(stats).toMatchObject({ seq: 0, log: { count: 0 } });
  });
});
