// Webhooks' outbox and state transitions (DESIGN.md "Webhooks"), inside workerd. This project's
// webhook receiver is down (it answers 503), so every event stays in the hub's outbox where the
// test reads it; delivery itself is tested from Node against a real receiver (test/node/webhooks.test.ts).
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { WebhookEvent } from "../../src/hub/webhooks";
import { call, channelName, publishOk, TestSocket, token, hubOf } from "../helpers";
import { loggedEvents } from "../logs";

const hub = hubOf;

/** The hub's outbox, oldest first: what will be delivered, in order. */
async function outbox(ch: string): Promise<WebhookEvent[]> {
  return runInDurableObject(hub(ch), (_room, state) => {
    const exists = state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'webhook_outbox'").toArray().length > 0;
    const rows = exists ? state.storage.sql.exec<{ event: string }>("SELECT event FROM webhook_outbox ORDER BY id").toArray() : [];
    // A row is the event's JSON with the time it was written in front (`{"at":<ms>,...`).
    return rows.map((r) => {
      const { at, ...event } = JSON.parse(r.event) as WebhookEvent & { at: number };
      expect(at).toBeTypeOf("number");
      return event as WebhookEvent;
    });
  });
}

async function eventually(ch: string, check: (events: WebhookEvent[]) => boolean, ms = 9000): Promise<WebhookEvent[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const events = await outbox(ch);
    if (check(events)) return events;
    if (Date.now() > deadline) throw new Error(`outbox never matched: ${JSON.stringify(events)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const names = (events: WebhookEvent[]) => events.map((e) => ("user_id" in e && e.name !== "client_event" ? `${e.name}:${e.user_id}` : e.name));
const member = async (ch: string, sub: string) => (await TestSocket.subscribe(ch, `?token=${await token({ sub, ch: [ch] })}`))[0];

describe("webhooks: the outbox", () => {
  it("writes channel_occupied with the first subscriber, client_event for a socket pub, nothing for an HTTP publish", async () => {
    const ch = channelName("hook");
    const [s] = await TestSocket.subscribe(ch, `?token=${await token({ sub: "ann", ch: [ch], pub: [ch] })}`);
    await TestSocket.subscribe(ch); // a second subscriber: still one occupied
    await publishOk(ch, "from-origin", { n: 1 });
    s.send({ t: "pub", e: "typing", d: { on: true } });
    expect(await eventually(ch, (events) => events.length >= 2, 5000)).toEqual([
      { name: "channel_occupied", channel: ch },
      { name: "client_event", channel: ch, event: "typing", data: '{"on":true}', user_id: "ann" },
    ]);
    // The receiver is down: the delivery is retried, nothing is dropped.
    await eventually(ch, () => loggedEvents("webhook").length > 0, 5000);
    expect(loggedEvents("webhook")[0]).toMatchObject({ event: "webhook", attempt: 1, status: 503 });
    expect(await outbox(ch)).toHaveLength(2);
  });

  it("posts channel_occupied at once for a first subscriber whose token lasts an hour (not at the token's expiry)", async () => {
    const ch = channelName("private-hook-exp");
    // Three wake-ups in one turn: the webhook's and the directory's (now), then the token's (in 1 h).
    await TestSocket.subscribe(ch, `?token=${await token({ sub: "ann", ch: [ch] }, { expiresIn: "1h" })}`);
    expect(names(await outbox(ch))).toEqual(["channel_occupied"]);
    const due = await runInDurableObject(hub(ch), (_room, state) => state.storage.getAlarm());
    // Due now, or (after the first attempt met the down receiver) at the first retry, ≤ 1 s on.
    expect(due).not.toBeNull();
    expect(due! - Date.now()).toBeLessThan(2500);
    await eventually(ch, () => loggedEvents("webhook").some((l) => l.channel === ch && l.status === 503), 10_000);
  });

  it("sends channel_vacated 5 s after the last subscriber leaves, and neither event when it refills sooner", async () => {
    const ch = channelName("hook-debounce");
    const [first] = await TestSocket.subscribe(ch);
    first.close();
    await new Promise((r) => setTimeout(r, 1000));
    const [second] = await TestSocket.subscribe(ch); // a page reload: back within 5 s
    await new Promise((r) => setTimeout(r, 5500));
    expect(names(await outbox(ch))).toEqual(["channel_occupied"]);
    second.close();
    const events = await eventually(ch, (e) => e.length === 2);
    expect(names(events)).toEqual(["channel_occupied", "channel_vacated"]);
  }, 20_000);

  it("announces presence per user: first socket member_added, last socket member_removed", async () => {
    const ch = channelName("presence-hook");
    const ann1 = await member(ch, "ann");
    const ann2 = await member(ch, "ann");
    const bob = await member(ch, "bob");
    ann1.close();
    await new Promise((r) => setTimeout(r, 300));
    expect(names(await outbox(ch))).toEqual(["channel_occupied", "member_added:ann", "member_added:bob"]);
    ann2.close();
    bob.close();
    const events = await eventually(ch, (e) => e.length === 5, 3000);
    expect(names(events)).toEqual(["channel_occupied", "member_added:ann", "member_added:bob", "member_removed:ann", "member_removed:bob"]);
  });

  it("counts every edge of a sharded channel: occupied once, vacated only when the last edge empties", async () => {
    const ch = channelName("shard-hook");
    const sockets: TestSocket[] = [];
    // Sockets land on edges at random: open until two edges hold some.
    while (sockets.length < 4 || ((await (await call(`/v1/channels/${ch}`)).json<{ edges?: number }>()).edges ?? 0) < 2) {
      sockets.push((await TestSocket.subscribe(ch))[0]);
    }
    for (const s of sockets.slice(1)) s.close();
    await new Promise((r) => setTimeout(r, 6000));
    expect(names(await outbox(ch))).toEqual(["channel_occupied"]);
    sockets[0]!.close();
    expect(names(await eventually(ch, (e) => e.length === 2))).toEqual(["channel_occupied", "channel_vacated"]);
  }, 25_000);

  it("writes nothing for channels whose options turn webhooks off", async () => {
    const ch = channelName("quiet");
    const [s] = await TestSocket.subscribe(ch, `?token=${await token({ sub: "ann", ch: [ch], pub: [ch] })}`);
    s.send({ t: "pub", e: "typing", d: 1 });
    await s.expect("msg");
    s.close();
    await new Promise((r) => setTimeout(r, 300));
    expect(await outbox(ch)).toEqual([]);
  });
});

describe("webhooks: cache_miss", () => {
  /** A raw Pusher client subscribed to a public cache channel: the frames it got. */
  async function pusherSubscribe(ch: string) {
    const s = await TestSocket.open("/app/test-pusher-key?protocol=7");
    await s.next(); // connection_established
    s.send({ event: "pusher:subscribe", data: { channel: ch } });
    const frames = [await s.next(), await s.next()] as unknown as { event: string; channel?: string }[];
    return { s, frames };
  }

  it("is written when a Pusher client finds a cache channel empty, at most once per channel per 10 s", async () => {
    const ch = `cache-${channelName("hook")}`;
    const first = await pusherSubscribe(ch);
    expect(first.frames.map((f) => f.event)).toEqual(["pusher_internal:subscription_succeeded", "pusher:cache_miss"]);
    expect(first.frames[1]).toEqual({ event: "pusher:cache_miss", channel: ch });
    await eventually(ch, (events) => events.some((e) => e.name === "cache_miss"));
    // Nine more empty subscribes in a row: each told cache_miss, one webhook in all.
    for (let i = 0; i < 9; i++) expect((await pusherSubscribe(ch)).frames[1]!.event).toBe("pusher:cache_miss");
    expect((await outbox(ch)).filter((e) => e.name === "cache_miss")).toEqual([{ name: "cache_miss", channel: ch }]);
  });

  it("is not written once the channel has an event: the subscriber gets it instead", async () => {
    const ch = `cache-${channelName("hook")}`;
    await publishOk(ch, "price", { eur: 1.08 });
    const { frames } = await pusherSubscribe(ch);
    expect(frames[1]).toMatchObject({ event: "price", channel: ch, data: '{"eur":1.08}' });
    await new Promise((r) => setTimeout(r, 300));
    expect((await outbox(ch)).filter((e) => e.name === "cache_miss")).toEqual([]);
  });
});
