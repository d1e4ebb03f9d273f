// Many channels over one socket with the SDK's connect(): exactness per channel through TCP
// cuts, with every channel resumed from its own cursor after each reconnect; an unsubscribed
// channel stops at once and never comes back by itself; a new token reaches every channel.
import WebSocket from "ws";
import { afterAll, expect, it } from "vitest";
import { connect, type MultiplexedConnection } from "../../src/client/index";
import { baseUrl, channelName, publisher, sleep, TcpProxy, token, until } from "./helpers";

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

it("60 connections × 3 channels, random TCP cuts: every channel sees every seq once, in order", { timeout: 120_000 }, async () => {
  const proxy = await TcpProxy.start(baseUrl());
  cleanup.push(() => proxy.close());
  const channels = [channelName("mux-a"), channelName("mux-b"), channelName("mux-c")];
  const N = 60;
  const M = 100; // per channel
  const seen: number[][] = [];
  const conns: MultiplexedConnection[] = [];
  let reconnects = 0;
  for (let i = 0; i < N; i++) {
    const conn = connect({ url: proxy.url, WebSocket: WebSocket as never, backoff: { initialMs: 20, maxMs: 500 }, connectTimeoutMs: 2000 });
    conn.events.on("reconnecting", () => reconnects++);
    for (const ch of channels) {
      const mine: number[] = [];
      seen.push(mine);
      conn.subscribe(ch, { since: { seq: 0, epoch: null } }).on("*", (_d, m) => mine.push(m.seq));
    }
    conns.push(conn);
  }
  cleanup.push(() => conns.forEach((c) => c.close()));
  await until(() => conns.every((c) => c.state === "open"), 20_000, "all connections to open");

  const pub = publisher();
  let cut = 0;
  const cutting = (async () => {
    while (seen.some((s) => s.length < M)) {
      await sleep(150);
      cut += proxy.cut(0.03);
    }
  })();
  for (let i = 1; i <= M; i++) {
    await Promise.all(channels.map((ch) => pub.publish(ch, "tick", i, { id: `${ch}-${i}` })));
    if (i % 10 === 0) await sleep(20);
  }
  await until(() => seen.every((s) => s.length >= M), 60_000, "every channel to catch up");
  await cutting;
  console.log(`multiplexed chaos: ${N} connections × 3 channels, ${M} publishes each, ${cut} connections cut, ${reconnects} reconnects`);
  expect(cut).toBeGreaterThan(N / 4);
  for (const s of seen) expect(s).toEqual(range(1, M));
});

it("stops an unsubscribed channel at once; it does not come back after a reconnect", { timeout: 30_000 }, async () => {
  const [keep, drop] = [channelName("mux-keep"), channelName("mux-drop")];
  const conn = connect({ url: baseUrl(), WebSocket: WebSocket as never, backoff: { initialMs: 20, maxMs: 100 } });
  cleanup.push(() => conn.close());
  const got: string[] = [];
  const kept = conn.subscribe(keep);
  const dropped = conn.subscribe(drop);
  kept.on("*", (_d, m) => got.push(`${keep}:${m.seq}`));
  dropped.on("*", (_d, m) => got.push(`${drop}:${m.seq}`));
  let closed = false;
  dropped.connection.on("close", () => (closed = true));
  await until(() => kept.cid !== null && dropped.cid !== null, 5000, "both subscribed");
  const pub = publisher();
  await pub.publish(drop, "m", 1);
  await until(() => got.includes(`${drop}:1`));
  dropped.close();
  expect(closed).toBe(true);
  await pub.publish(drop, "m", 2);
  await pub.publish(keep, "m", 1);
  await until(() => got.includes(`${keep}:1`));
  conn.reconnect();
  await sleep(300);
  await pub.publish(drop, "m", 3);
  await pub.publish(keep, "m", 2);
  await until(() => got.includes(`${keep}:2`));
  await sleep(100);
  expect(got).toEqual([`${drop}:1`, `${keep}:1`, `${keep}:2`]);
  const stats = (await (await fetch(`${baseUrl()}/v1/channels/${drop}`)).json()) as { subscribers: number };
  expect(stats.subscribers).toBe(0);
});

it("takes a new token with setToken: every channel resumes under it, and channels it grants can subscribe", { timeout: 30_000 }, async () => {
  const [a, b] = [channelName("private-mux-a"), channelName("private-mux-b")];
  const conn = connect({ url: baseUrl(), WebSocket: WebSocket as never, token: await token({ sub: "u", ch: [a] }), backoff: { initialMs: 20, maxMs: 100 } });
  cleanup.push(() => conn.close());
  const seqs: number[] = [];
  const first = conn.subscribe(a);
  first.on("*", (_d, m) => seqs.push(m.seq));
  await first.ready();
  const pub = publisher();
  await pub.publish(a, "m", 1);
  await until(() => seqs.length === 1);
  const lifecycle: string[] = [];
  for (const e of ["reconnecting", "welcome", "error"] as const) conn.events.on(e, () => lifecycle.push(e));

  conn.setToken(await token({ sub: "u", ch: [a, b] }));
  await pub.publish(a, "m", 2); // while it reconnects: replayed from the cursor
  await until(() => lifecycle.includes("welcome"));
  const second = conn.subscribe(b); // granted by the new token only
  await second.ready();
  await pub.publish(a, "m", 3);
  await until(() => seqs.length === 3);
  await sleep(100);
  expect(seqs).toEqual([1, 2, 3]);
  expect(lifecycle).toEqual(["reconnecting", "welcome"]);
});

it("refreshes the connection's token before it expires by reconnecting (/v1/ws takes no auth frame)", { timeout: 30_000 }, async () => {
  const ch = channelName("private-mux-refresh");
  const exp = Math.floor(Date.now() / 1000) + 4; // two seconds before the refresh at least, however slow the connect
  const conn = connect({
    url: baseUrl(),
    WebSocket: WebSocket as never,
    token: await token({ sub: "u", ch: [ch] }, exp),
    refreshTokenBeforeMs: 2000,
    getToken: () => token({ sub: "u", ch: [ch] }),
    backoff: { initialMs: 20, maxMs: 100 },
  });
  cleanup.push(() => conn.close());
  const errors: string[] = [];
  conn.events.on("error", (e) => errors.push(e.message));
  const sub = conn.subscribe(ch);
  const seqs: number[] = [];
  sub.on("*", (_d, m) => seqs.push(m.seq));
  await sub.ready();
  await sleep(exp * 1000 - Date.now() + 500); // past the first token's expiry
  await publisher().publish(ch, "e", 1);
  await until(() => seqs.length === 1);
  expect(errors).toEqual([]);
  expect(sub.subscriptionState).toBe("subscribed");
});
