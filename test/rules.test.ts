// The rules of DESIGN v1.3 "One rule set for every surface" that a connection meets, each forced
// from outside: grants that die with their token on every connection kind, an unsub that
// overtakes its sub, internal names no channel can reach, presence SSE not swept as silent.
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { edgeName, poolEdgeName, shardChannel } from "../src/rpc";
import { isValidChannel } from "../src/protocol";
import { call, channelName, eventually, expiresSoon, hubOf, pastExp, publishOk, SseReader, storedOf, TestSocket, token } from "./helpers";

/** A socket that connected without a token, got a pub grant from an `auth` frame and published with it once; and that token's exp. */
async function grantedByAuth(ch: string): Promise<{ s: TestSocket; at: number }> {
  const [s] = await TestSocket.subscribe(ch);
  const at = expiresSoon();
  s.send({ t: "auth", token: await token({ ch: [ch], pub: [ch] }, { expiresIn: at }) });
  s.send({ t: "pub", e: "e", d: 1, id: "while-granted" });
  expect((await s.take("ack", 1))[0]).toMatchObject({ id: "while-granted" });
  return { s, at };
}

describe("a grant lives as long as its token", () => {
  it("an expired /v1/ws connection token subscribes to nothing (no replay of a private log)", async () => {
    const ch = channelName("private-exp");
    await publishOk(ch, "secret", 1);
    const at = expiresSoon();
    const s = await TestSocket.open(`/v1/ws?token=${await token({ sub: "u", ch: [ch] }, { expiresIn: at })}`);
    await s.expect("welcome");
    await pastExp(at);
    s.send({ t: "sub", ch, since: 0 });
    expect(await s.next()).toMatchObject({ t: "err", ch, code: "unauthorized" });
    expect((await s.settle(200)).filter((f) => f.t === "msg" || f.t === "subscribed")).toEqual([]);
    s.close();
  });

  it("a pub grant an auth frame gave a socket that connected without a token ends with that token", async () => {
    const ch = channelName("news");
    const { s, at } = await grantedByAuth(ch);
    await pastExp(at);
    await runDurableObjectAlarm(hubOf(ch));
    expect(await s.next()).toMatchObject({ t: "err", code: "unauthorized", close: 4401 });
    expect((await s.closed).code).toBe(4401);
  });
});

describe("a pub after its token expired is refused at once, before any sweep", () => {
  it("on a channel socket whose auth frame gave the grant (the closing alarm comes late)", async () => {
    const ch = channelName("news");
    const { s: room, at } = await grantedByAuth(ch);
    // Alarms may come late (the sweep's promise is "within a minute"): this one does not come.
    await runInDurableObject(hubOf(ch), (_room, state) => state.storage.deleteAlarm());
    await pastExp(at);
    room.send({ t: "pub", e: "e", d: 2, id: "late" });
    expect(await room.next()).toMatchObject({ t: "err", code: "unauthorized", id: "late" });
    expect((await (await call(`/v1/channels/${ch}/messages`)).json<{ messages: { d: unknown }[] }>()).messages.map((m) => m.d)).toEqual([1]);
    // A fresh token, and a pub right behind it: the pub is judged by the token sent before it.
    room.send({ t: "auth", token: await token({ ch: [ch], pub: [ch] }) });
    room.send({ t: "pub", e: "e", d: 3, id: "fresh" });
    expect((await room.answers(1))[0]).toMatchObject({ t: "ack", id: "fresh" });
    // A refused token leaves the grant as it was (the fresh one): the pub behind it goes on.
    room.send({ t: "auth", token: "not-a-token" });
    room.send({ t: "pub", e: "e", d: 4, id: "after-refused" });
    const answers = await room.answers(2);
    expect(answers.find((f) => f.t === "err")).toMatchObject({ code: "unauthorized" });
    expect(answers.find((f) => f.t === "ack")).toMatchObject({ id: "after-refused" });
    room.close();
  });
});

describe("an unsub that overtakes its sub wins", () => {
  it("on /v1/ws: sub then unsub back to back leaves no subscription and delivers nothing", async () => {
    const ch = channelName("race");
    const s = await TestSocket.open("/v1/ws");
    await s.expect("welcome");
    s.send({ t: "sub", ch });
    s.send({ t: "unsub", ch });
    expect(await s.next()).toMatchObject({ t: "unsubscribed", ch });
    await publishOk(ch, "late", 1);
    expect((await s.settle(300)).filter((f) => f.t !== "unsubscribed")).toEqual([]);
    const stats = await (await call(`/v1/channels/${ch}`)).json<{ subscribers: number; edges?: number }>();
    expect(stats).toMatchObject({ subscribers: 0 });
    expect(stats.edges ?? 0).toBe(0);
    s.close();
  });
});

describe("internal names", () => {
  it("no channel's shard edge can be a connection pool's edge", () => {
    // Pools are named from '#', which a channel name cannot hold; shards are channel#k.
    for (const pool of ["conn", "pusher"] as const) {
      const name = poolEdgeName(pool, 3);
      expect(shardChannel(name)).toBeNull();
      expect(isValidChannel(name.slice(0, name.lastIndexOf("#")) || name)).toBe(false);
      for (const ch of [pool, `${pool}:EU`, `${pool}/3`.replace("/", "-")]) if (isValidChannel(ch)) expect(edgeName(ch, 3)).not.toBe(name);
    }
    expect(shardChannel(edgeName("conn", 0))).toBe("conn");
  });
});

describe("presence SSE streams", () => {
  it("are not swept as silent: the relay keeps them alive", async () => {
    const ch = channelName("presence-sse");
    const sse = await SseReader.open(`/v1/channels/${ch}/sse?token=${await token({ sub: "s", ch: [ch] })}`);
    await sse.expect("welcome");
    await sse.expect("members");
    // As if the stream had been open for 5 minutes with no ping (SSE streams never ping).
    await runInDurableObject(hubOf(ch), (_room, state) => {
      for (const ws of state.getWebSockets()) ws.serializeAttachment({ ...(ws.deserializeAttachment() as object), at: Date.now() - 300_000 });
    });
    await runDurableObjectAlarm(hubOf(ch));
    await publishOk(ch, "still-here", 1);
    const next = await sse.frame(2000);
    expect(next.frame).toMatchObject({ t: "msg", e: "still-here" });
    await sse.cancel();
  });
});

describe("nothing outlives its owner", () => {
  it("a /v1/ws subscription to a channel nobody publishes to leaves no storage in its hub once it ends", async () => {
    const ch = channelName("drive-by");
    const s = await TestSocket.open("/v1/ws");
    await s.expect("welcome");
    s.send({ t: "sub", ch });
    await s.expect("subscribed");
    s.send({ t: "unsub", ch });
    await s.expect("unsubscribed");
    expect(await eventually(() => storedOf(ch), (stored) => stored.tables.length === 0, 10_000)).toEqual({ tables: [], keys: [] });
    // The channel still works, and a later subscriber is welcomed as usual.
    await publishOk(ch, "now", 1);
    s.send({ t: "sub", ch, rewind: 1 });
    await s.expect("subscribed");
    s.close();
  });
});
