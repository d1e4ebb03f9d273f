// A sharded channel under faults: subscribers spread over 4 edges, random TCP cuts while
// publishes keep coming, and every resume lands on a random edge. Bounded in count and time.
import { afterAll, expect, it } from "vitest";
import { subscribe, type Subscription } from "../../src/client/index";
import { createPublisher } from "../../src/client/publisher";
import { channelName, publishThroughCuts, TcpProxy, until } from "./helpers";
import { NODE_PUBLISH_KEY, startServer } from "./server";

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

it("K=4, 300 subscribers, 500 publishes, random TCP cuts: every subscriber sees 1..500 once, in order, no reset", { timeout: 150_000 }, async () => {
  const server = await startServer({ vars: { CHANNEL_OPTIONS: JSON.stringify([{ match: "sharded-*", shards: 4 }]) } });
  cleanup.push(() => server.stop());
  const proxy = await TcpProxy.start(server.url);
  cleanup.push(() => proxy.close());
  const ch = channelName("sharded");
  const N = 300;
  const M = 500;
  const seen: number[][] = [];
  let resets = 0;
  let reconnects = 0;
  const subs: Subscription[] = [];
  for (let i = 0; i < N; i++) {
    const sub = subscribe({ url: proxy.url, channel: ch, since: { seq: 0, epoch: null }, backoff: { initialMs: 20, maxMs: 500 }, connectTimeoutMs: 3000 });
    const mine: number[] = (seen[i] = []);
    sub.on("*", (_d, m) => mine.push(m.seq));
    sub.connection.on("reset", () => resets++);
    sub.connection.on("reconnecting", () => reconnects++);
    subs.push(sub);
  }
  cleanup.push(() => subs.forEach((s) => s.close()));
  await until(() => subs.every((s) => s.state === "open"), 30_000, "all subscribers to connect");
  const stats = (await (await fetch(`${server.url}/v1/channels/${ch}`)).json()) as { subscribers: number; edges: number };
  expect(stats).toMatchObject({ subscribers: N, edges: 4 });

  const pub = createPublisher({ url: server.url, key: NODE_PUBLISH_KEY });
  const cut = await publishThroughCuts(pub, ch, M, proxy, seen, 90_000);

  console.log(`sharded chaos: K=4, ${N} subscribers, ${M} publishes, ${cut} connections cut, ${reconnects} reconnects, ${resets} resets`);
  expect(cut).toBeGreaterThan(N / 4);
  expect(resets).toBe(0);
  for (const s of seen) expect(s).toEqual(range(1, M));
});
