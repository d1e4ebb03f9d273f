// The shared connection under hibercast/react's hooks, without React: what a hook reads from a
// channel (its views), how long a channel stays subscribed, and what a new token does.
import { afterAll, expect, it } from "vitest";
import { WebSocket as WsPackage } from "ws";
import { SharedConnection } from "../../src/react/shared-connection";
import type { Watcher } from "../../src/react/channel-store";
import { baseUrl, channelName, publisher, sleep, token, until } from "./helpers";
import { NODE_PUBLISH_KEY } from "./server";

const cleanup: (() => void)[] = [];
afterAll(() => cleanup.forEach((fn) => fn()));

function shared(options: { token?: string } = {}) {
  const conn = new SharedConnection({ url: baseUrl(), WebSocket: WsPackage as never, backoff: { initialMs: 20, maxMs: 100 }, ...options });
  return conn;
}

/** A watcher as a hook is one: counts the changes it is told of. */
function watcher(keep: number, onMessage?: Watcher["onMessage"]): Watcher & { changes: number } {
  const w = { keep, changes: 0, onChange: () => w.changes++, ...(onMessage ? { onMessage } : {}) };
  return w;
}

const subscribers = async (ch: string) =>
  ((await (await fetch(`${baseUrl()}/v1/channels/${ch}`, { headers: { authorization: `Bearer ${NODE_PUBLISH_KEY}` } })).json()) as { subscribers: number }).subscribers;

it("keeps the latest `keep` messages with a growing one once, in its place, and each message by id", async () => {
  const ch = channelName("shared-list");
  const conn = shared();
  const list = watcher(3);
  const handed: string[] = [];
  const stop = conn.watch(ch, {}, list);
  const stopHandler = conn.watch(ch, {}, watcher(0, (m) => handed.push(`${m.seq}:${String(m.d)}`)));
  cleanup.push(stop, stopHandler);
  const store = conn.peek(ch)!;
  await store.subscription.ready();
  const pub = publisher();
  await pub.publish(ch, "m", "one");
  await pub.publish(ch, "answer", "Hel", { id: "a1" });
  await pub.publish(ch, "m", "three");
  await pub.append(ch, "a1", "lo");
  await pub.append(ch, "a1", "!", { done: true });
  await until(() => store.message("a1")?.done === true);
  expect(store.channel.messages.map((m) => m.d)).toEqual(["one", "Hello!", "three"]);
  expect(store.message("a1")).toMatchObject({ seq: 2, d: "Hello!", v: 5 });
  expect(handed).toEqual(["1:one", "2:Hel", "3:three", "2:Hello", "2:Hello!"]);
  // The status-only view does not change with messages: a hook that keeps no list is not re-rendered.
  const status = store.status;
  expect(status.messages).toEqual([]);
  await pub.publish(ch, "m", "four");
  await until(() => store.channel.messages[2]?.d === "four");
  expect(store.channel.messages.map((m) => m.d)).toEqual(["Hello!", "three", "four"]);
  expect(store.status).toBe(status);
  expect(list.changes).toBeGreaterThanOrEqual(6);
});

it("lets a channel go a turn after its last watcher leaves, unless one comes back first; the socket closes with the last channel", async () => {
  const ch = channelName("shared-go");
  const conn = shared();
  let stop = conn.watch(ch, {}, watcher(10));
  const first = conn.peek(ch)!;
  await first.subscription.ready();
  expect(conn.status.state).toBe("open");
  // Unmount and mount in one go (StrictMode, a moved component): the same subscription.
  stop();
  stop = conn.watch(ch, {}, watcher(10));
  await sleep(50);
  expect(conn.peek(ch)).toBe(first);
  expect(first.subscription.subscriptionState).toBe("subscribed");
  expect(await subscribers(ch)).toBe(1);
  stop();
  expect(conn.peek(ch)).toBe(first); // not yet
  await until(() => conn.peek(ch) === undefined, 1000, "the channel to be let go");
  expect(first.subscription.subscriptionState).toBe("unsubscribed");
  expect(conn.status.state).toBe("idle");
  await expect.poll(() => subscribers(ch)).toBe(0);
});

it("brings a channel refused without a token back under a new one, with the rewind it first asked for", async () => {
  const ch = channelName("private-shared");
  const conn = shared();
  const list = watcher(10);
  cleanup.push(conn.watch(ch, { rewind: 5 }, list));
  const store = conn.peek(ch)!;
  await until(() => store.channel.state === "unsubscribed", 5000, "the refusal");
  expect(store.channel.error?.code).toBe("unauthorized");
  await publisher().publish(ch, "m", 1);

  conn.setToken(await token({ sub: "u", ch: [ch] }));
  await until(() => store.channel.state === "subscribed", 5000, "subscribed under the new token");
  expect(store.channel.error).toBeNull();
  await until(() => store.channel.messages.length === 1); // its rewind: it never had a cursor
  await publisher().publish(ch, "m", 2);
  await until(() => store.channel.messages.length === 2);
  expect(store.channel.messages.map((m) => m.d)).toEqual([1, 2]);
});
