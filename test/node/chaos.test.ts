// Reliability under faults: many subscribers through a proxy that cuts TCP connections at
// random while publishes keep coming. Bounded in count and time.
import { afterAll, expect, it } from "vitest";
import { subscribe, type Subscription } from "../../src/client/index";
import { createPublisher } from "../../src/client/publisher";
import { baseUrl, channelName, publisher, publishThroughCuts, TcpProxy, until } from "./helpers";
import { NODE_PUBLISH_KEY, startServer, type LocalServer } from "./server";

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

it("200 subscribers, 1000 publishes, random TCP cuts: every subscriber sees every seq once, in order", { timeout: 120_000 }, async () => {
  const ch = channelName("chaos");
  const proxy = await TcpProxy.start(baseUrl());
  cleanup.push(() => proxy.close());
  const N = 200;
  const M = 1000;
  const seen: number[][] = [];
  const reconnects: number[] = [];
  const subs: Subscription[] = [];
  for (let i = 0; i < N; i++) {
    // A handshake cut mid-way may never report a close: the connect timeout recovers it.
    const sub = subscribe({ url: proxy.url, channel: ch, since: { seq: 0, epoch: null }, backoff: { initialMs: 20, maxMs: 500 }, connectTimeoutMs: 2000 });
    const mine: number[] = (seen[i] = []);
    reconnects[i] = 0;
    sub.on("*", (_d, m) => mine.push(m.seq));
    sub.connection.on("reconnecting", () => reconnects[i]!++);
    subs.push(sub);
  }
  cleanup.push(() => subs.forEach((s) => s.close()));
  await until(() => subs.every((s) => s.state === "open"), 20_000, "all subscribers to connect");

  const cut = await publishThroughCuts(publisher(), ch, M, proxy, seen, 60_000);

  const totalReconnects = reconnects.reduce((a, b) => a + b, 0);
  console.log(`chaos: ${N} subscribers, ${M} publishes, ${cut} connections cut, ${totalReconnects} reconnects, ${N * M} deliveries checked`);
  expect(cut).toBeGreaterThan(N / 4);
  for (const s of seen) expect(s).toEqual(range(1, M));
});

it("an outage longer than the log produces reset, never a silent gap", { timeout: 60_000 }, async () => {
  const server: LocalServer = await startServer({ vars: { LOG_MAX_MESSAGES: "20" } });
  cleanup.push(() => server.stop());
  const proxy = await TcpProxy.start(server.url);
  cleanup.push(() => proxy.close());
  const pub = createPublisher({ url: server.url, key: NODE_PUBLISH_KEY });
  const ch = channelName("outage");
  const events: string[] = [];
  const seqs: number[] = [];
  const sub = subscribe({ url: proxy.url, channel: ch, since: { seq: 0, epoch: null }, backoff: { initialMs: 20, maxMs: 100 } });
  cleanup.push(() => sub.close());
  sub.on("*", (_d, m) => {
    seqs.push(m.seq);
    events.push(`msg ${m.seq}`);
  });
  sub.connection.on("reset", (r) => events.push(`reset ${r.seq}`));
  await until(() => sub.state === "open");
  for (let i = 1; i <= 10; i++) await pub.publish(ch, "m", i);
  await until(() => seqs.length === 10);

  proxy.block(true); // the outage: 100 messages go by, the log keeps 20
  for (let i = 11; i <= 110; i++) await pub.publish(ch, "m", i);
  proxy.block(false);
  await until(() => events.includes("reset 110"), 10_000, "the reset");
  for (let i = 111; i <= 115; i++) await pub.publish(ch, "m", i);
  await until(() => seqs.at(-1) === 115);

  expect(events).toEqual([...range(1, 10).map((s) => `msg ${s}`), "reset 110", ...range(111, 115).map((s) => `msg ${s}`)]);
  // No silent gap: every jump in seq has a reset right before it.
  for (let i = 1; i < events.length; i++) {
    const [kind, n] = events[i]!.split(" ");
    const [prevKind, prev] = events[i - 1]!.split(" ");
    if (kind === "msg" && prevKind === "msg") expect(Number(n)).toBe(Number(prev) + 1);
  }
});
