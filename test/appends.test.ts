// Appends (DESIGN v1.3 "Appends: messages that grow"): an AI answer published once, then grown
// token by token. Live subscribers get each fragment, a resume gets every fragment after its
// cursor, and a late joiner (rewind, latest, history) gets the message whole, once.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { appendOk, call, channelName, hubOf, publish, publishOk, SseReader, TestSocket, token, type HistoryPage } from "./helpers";

/** Appends `text` to message `to` over HTTP (the publish key unless `key`), answering the response. */
const append = (ch: string, to: string, text: unknown, extra: Record<string, unknown> = {}, key?: string) => publish(ch, { append: to, data: text, ...extra }, key === undefined ? {} : { key });

/** An answer of `tokens`, published as a message with the first and grown by the rest. */
async function answer(ch: string, id: string, tokens: string[], done = true) {
  const created = await publishOk(ch, "answer", tokens[0], id);
  for (let i = 1; i < tokens.length; i++) await appendOk(ch, id, tokens[i]!, i === tokens.length - 1 && done ? { done: true } : {});
  return created;
}

const history = async (ch: string, query = "") => (await call(`/v1/channels/${ch}/messages${query}`)).json<HistoryPage>();

describe("appends over HTTP", () => {
  it("answers with the append's own seq, its id and the message it grew (ref)", async () => {
    const ch = channelName("grow");
    const created = await publishOk(ch, "answer", "Hel", "answer-1");
    const grown = await appendOk(ch, "answer-1", "lo", { id: "a-1" });
    expect(grown).toEqual({ seq: created.seq + 1, id: "a-1", ref: created.seq, delivered: 0, duplicate: false });
    // The Worker makes an id when there is none, so a retry can reuse it.
    const made = await appendOk(ch, "answer-1", "!");
    expect(made.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("appends a retried id once, answering duplicate with the first seq (also the one that said done)", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "a", "m");
    const first = await appendOk(ch, "m", "b", { id: "x" });
    expect(await appendOk(ch, "m", "b", { id: "x" })).toMatchObject({ seq: first.seq, ref: first.ref, duplicate: true });
    const end = await appendOk(ch, "m", "c", { id: "end", done: true });
    expect(await appendOk(ch, "m", "c", { id: "end", done: true })).toMatchObject({ seq: end.seq, duplicate: true });
    const page = await history(ch);
    expect(page.messages).toEqual([expect.objectContaining({ t: "msg", id: "m", d: "abc", v: end.seq, done: true })]);
  });

  it.each([
    ["an unknown message", async (ch: string) => append(ch, "nope", "x"), 404, "not_found"],
    ["non-string data", async (ch: string) => append(ch, "m", 42), 400, "bad_request"],
    ["a message whose data is not a string", async (ch: string) => (await publishOk(ch, "e", { n: 1 }, "obj"), append(ch, "obj", "x")), 400, "bad_request"],
    ["done that is not a boolean", async (ch: string) => append(ch, "m", "x", { done: "yes" }), 400, "bad_request"],
    ["an append after done", async (ch: string) => (await appendOk(ch, "m", "!", { done: true }), append(ch, "m", "x")), 409, "conflict"],
    ["an append whose id is a message's", async (ch: string) => append(ch, "m", "x", { id: "m" }), 409, "conflict"],
    ["no publish key", async (ch: string) => publish(ch, { append: "m", data: "x" }, { key: null }), 401, "unauthorized"],
  ])("refuses %s", async (_what, act, status, code) => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "start", "m");
    const res = await act(ch);
    expect(res.status).toBe(status);
    expect(await res.json()).toMatchObject({ error: { code } });
    // Nothing was appended: the message is as published (or as the test grew it).
    const page = await history(ch);
    expect(page.messages.find((m) => m.id === "m")!.d).toMatch(/^start!?$/);
  });

  it("refuses an append that would grow the message past MAX_MESSAGE_BYTES (413), leaving it whole", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "x".repeat(60_000), "big");
    const res = await append(ch, "big", "y".repeat(6_000));
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "too_large" } });
    await appendOk(ch, "big", "z".repeat(1_000));
    const [m] = (await history(ch)).messages;
    expect((m as { d: string }).d).toBe("x".repeat(60_000) + "z".repeat(1_000));
  });

  it("finds the message in the appender's own id space: a token cannot grow the origin's message", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "origin's", "shared-id");
    const client = await token({ sub: "mallory", ch: [ch], pub: [ch] });
    const res = await append(ch, "shared-id", " tampered", {}, client);
    expect(res.status).toBe(404);
    // Its own message it can grow.
    expect((await publish(ch, { event: "note", data: "mine", id: "shared-id" }, { key: client })).status).toBe(200);
    expect((await append(ch, "shared-id", " too", {}, client)).status).toBe(200);
    const texts = (await history(ch)).messages.map((m) => (m as { d: string }).d);
    expect(texts).toEqual(["origin's", "mine too"]);
  });

  it("counts appends with a token toward its publish rate (clientPubPerS)", async () => {
    const ch = channelName("grow");
    const client = await token({ sub: "fast", ch: [ch], pub: [ch] });
    await publish(ch, { event: "answer", data: "", id: "m" }, { key: client });
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => append(ch, "m", String(i), {}, client)));
    expect(answers.filter((r) => r.status === 429).length).toBeGreaterThan(0);
    expect(await answers.find((r) => r.status === 429)!.json()).toMatchObject({ error: { code: "rate_limited" } });
  });

  it("takes appends in a batch publish (messages[] items), one result each", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "a", "m");
    const res = await call("/v1/publish", {
      method: "POST",
      headers: { authorization: "Bearer test-publish-key", "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ channel: ch, append: "m", data: "b" }, { channel: ch, append: "m", data: "c", done: true }, { channel: ch, append: "nope", data: "x" }] }),
    });
    const { results } = await res.json<{ results: { seq?: number; ref?: number; error?: { code: string } }[] }>();
    expect(results.map((r) => r.error?.code ?? r.ref)).toEqual([1, 1, "not_found"]);
    expect((await history(ch)).messages).toEqual([expect.objectContaining({ d: "abc", done: true })]);
  });

  it("refuses appends to a Durable Stream's channel (its messages do not grow)", async () => {
    const ch = channelName("grow");
    await call(`/v1/stream/${ch}`, { method: "PUT", headers: { authorization: "Bearer test-publish-key", "content-type": "text/plain" } });
    await publishOk(ch, "answer", "a", "m");
    const res = await append(ch, "m", "b");
    expect(res.status).toBe(409);
  });
});

describe("appends on a socket", () => {
  it("delivers each fragment live as an append frame, and answers a socket append with its ref", async () => {
    const ch = channelName("grow");
    const writer = await token({ sub: "bot", ch: [ch], pub: [ch] });
    const [reader] = await TestSocket.subscribe(ch);
    const [author] = await TestSocket.subscribe(ch, `?token=${writer}`);
    author.send({ t: "pub", e: "answer", d: "Hel", id: "m" });
    const [ack] = await author.take("ack", 1);
    author.send({ t: "pub", append: "m", d: "lo", id: "a1", done: true });
    const grown = (await author.take("ack", 1))[0]!;
    expect(grown).toMatchObject({ id: "a1", seq: ack!.seq + 1, ref: ack!.seq, duplicate: false });
    const [msg] = await reader.take("msg", 1);
    const [frag] = await reader.take("append", 1);
    expect(msg).toMatchObject({ seq: ack!.seq, id: "m", e: "answer", d: "Hel" });
    expect(frag).toMatchObject({ t: "append", ch, seq: ack!.seq + 1, ref: ack!.seq, id: "m", e: "answer", d: "lo", done: true, u: "bot" });
  });

  it("refuses an append from a socket whose token grants no publishing (forbidden)", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "a", "m");
    const [reader] = await TestSocket.subscribe(ch, `?token=${await token({ sub: "reader", ch: [ch] })}`);
    reader.send({ t: "pub", append: "m", d: "b", id: "a1" });
    expect(await reader.expect("err")).toMatchObject({ code: "forbidden", id: "a1" });
    expect((await history(ch)).messages).toEqual([expect.objectContaining({ d: "a" })]);
  });

  it("tells a socket why an append was refused, naming the pub", async () => {
    const ch = channelName("grow");
    const writer = await token({ sub: "bot", ch: [ch], pub: [ch] });
    const [author] = await TestSocket.subscribe(ch, `?token=${writer}`);
    author.send({ t: "pub", append: "missing", d: "x", id: "a1" });
    expect(await author.expect("err")).toMatchObject({ code: "not_found", id: "a1" });
    author.send({ t: "pub", append: "m", d: 5, id: "a2" });
    expect(await author.expect("err")).toMatchObject({ code: "bad_frame", id: "a2" });
  });

  it("resumes with every fragment after the cursor once, in order", async () => {
    const ch = channelName("grow");
    const [s] = await TestSocket.subscribe(ch);
    const created = await publishOk(ch, "answer", "The", "m");
    await appendOk(ch, "m", " quick");
    const [, first] = [await s.take("msg", 1), (await s.take("append", 1))[0]!];
    s.close();
    await appendOk(ch, "m", " brown");
    await appendOk(ch, "m", " fox", { done: true });
    const [again] = await TestSocket.subscribe(ch, `?since=${first.seq}`);
    const rest = await again.take("append", 2);
    expect(rest.map((f) => [f.seq, f.d, f.done ?? false])).toEqual([
      [created.seq + 2, " brown", false],
      [created.seq + 3, " fox", true],
    ]);
    expect(await again.settle()).toEqual([]);
  });

  it("gives a rewind each message once and whole (v, done), then live fragments after the welcome's seq", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "note", "before", "n0");
    await answer(ch, "a1", ["Once", " upon", " a time"]);
    await answer(ch, "a2", ["Still", " going"], false);
    const [s, welcome] = await TestSocket.subscribe(ch, "?rewind=2");
    const rewound = await s.take("msg", 2);
    expect(rewound.map((m) => [m.id, m.d, m.done ?? false])).toEqual([
      ["a1", "Once upon a time", true],
      ["a2", "Still going", false],
    ]);
    expect(rewound[1]!.v).toBe(welcome.seq);
    await appendOk(ch, "a2", "...");
    const [live] = await s.take("append", 1);
    expect(live).toMatchObject({ seq: welcome.seq + 1, id: "a2", d: "..." });
    expect(await s.settle()).toEqual([]);
  });

  it("joins consecutive appends to one message that go out in one flush into one frame (d joined, seq the last)", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "a", "m");
    const [batched] = await TestSocket.subscribe(ch, "?batch=1");
    const [plain] = await TestSocket.subscribe(ch);
    // One batch call: three appends recorded in one turn; the first goes out at once, the rest wait for the flush.
    const res = await call("/v1/publish", {
      method: "POST",
      headers: { authorization: "Bearer test-publish-key", "content-type": "application/json" },
      body: JSON.stringify({ messages: ["b", "c", "d"].map((data) => ({ channel: ch, append: "m", data })) }),
    });
    expect(res.status).toBe(200);
    const frames: { t: string; seq: number; d: string }[] = [];
    while (frames.length < 2) {
      const f = await batched.next();
      if (f.t === "append") frames.push(f);
      if (f.t === "batch") frames.push(...(f.f as typeof frames));
    }
    expect(frames.map((f) => [f.seq, f.d])).toEqual([
      [2, "b"],
      [4, "cd"],
    ]);
    // A socket without batching takes each as it comes.
    expect((await plain.take("append", 3)).map((f) => f.d)).toEqual(["b", "c", "d"]);
  });

  it("sends appends to SSE as event: append with id EPOCH:SEQ, so Last-Event-ID resumes after them", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "a", "m");
    const sse = await SseReader.open(`/v1/channels/${ch}/sse`);
    await sse.expect("welcome");
    const frag = await appendOk(ch, "m", "b");
    const got = await sse.expect("append");
    expect(got.event).toBe("append");
    const epoch = (await (await call(`/v1/channels/${ch}`)).json<{ epoch: string }>()).epoch;
    expect(got.id).toBe(`${epoch}:${frag.seq}`);
    expect(got.frame).toMatchObject({ ref: 1, d: "b" });
    await sse.cancel();
    await appendOk(ch, "m", "c");
    const again = await SseReader.open(`/v1/channels/${ch}/sse`, { "last-event-id": got.id! });
    await again.expect("welcome");
    expect((await again.expect("append")).frame).toMatchObject({ seq: frag.seq + 1, d: "c" });
    await again.cancel();
  });
});

describe("compaction", () => {
  it("history without a cursor gives messages whole; with one, the entries after it", async () => {
    const ch = channelName("grow");
    await answer(ch, "a", ["1", "2", "3"]);
    await publishOk(ch, "note", "plain", "n");
    const whole = await history(ch);
    expect(whole.messages.map((m) => [m.seq, (m as { d: string }).d])).toEqual([
      [1, "123"],
      [4, "plain"],
    ]);
    expect(whole.seq).toBe(4);
    const cursor = await history(ch, "?since=1");
    expect(cursor.messages.map((m) => m.t)).toEqual(["append", "append", "msg"]);
    const before = await history(ch, "?before=4&limit=1");
    expect(before.messages).toEqual([expect.objectContaining({ id: "a", d: "123", v: 3, done: true })]);
  });

  it("keeps a message whole while it is in the log, after its early appends' entries are trimmed", async () => {
    const ch = channelName("grow");
    // LOG_MAX_MESSAGES is 1000 here: an answer of 1,300 tokens outgrows it as entries.
    const tokens = Array.from({ length: 1300 }, (_, i) => `${i} `);
    await publishOk(ch, "answer", tokens[0], "long");
    await runInDurableObject(hubOf(ch), async (room) => {
      // 1,299 appends in one go, through the hub's publish entry point as HTTP calls make them.
      for (let i = 1; i < tokens.length; i++) await (room as unknown as { publish: (i: unknown, o: unknown) => Promise<unknown> }).publish({ event: "", data: JSON.stringify(tokens[i]), id: `t${i}`, append: { to: "long", done: false } }, { sender: null, exclude: null, by: "origin", scope: "" });
    });
    const [s, welcome] = await TestSocket.subscribe(ch, "?rewind=1");
    const [m] = await s.take("msg", 1);
    expect(welcome.seq).toBe(1300);
    expect(m).toMatchObject({ seq: 1, id: "long", d: tokens.join(""), v: 1300 });
    // The first appends' entries are gone: a cursor there is a reset, never a gap.
    const [old] = await TestSocket.subscribe(ch, "?since=1");
    expect((await old.next()).t).toBe("reset");
    // It still grows, and stays whole.
    await appendOk(ch, "long", "end", { done: true });
    expect((await history(ch, "?limit=1")).messages[0]).toMatchObject({ d: tokens.join("") + "end", done: true });
    const stored = await runInDurableObject(hubOf(ch), (_r, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM log").one().n);
    expect(stored).toBeLessThanOrEqual(1000 + 256 + 1);
  });

  it("writes at most 2 rows per append: its log entry and the message's running text", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "a", "m");
    await appendOk(ch, "m", "b");
    const written = await runInDurableObject(hubOf(ch), async (room, state) => {
      const count = (table: string) => state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`).one().n;
      const before = { log: count("log"), grown: count("grown") };
      await (room as unknown as { publish: (i: unknown, o: unknown) => Promise<unknown> }).publish({ event: "", data: '"c"', id: "c", append: { to: "m", done: false } }, { sender: null, exclude: null, by: "origin", scope: "" });
      return { log: count("log") - before.log, grown: count("grown") - before.grown, text: state.storage.sql.exec<{ text: string }>("SELECT text FROM grown").one().text };
    });
    // One new log row; the running text's row is updated in place, not added.
    expect(written).toEqual({ log: 1, grown: 0, text: "abc" });
  });
});

describe("appends on SSE after a rewind", () => {
  it("gives a rewound grown message no id of its own: the opening's last frame carries the head's, so a resume adds nothing twice", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "a", "m");
    await appendOk(ch, "m", "b");
    await publishOk(ch, "note", "plain", "n");
    await appendOk(ch, "m", "c");
    const sse = await SseReader.open(`/v1/channels/${ch}/sse?rewind=5`);
    await sse.expect("welcome");
    const first = await sse.expect("msg");
    const second = await sse.expect("msg");
    expect([first.frame.d, first.id, second.frame.d]).toEqual(["abc", undefined, "plain"]);
    const epoch = (await (await call(`/v1/channels/${ch}`)).json<{ epoch: string }>()).epoch;
    // The last frame of the opening names the head (seq 4), not its own seq (3).
    expect(second.id).toBe(`${epoch}:4`);
    await sse.cancel();
    await appendOk(ch, "m", "d");
    const again = await SseReader.open(`/v1/channels/${ch}/sse`, { "last-event-id": second.id! });
    await again.expect("welcome");
    expect((await again.expect("append")).frame).toMatchObject({ seq: 5, d: "d" });
    await again.cancel();
  });
});
