// Channel options per namespace (DESIGN.md "Channel options"), one rule per option; the rules are
// in vitest.config.ts (project "options"). Channels no rule matches keep the global vars.
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, channelName, nextSecond, PUBLISH_KEY, publish, publishOk, seqsOf, SseReader, TestSocket, token, hubOf } from "../helpers";

const stats = async (ch: string) => (await call(`/v1/channels/${ch}`, { headers: { authorization: `Bearer ${PUBLISH_KEY}` } })).json<{ options: Record<string, unknown>; log: { count: number } }>();
const history = async (ch: string) => (await (await call(`/v1/channels/${ch}/messages?limit=100`, { headers: { authorization: `Bearer ${PUBLISH_KEY}` } })).json<{ messages: { seq: number }[] }>()).messages;

describe("channel options", () => {
  it("apply the first matching rule over the global vars, and stats say which", async () => {
    const chat = await stats(channelName("chat"));
    expect(chat.options).toMatchObject({ rule: "chat-*", logMaxMessages: 5, clientPubPerS: 2, logMaxAgeS: 3600, clientPublish: true, latest: false, shards: 1, webhooks: true });
    const plain = await stats(channelName("other"));
    expect(plain.options).toMatchObject({ rule: null, logMaxMessages: 1000, clientPubPerS: 10 });
    expect((await stats("exact-room")).options).toMatchObject({ rule: "exact-room", logMaxMessages: 3 });
    expect((await stats("exact-room-2")).options).toMatchObject({ rule: null });
    expect(JSON.stringify(plain)).not.toMatch(/secret|test-publish-key/);
  });

  it("logMaxMessages: the log keeps that many for the namespace", async () => {
    const ch = channelName("chat");
    for (let i = 1; i <= 8; i++) await publishOk(ch, "m", i);
    expect(seqsOf(await history(ch))).toEqual([4, 5, 6, 7, 8]);
    const other = channelName("other");
    for (let i = 1; i <= 8; i++) await publishOk(other, "m", i);
    expect(seqsOf(await history(other))).toHaveLength(8);
  });

  it("logMaxAgeS: messages older than that are no longer served", async () => {
    const ch = channelName("brief");
    await publishOk(ch, "m", 1);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await history(ch)).toEqual([]);
    const [s] = await TestSocket.subscribe(ch, "?since=0");
    expect(await s.next()).toMatchObject({ t: "reset" });
  });

  it("dedupeWindowS: 0 forgets an id once its message left the log", async () => {
    const ch = channelName("once");
    await publishOk(ch, "m", 1, "same-id");
    expect(await publishOk(ch, "m", 1, "same-id")).toMatchObject({ duplicate: true });
    for (let i = 2; i <= 6; i++) await publishOk(ch, "m", i);
    await runDurableObjectAlarm(hubOf(ch));
    expect(await publishOk(ch, "m", 1, "same-id")).toMatchObject({ duplicate: false, seq: 7 });
  });

  it("requireAuth: subscribing to the namespace needs a token", async () => {
    const ch = channelName("team");
    const refused = await TestSocket.open(`/v1/channels/${ch}/ws`);
    expect((await refused.closed).code).toBe(4401);
    await TestSocket.subscribe(ch, `?token=${await token({ sub: "u", ch: ["team-*"] })}`);
    await TestSocket.subscribe(channelName("other")); // public elsewhere
  });

  it("clientPublish: false refuses every pub grant, over the socket and HTTP; the publish key still works", async () => {
    const ch = channelName("feed");
    const t = await token({ sub: "u", ch: ["*"], pub: ["*"] });
    const [s] = await TestSocket.subscribe(ch, `?token=${t}`);
    s.send({ t: "pub", e: "x", d: 1, id: "p1" });
    expect(await s.next()).toMatchObject({ t: "err", code: "forbidden", id: "p1" });
    const http = await publish(ch, { event: "x", data: 1 }, { key: t });
    expect(http.status).toBe(403);
    expect(await http.json()).toMatchObject({ error: { message: expect.stringMatching(/clientPublish: false/) } });
    expect((await publishOk(ch, "x", 2)).seq).toBe(1);
    // The same token publishes where no rule forbids it.
    expect((await publish(channelName("other"), { event: "x", data: 1 }, { key: t })).status).toBe(200);
  });

  it("clientPubPerS: the namespace's own rate limit", async () => {
    const ch = channelName("chat");
    const [s] = await TestSocket.subscribe(ch, `?token=${await token({ sub: "u", ch: [ch], pub: [ch] })}`);
    await nextSecond(); // the three fall in one second
    for (let i = 0; i < 3; i++) s.send({ t: "pub", e: "x", d: i, id: `r${i}` });
    const byId = Object.fromEntries((await s.answers(3)).map((f) => [(f as { id: string }).id, f.t]));
    expect(byId).toEqual({ r0: "ack", r1: "ack", r2: "err" });
  });

  it("presenceMaxMembers: beyond it, counts only", async () => {
    const ch = channelName("presence-small");
    const join = async (sub: string) => {
      const [s] = await TestSocket.subscribe(ch, `?token=${await token({ sub, ch: [ch] })}`);
      return { s, members: await s.expect("members") };
    };
    await join("a");
    const b = await join("b");
    expect(b.members.members).toHaveLength(1);
    expect(b.members.count).toBe(2);
  });

  it("maxSockets: the namespace's own cap", async () => {
    const ch = channelName("tiny");
    await TestSocket.subscribe(ch);
    const over = await TestSocket.open(`/v1/channels/${ch}/ws`);
    expect((await over.closed).code).toBe(4503);
  });

  it("latest: a new subscriber first gets the last message; a resume does not, and nothing comes twice", async () => {
    const ch = channelName("price");
    const [empty] = await TestSocket.subscribe(ch);
    expect(await empty.settle()).toEqual([]); // nothing to give yet
    for (let i = 1; i <= 3; i++) await publishOk(ch, "tick", i);
    const [fresh] = await TestSocket.subscribe(ch);
    expect(await fresh.next()).toMatchObject({ t: "msg", seq: 3, d: 3 });
    expect(await fresh.settle()).toEqual([]);
    const [rewound] = await TestSocket.subscribe(ch, "?rewind=5");
    expect(seqsOf(await rewound.take("msg", 1))).toEqual([3]); // the log keeps 1 here
    expect(await rewound.settle()).toEqual([]);
    const [resumed] = await TestSocket.subscribe(ch, "?since=3");
    expect(await resumed.settle()).toEqual([]);
    const sse = await SseReader.open(`/v1/channels/${ch}/sse`);
    await sse.expect("welcome");
    expect((await sse.expect("msg")).frame).toMatchObject({ seq: 3 });
    await sse.cancel();
  });

  it("shards and webhooks are accepted and shown (used by edges and webhooks)", async () => {
    expect((await stats(channelName("wide"))).options).toMatchObject({ shards: 4 });
    expect((await stats(channelName("quiet"))).options).toMatchObject({ webhooks: false });
  });
});
