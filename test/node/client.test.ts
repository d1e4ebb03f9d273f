import { afterEach, describe, expect, it } from "vitest";
import { WebSocket as WsPackage } from "ws";
import { HibercastError, subscribe, type Subscription, type WebSocketConstructor } from "../../src/client/index";
import { baseUrl, channelName, publisher, sleep, TcpProxy, token, until } from "./helpers";

const fast = { backoff: { initialMs: 20, maxMs: 200 } };
const open: Subscription<never>[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

/** Subscribes and records what the app sees. */
function watch<E extends Record<string, unknown> = Record<string, unknown>>(options: Parameters<typeof subscribe>[0]) {
  const sub = subscribe<E>({ ...fast, ...options });
  open.push(sub as unknown as Subscription<never>);
  const seqs: number[] = [];
  const lifecycle: string[] = [];
  sub.on("*", (_d, m) => seqs.push(m.seq));
  for (const e of ["open", "welcome", "reset", "reconnecting", "close", "error"] as const) sub.connection.on(e, () => lifecycle.push(e));
  const welcomed = new Promise((resolve) => sub.connection.on("welcome", resolve));
  const closed = new Promise<{ code: number; error?: HibercastError }>((resolve) => sub.connection.on("close", resolve));
  return { sub, seqs, lifecycle, welcomed, closed };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("client SDK", () => {
  it("delivers typed events and '*', apart from lifecycle events (an event named 'close' is a message)", async () => {
    const ch = channelName();
    type Events = { goal: { home: number }; close: string };
    const w = watch<Events>({ url: baseUrl(), channel: ch });
    await w.welcomed;
    const goals: number[] = [];
    const closes: string[] = [];
    w.sub.on("goal", (d) => goals.push(d.home));
    w.sub.on("close", (d) => closes.push(d));
    await publisher().publish(ch, "goal", { home: 2 });
    await publisher().publish(ch, "close", "the market closed");
    await until(() => w.seqs.length === 2);
    expect(goals).toEqual([2]);
    expect(closes).toEqual(["the market closed"]);
    expect(w.lifecycle).toEqual(["open", "welcome"]);
    expect(w.sub.state).toBe("open");
  });

  it("works with the ws package as the WebSocket implementation (Node 20)", async () => {
    const ch = channelName();
    const w = watch({ url: baseUrl(), channel: ch, WebSocket: WsPackage as unknown as WebSocketConstructor });
    await w.welcomed;
    await publisher().publish(ch, "e", 1);
    await until(() => w.seqs.length === 1);
  });

  it("sees every seq once, in order, while TCP connections are cut mid-stream", async () => {
    const ch = channelName("chaos");
    const proxy = await TcpProxy.start(baseUrl());
    try {
      // A handshake cut mid-way may never report a close: the connect timeout recovers it.
      const subs = Array.from({ length: 5 }, () => watch({ url: proxy.url, channel: ch, since: { seq: 0, epoch: null }, connectTimeoutMs: 1000 }));
      await Promise.all(subs.map((s) => s.welcomed));
      const pub = publisher();
      const total = 300;
      const publishing = (async () => {
        for (let i = 1; i <= total; i++) {
          await pub.publish(ch, "tick", i, { id: `tick-${i}` });
          if (i % 10 === 0) await sleep(5);
        }
      })();
      const cutting = (async () => {
        while (subs.some((s) => s.seqs.length < total)) {
          await sleep(80 + Math.random() * 80);
          proxy.cut();
        }
      })();
      await publishing;
      await until(() => subs.every((s) => s.seqs.length >= total), 20_000, "every subscriber to catch up");
      await cutting;
      expect(proxy.cuts).toBeGreaterThan(3);
      for (const s of subs) {
        expect(s.seqs).toEqual(range(1, total));
        expect(s.lifecycle.filter((e) => e === "reconnecting").length).toBeGreaterThan(0);
        expect(s.lifecycle).not.toContain("reset");
      }
    } finally {
      await proxy.close();
    }
  });

  it("detects a dead connection by ping/pong and reconnects with resume", async () => {
    const ch = channelName();
    const proxy = await TcpProxy.start(baseUrl());
    try {
      const w = watch({ url: proxy.url, channel: ch, pingIntervalMs: 100, pongTimeoutMs: 200, connectTimeoutMs: 500 });
      await w.welcomed;
      await publisher().publish(ch, "e", 1);
      await until(() => w.seqs.length === 1);
      proxy.freeze(true); // the link goes silent: no RST, no FIN
      await publisher().publish(ch, "e", 2);
      await until(() => w.lifecycle.includes("reconnecting"), 3000, "the client to notice");
      proxy.freeze(false);
      await until(() => w.seqs.length === 2, 5000, "the resume");
      expect(w.seqs).toEqual([1, 2]);
    } finally {
      await proxy.close();
    }
  });

  it("surfaces reset when the log cannot cover the outage", async () => {
    const ch = channelName();
    await publisher().publish(ch, "e", 1);
    const w = watch({ url: baseUrl(), channel: ch, since: { seq: 0, epoch: "ffffffffffff" } });
    const reset = new Promise((resolve) => w.sub.connection.on("reset", resolve));
    expect(await reset).toMatchObject({ t: "reset", seq: 1 });
    expect(w.sub.cursor).toMatchObject({ seq: 1 });
    await publisher().publish(ch, "e", 2);
    await until(() => w.seqs.length === 1);
    expect(w.seqs).toEqual([2]);
  });

  it("replays the last N with rewind", async () => {
    const ch = channelName();
    for (let i = 1; i <= 5; i++) await publisher().publish(ch, "e", i);
    const w = watch({ url: baseUrl(), channel: ch, rewind: 2 });
    await until(() => w.seqs.length === 2);
    expect(w.seqs).toEqual([4, 5]);
  });

  it("publishes over the socket: resolves with the ack, rejects with the err", async () => {
    const ch = channelName();
    const writer = watch({ url: baseUrl(), channel: ch, token: await token({ sub: "w", pub: [ch] }) });
    const reader = watch({ url: baseUrl(), channel: ch });
    await Promise.all([writer.welcomed, reader.welcomed]);
    expect(await writer.sub.publish("chat", "hi", { id: "c1" })).toEqual({ seq: 1, id: "c1", duplicate: false });
    expect(await writer.sub.publish("chat", "hi", { id: "c1" })).toEqual({ seq: 1, id: "c1", duplicate: true });
    await until(() => reader.seqs.length === 1);
    const err = await reader.sub.publish("chat", "not allowed").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HibercastError);
    expect(err).toMatchObject({ code: "forbidden" });
  });

  it("keeps presence members and reports join/leave", async () => {
    const ch = channelName("presence-sdk");
    const a = watch({ url: baseUrl(), channel: ch, token: await token({ sub: "a", ch: [ch], info: { name: "A" } }) });
    await a.welcomed;
    const joined = new Promise((resolve) => a.sub.presence.on("join", resolve));
    const b = watch({ url: baseUrl(), channel: ch, token: await token({ sub: "b", ch: [ch] }) });
    expect(await joined).toEqual({ id: "b", info: null });
    await until(() => b.sub.members.size === 2);
    expect(b.sub.members.get("a")).toEqual({ id: "a", info: { name: "A" } });
    const left = new Promise((resolve) => a.sub.presence.on("leave", resolve));
    b.sub.close();
    expect(await left).toEqual({ id: "b", info: null });
    expect([...a.sub.members.keys()]).toEqual(["a"]);
  });
});

describe("client SDK: close codes and tokens", () => {
  it("stops on 4403 with a forbidden error and does not retry", async () => {
    const w = watch({ url: baseUrl(), channel: channelName("private-x"), token: await token({ sub: "u", ch: ["private-other"] }) });
    const closed = await w.closed;
    expect(closed.code).toBe(4403);
    expect(closed.error).toMatchObject({ code: "forbidden" });
    expect(w.lifecycle).not.toContain("reconnecting");
  });

  it("on 4401 fetches a fresh token once, reconnects and resumes", async () => {
    const ch = channelName("private-exp");
    const short = await token({ sub: "u", ch: [ch] }, Math.floor(Date.now() / 1000) + 1);
    let fetched = 0;
    const w = watch({
      url: baseUrl(),
      channel: ch,
      token: short,
      // Refresh only after expiry, so the server's 4401 comes first.
      refreshTokenBeforeMs: -60_000,
      getToken: async () => {
        fetched++;
        return token({ sub: "u", ch: [ch] });
      },
    });
    await w.welcomed;
    await publisher().publish(ch, "e", 1);
    await until(() => w.lifecycle.includes("reconnecting"), 5000, "the 4401");
    await publisher().publish(ch, "e", 2);
    await until(() => w.seqs.length === 2, 5000, "the resume");
    expect(w.seqs).toEqual([1, 2]);
    expect(fetched).toBe(1);
  });

  it("stops when the fresh token is refused too", async () => {
    const ch = channelName("private-bad");
    const w = watch({ url: baseUrl(), channel: ch, getToken: async () => token({ sub: "u", ch: [ch] }, "1h", "wrong-secret") });
    const closed = await w.closed;
    expect(closed).toMatchObject({ code: 4401, error: { code: "unauthorized" } });
  });

  it("refreshes a token before it expires with the auth frame, keeping the connection", async () => {
    const ch = channelName("private-refresh");
    const exp = Math.floor(Date.now() / 1000) + 4; // two seconds before the refresh at least, however slow the connect
    const w = watch({
      url: baseUrl(),
      channel: ch,
      token: await token({ sub: "u", ch: [ch] }, exp),
      refreshTokenBeforeMs: 2000,
      getToken: () => token({ sub: "u", ch: [ch] }),
    });
    await w.welcomed;
    await sleep(exp * 1000 - Date.now() + 500); // past the first token's expiry
    await publisher().publish(ch, "e", 1);
    await until(() => w.seqs.length === 1);
    expect(w.lifecycle).toEqual(["open", "welcome"]);
  });
});
