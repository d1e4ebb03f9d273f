// A Durable Stream is a channel (DESIGN v1.3 "Durable Streams endpoint"): its appends are the
// channel's messages, so hibercast subscribers get them live and resume exactly, and a hibercast
// publish appends to the stream. The protocol itself is the official suite's (test/streams/).
import { describe, expect, it } from "vitest";
import { call, channelName, expiresSoon, PUBLISH_KEY, publish, seqsOf, TestSocket, token } from "./helpers";

const KEY = { authorization: `Bearer ${PUBLISH_KEY}` };
const stream = (name: string, init: RequestInit = {}) => call(`/v1/stream/${name}`, { ...init, headers: { ...KEY, ...(init.headers as Record<string, string>) } });
const json = { "content-type": "application/json" };

describe("a Durable Stream is a channel", () => {
  it("its appends reach the channel's socket subscribers live, one message per JSON item (event stream), and a resume replays them exactly", async () => {
    const ch = channelName("ds");
    expect((await stream(ch, { method: "PUT", headers: json })).status).toBe(201);
    const [s] = await TestSocket.subscribe(ch);
    expect((await stream(ch, { method: "POST", headers: json, body: JSON.stringify([{ n: 1 }, { n: 2 }]) })).status).toBe(204);
    const live = await s.take("msg", 2);
    expect(live.map((m) => [m.e, m.d])).toEqual([["stream", { n: 1 }], ["stream", { n: 2 }]]);
    s.close();
    await stream(ch, { method: "POST", headers: json, body: JSON.stringify({ n: 3 }) });
    const [again] = await TestSocket.subscribe(ch, `?since=${live[1]!.seq}`);
    expect((await again.take("msg", 1)).map((m) => m.d)).toEqual([{ n: 3 }]);
    again.close();
  });

  it("closing the stream tells its channel's subscribers once: a closed frame after the last message", async () => {
    const ch = channelName("ds-close");
    await stream(ch, { method: "PUT", headers: json });
    const [s] = await TestSocket.subscribe(ch);
    expect((await stream(ch, { method: "POST", headers: { ...json, "stream-closed": "true" }, body: "[1]" })).status).toBe(204);
    const msg = (await s.take("msg", 1))[0]!;
    expect(await s.next()).toEqual({ t: "closed", seq: msg.seq });
    expect(await s.settle(100)).toEqual([]);
    s.close();
  });

  it("a hibercast publish to a JSON stream appends to it; a stream reader gets it", async () => {
    const ch = channelName("ds-pub");
    await stream(ch, { method: "PUT", headers: json, body: JSON.stringify([{ from: "stream" }]) });
    expect((await publish(ch, { event: "note", data: { from: "hibercast" } })).status).toBe(200);
    const read = await stream(ch);
    expect(await read.json()).toEqual([{ from: "stream" }, { from: "hibercast" }]);
    const stats = await (await call(`/v1/channels/${ch}`)).json<{ stream: unknown; seq: number }>();
    expect(stats).toMatchObject({ stream: { contentType: "application/json", closed: false }, seq: 2 });
  });

  it("refuses publishes a stream cannot take: to a closed stream (409 conflict), non-strings to a text stream and anything to a binary one (415)", async () => {
    const closed = channelName("ds-closed");
    await stream(closed, { method: "PUT", headers: { ...json, "stream-closed": "true" } });
    const refused = await publish(closed, { event: "e", data: 1 });
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({ error: { code: "conflict" } });
    expect(await (await call(`/v1/channels/${closed}`)).json()).toMatchObject({ stream: { closed: true } });

    const text = channelName("ds-text");
    await stream(text, { method: "PUT", headers: { "content-type": "text/plain" } });
    expect((await publish(text, { event: "e", data: 1 })).status).toBe(415);
    expect((await publish(text, { event: "e", data: "line" })).status).toBe(200);
    expect(await (await stream(text)).text()).toBe("line");

    const bytes = channelName("ds-bin");
    await stream(bytes, { method: "PUT", headers: { "content-type": "application/octet-stream" } });
    expect((await publish(bytes, { event: "e", data: "x" })).status).toBe(415);
  });

  it("a channel with messages cannot become a stream (409); DELETE removes the stream and its messages", async () => {
    const ch = channelName("ds-taken");
    await publish(ch, { event: "e", data: 1 });
    expect((await stream(ch, { method: "PUT", headers: json })).status).toBe(409);

    const gone = channelName("ds-gone");
    await stream(gone, { method: "PUT", headers: json, body: "[1,2]" });
    expect((await stream(gone, { method: "DELETE" })).status).toBe(204);
    expect((await stream(gone, { method: "HEAD" })).status).toBe(404);
    const history = await (await call(`/v1/channels/${gone}/messages`)).json<{ messages: unknown[] }>();
    expect(history.messages).toEqual([]);
  });

  it("writes need the publish key or a pub grant; reads follow the channel's subscribe rules", async () => {
    const pub = channelName("ds-auth");
    expect((await call(`/v1/stream/${pub}`, { method: "PUT", headers: json })).status).toBe(401);
    const granted = await token({ sub: "writer", ch: [pub], pub: [pub] });
    expect((await call(`/v1/stream/${pub}`, { method: "PUT", headers: { ...json, authorization: `Bearer ${granted}` } })).status).toBe(201);
    expect((await call(`/v1/stream/${pub}`)).status).toBe(200); // a public channel: anyone reads

    const priv = `private-${channelName("ds")}`;
    await stream(priv, { method: "PUT", headers: json, body: "[1]" });
    expect((await call(`/v1/stream/${priv}`)).status).toBe(401);
    const reader = await token({ sub: "reader", ch: [priv] });
    const read = await call(`/v1/stream/${priv}`, { headers: { authorization: `Bearer ${reader}` } });
    expect(await read.json()).toEqual([1]);
    expect((await call(`/v1/stream/${priv}`, { method: "POST", headers: { ...json, authorization: `Bearer ${reader}` }, body: "[2]" })).status).toBe(403);
  });

  it("appends keep the log whole past logMaxMessages (a stream is not trimmed)", async () => {
    const ch = channelName("ds-keep");
    await stream(ch, { method: "PUT", headers: json });
    const items = Array.from({ length: 1200 }, (_, i) => i);
    for (let i = 0; i < items.length; i += 400) await stream(ch, { method: "POST", headers: json, body: JSON.stringify(items.slice(i, i + 400)) });
    expect(await (await stream(ch)).json()).toEqual(items);
    const [s] = await TestSocket.subscribe(ch, "?since=0");
    expect(seqsOf(await s.take("msg", 256))).toEqual(Array.from({ length: 256 }, (_, i) => i + 1));
    s.close();
  });

  it("a fork reads its source, so making one needs a read grant on the source", async () => {
    const source = `private-${channelName("ds-src")}`;
    await stream(source, { method: "PUT", headers: json, body: '[{"salary":1}]' });
    const writer = await token({ sub: "mallory", ch: [], pub: ["ds-fork-*"] });
    const fork = channelName("ds-fork");
    const forged = await call(`/v1/stream/${fork}`, { method: "PUT", headers: { ...json, authorization: `Bearer ${writer}`, "stream-forked-from": `/v1/stream/${source}` } });
    expect(forged.status).toBe(403);
    expect((await call(`/v1/stream/${fork}`)).status).toBe(404); // nothing was made
    const reader = await token({ sub: "alice", ch: [source], pub: ["ds-fork-*"] });
    const made = await call(`/v1/stream/${fork}`, { method: "PUT", headers: { ...json, authorization: `Bearer ${reader}`, "stream-forked-from": `/v1/stream/${source}` } });
    expect(made.status).toBe(201);
  });

  it("producers and Stream-Seq are per publisher: a client cannot fence out or pre-empt the origin's writer", async () => {
    const ch = channelName("ds-prod");
    await stream(ch, { method: "PUT", headers: json });
    const producer = (seq: number) => ({ "producer-id": "p", "producer-epoch": "0", "producer-seq": String(seq) });
    expect((await stream(ch, { method: "POST", headers: { ...json, ...producer(0) }, body: '["origin-0"]' })).status).toBe(200);
    const client = await token({ sub: "mallory", ch: [ch], pub: [ch] });
    const asClient = (headers: Record<string, string>, body: string) => call(`/v1/stream/${ch}`, { method: "POST", headers: { ...json, authorization: `Bearer ${client}`, ...headers }, body });
    expect((await asClient({ "producer-id": "p", "producer-epoch": "1", "producer-seq": "0" }, '["junk"]')).status).toBe(200); // its own producer "p"
    expect((await asClient({ "stream-seq": "zzzz" }, '["junk-2"]')).status).toBe(204);
    expect((await stream(ch, { method: "POST", headers: { ...json, ...producer(1) }, body: '["origin-1"]' })).status).toBe(200); // not fenced (403), not a duplicate (204)
    expect((await stream(ch, { method: "POST", headers: { ...json, "stream-seq": "a" }, body: '["origin-2"]' })).status).toBe(204); // the client's Stream-Seq is its own
    expect(await (await stream(ch)).json()).toEqual(["origin-0", "junk", "junk-2", "origin-1", "origin-2"]);
  });

  it("appends with a token are rate limited per token (clientPubPerS), and writes take no credential from the URL", async () => {
    const ch = channelName("ds-rate");
    await stream(ch, { method: "PUT", headers: json });
    const client = await token({ sub: "fast", ch: [ch], pub: [ch] });
    const append = (i: number) => call(`/v1/stream/${ch}`, { method: "POST", headers: { ...json, authorization: `Bearer ${client}` }, body: `[${i}]` });
    const statuses = (await Promise.all(Array.from({ length: 30 }, (_, i) => append(i)))).map((r) => r.status);
    // clientPubPerS is 10: however the 30 fall across a second boundary, at most 20 are taken.
    expect(statuses.filter((s) => s === 204).length).toBeLessThanOrEqual(20);
    expect(statuses).toContain(429);
    expect(statuses.every((s) => s === 204 || s === 429)).toBe(true);
    expect((await call(`/v1/stream/${ch}?token=${PUBLISH_KEY}`, { method: "POST", headers: json, body: "[1]" })).status).toBe(401);
  });

  it("refuses a JSON append of more than 10,000 items and never answers deep JSON with a 500", async () => {
    const ch = channelName("ds-big");
    await stream(ch, { method: "PUT", headers: json });
    expect((await stream(ch, { method: "POST", headers: json, body: JSON.stringify(Array(10_001).fill(0)) })).status).toBe(400);
    // As deep as a 1 MiB body can nest: stored if the runtime can parse and write it back, else 400; never a 500.
    const deep = await stream(ch, { method: "POST", headers: json, body: "[".repeat(500_000) + "]".repeat(500_000) });
    expect([204, 400]).toContain(deep.status);
    expect((await stream(ch, { method: "HEAD" })).status).toBe(200);
  });

  it("a stream has at most 100 forks", async () => {
    const source = channelName("ds-many");
    await stream(source, { method: "PUT", headers: json, body: "[1]" });
    const fork = (i: number) => stream(`${source}-f${i}`, { method: "PUT", headers: { ...json, "stream-forked-from": `/v1/stream/${source}` } });
    for (let i = 0; i < 100; i += 20) expect((await Promise.all(Array.from({ length: 20 }, (_, k) => fork(i + k)))).map((r) => r.status)).toEqual(Array(20).fill(201));
    expect((await fork(100)).status).toBe(409);
  }, 30_000);

  it("a purge of the channel takes the stream with its messages; a deleted stream that forks still read takes no publishes", async () => {
    const ch = channelName("ds-purged");
    await stream(ch, { method: "PUT", headers: json, body: "[1,2]" });
    expect((await call(`/v1/channels/${ch}/messages`, { method: "DELETE", headers: KEY })).status).toBe(200);
    expect((await stream(ch, { method: "HEAD" })).status).toBe(404);
    expect((await stream(ch, { method: "PUT", headers: json })).status).toBe(201); // a stream again, from nothing

    const source = channelName("ds-kept");
    await stream(source, { method: "PUT", headers: json, body: "[1]" });
    await stream(`${source}-fork`, { method: "PUT", headers: { ...json, "stream-forked-from": `/v1/stream/${source}` } });
    expect((await stream(source, { method: "DELETE" })).status).toBe(204);
    expect((await stream(source, { method: "HEAD" })).status).toBe(410);
    const refused = await publish(source, { event: "e", data: 2 });
    expect(refused.status).toBe(409);
    expect(await (await stream(`${source}-fork`)).json()).toEqual([1]);
  });

  it("a live SSE reader of a private stream is ended when its token expires (grants die with their token)", async () => {
    const ch = `private-${channelName("ds-exp")}`;
    await stream(ch, { method: "PUT", headers: json, body: "[1]" });
    const exp = expiresSoon();
    const short = await token({ sub: "reader", ch: [ch] }, { expiresIn: exp });
    const res = await call(`/v1/stream/${ch}?offset=-1&live=sse&token=${short}`);
    expect(res.status).toBe(200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    expect(text).toContain("data:[1]");
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000 - 100); // it stayed live until the token's end, then stopped
  }, 15_000);
});
