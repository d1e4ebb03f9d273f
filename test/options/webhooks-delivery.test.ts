// Webhook delivery inside workerd (DESIGN.md "Webhooks" and "One rule set": Webhooks): batches
// bounded by bytes and count, a small in-flight record, byte-identical retries, the outbox cap,
// the 24 h give-up counted from the oldest event, jittered backoff, Retry-After, and no redirects.
// Each test drives a hub's real storage through Webhooks with a receiver of its own (the fetch
// seam), so no alarm of the hub itself takes part; the Node tests check the same against a real
// HTTP receiver (test/node/webhooks-limits.test.ts).
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import { GIVE_UP_MS, retryAfterMs, Webhooks, type Inflight, type WebhookEvent } from "../../src/hub/webhooks";
import { WEBHOOK_INFLIGHT_KEY } from "../../src/schema";
import { call, channelName, hubOf } from "../helpers";
import { loggedEvents } from "../logs";

interface Post {
  body: string;
  bytes: number;
  delivery: string;
  signature: string;
  redirect: RequestInit["redirect"];
}

/** A receiver that answers from a script (the last answer repeats) and records every post. */
function receiver(...answers: (() => Response)[]) {
  const posts: Post[] = [];
  const fetcher = (async (_url: RequestInfo | URL, init?: RequestInit) => {
    const body = String(init?.body);
    const headers = new Headers(init?.headers);
    posts.push({ body, bytes: new TextEncoder().encode(body).length, delivery: headers.get("x-hibercast-delivery")!, signature: headers.get("x-hibercast-signature")!, redirect: init?.redirect });
    return answers[Math.min(posts.length - 1, answers.length - 1)]!();
  }) as typeof fetch;
  return { posts, fetcher };
}

const ok = () => new Response("ok");
const down = () => new Response("down", { status: 503 });
const vars = (extra: Record<string, string> = {}) => ({ ...env, ...extra }) as unknown as Env;
const clientEvent = (ch: string, n: number, data = ""): WebhookEvent => ({ name: "client_event", channel: ch, event: `e${n}`, data, user_id: "ann" });
const eventsOf = (post: Post) => (JSON.parse(post.body) as { events: { event?: string; name: string }[] }).events.map((e) => e.event ?? e.name);

/** Runs `fn` on a fresh hub's storage. */
function onHub<T>(fn: (storage: DurableObjectStorage, ch: string) => Promise<T>): Promise<T> {
  const ch = channelName("hook-delivery");
  return runInDurableObject(hubOf(ch), (_room, state) => fn(state.storage, ch));
}

/** Runs deliveries as the alarm would, each when it is due, until the outbox is empty. */
async function drain(hooks: Webhooks, runs = 50): Promise<void> {
  let at: number | null = Date.now();
  for (let i = 0; i < runs && at !== null; i++) at = await hooks.deliver(Math.max(at, Date.now()));
  expect(at).toBeNull();
}

describe("webhook deliveries", () => {
  it("bounds each delivery by bytes (≤ 256 KiB) and count (≤ 100), in order, with a small in-flight record", async () => {
    await onHub(async (storage, ch) => {
      const big = "x".repeat(60_000);
      const { posts, fetcher } = receiver(down, ok);
      const hooks = new Webhooks(storage, vars(), fetcher);
      hooks.add({ name: "channel_occupied", channel: ch });
      for (let n = 1; n <= 40; n++) hooks.add(clientEvent(ch, n, big));
      for (let n = 41; n <= 250; n++) hooks.add(clientEvent(ch, n));
      // The first attempt fails: its record waits in KV, and holds no body (2.4 MB would not fit).
      await hooks.deliver(Date.now());
      const record = storage.kv.get<Inflight>(WEBHOOK_INFLIGHT_KEY)!;
      expect(Object.keys(record).sort()).toEqual(["attempts", "delivery", "first", "next", "time_ms", "upTo"]);
      expect(JSON.stringify(record).length).toBeLessThan(256);
      await drain(hooks);
      expect(posts.every((p) => p.bytes <= 256 * 1024)).toBe(true);
      expect(posts.every((p) => eventsOf(p).length <= 100)).toBe(true);
      // Four large events to a delivery (a fifth would pass 256 KiB); small ones fill the rest up to 100.
      expect(posts.slice(1).map((p) => eventsOf(p).length)).toEqual([5, 4, 4, 4, 4, 4, 4, 4, 4, 100, 100, 14]);
      const delivered = posts.slice(1).flatMap(eventsOf);
      expect(delivered).toEqual(["channel_occupied", ...Array.from({ length: 250 }, (_, i) => `e${i + 1}`)]);
    });
  });

  it("retries a delivery byte for byte (same name, time_ms, events and signature), whatever was added meanwhile", async () => {
    await onHub(async (storage, ch) => {
      const { posts, fetcher } = receiver(down, down, ok);
      const hooks = new Webhooks(storage, vars(), fetcher);
      hooks.add(clientEvent(ch, 1, "ünïcødé"));
      hooks.add(clientEvent(ch, 2));
      await hooks.deliver(Date.now());
      hooks.add(clientEvent(ch, 3));
      // A new object on the same storage (a restart) rebuilds the same body from the rows.
      const restarted = new Webhooks(storage, vars(), fetcher);
      await drain(restarted);
      expect(posts).toHaveLength(4);
      const [a, b, c] = posts;
      expect(b).toEqual(a);
      expect(c).toEqual(a);
      expect(eventsOf(a!)).toEqual(["e1", "e2"]);
      expect(eventsOf(posts[3]!)).toEqual(["e3"]);
      expect(posts[3]!.delivery).not.toBe(a!.delivery);
    });
  });

  it("caps the outbox at WEBHOOK_MAX_PENDING: the oldest waiting events are dropped, counted and logged", async () => {
    await onHub(async (storage, ch) => {
      const { posts, fetcher } = receiver(down, ok);
      const hooks = new Webhooks(storage, vars({ WEBHOOK_MAX_PENDING: "5" }), fetcher);
      hooks.add(clientEvent(ch, 1));
      hooks.add(clientEvent(ch, 2));
      await hooks.deliver(Date.now()); // e1, e2 in flight (refused)
      for (let n = 3; n <= 12; n++) hooks.add(clientEvent(ch, n));
      expect(hooks.stats()).toEqual({ pending: 5, dropped: 7 });
      await drain(hooks);
      // The delivery in flight is kept whole (its retry is the same delivery); e3..e9 went.
      expect(posts.map(eventsOf)).toEqual([["e1", "e2"], ["e1", "e2"], ["e10", "e11", "e12"]]);
      expect(loggedEvents("webhook")).toContainEqual(expect.objectContaining({ dropped: 7, reason: "outbox_full", max: 5 }));
      expect(hooks.stats()).toEqual({ pending: 0, dropped: 7 });
      // The count is stored: the hub's next wake (a new Webhooks on the same storage) still says so.
      expect(new Webhooks(storage, vars({ WEBHOOK_MAX_PENDING: "5" }), fetcher).stats()).toEqual({ pending: 0, dropped: 7 });
    });
  });

  it("holds 10,000 events per channel by default, through the hub, and says what it dropped", async () => {
    const ch = channelName("hook-cap");
    await runInDurableObject(hubOf(ch), (room) => {
      for (let n = 1; n <= 10_005; n++) room.webhook(clientEvent(ch, n));
    });
    // The hub's alarm runs (the receiver is down) and logs the drop.
    const deadline = Date.now() + 5000;
    while (!loggedEvents("webhook").some((l) => l.dropped === 5) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(loggedEvents("webhook")).toContainEqual(expect.objectContaining({ dropped: 5, reason: "outbox_full", max: 10_000 }));
    const { count, oldest } = await runInDurableObject(hubOf(ch), (_room, state) => ({
      count: state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM webhook_outbox").one().n,
      oldest: state.storage.sql.exec<{ event: string }>("SELECT event FROM webhook_outbox ORDER BY id LIMIT 1").one().event,
    }));
    expect(count).toBe(10_000);
    expect((JSON.parse(oldest) as { event: string }).event).toBe("e6");
    // Channel stats say it too (with the publish key: they are the operator's view).
    const stats = await (await call(`/v1/channels/${ch}`, { headers: { authorization: "Bearer test-publish-key" } })).json<{ webhooks?: { pending: number; dropped: number } }>();
    expect(stats.webhooks).toEqual({ pending: 10_000, dropped: 5 });
  });

  it("gives up 24 h after the oldest undelivered event, not 24 h per delivery", async () => {
    await onHub(async (storage, ch) => {
      const { posts, fetcher } = receiver(down);
      const hooks = new Webhooks(storage, vars(), fetcher);
      for (let n = 1; n <= 150; n++) hooks.add(clientEvent(ch, n));
      // The events were written 24 h and a minute ago (the row starts with the time it was written).
      const then = Date.now() - GIVE_UP_MS - 60_000;
      storage.sql.exec(`UPDATE webhook_outbox SET event = '{"at":' || ? || ',' || substr(event, instr(event, ',') + 1)`, then);
      const next = await hooks.deliver(Date.now());
      // One last attempt for each delivery, then dropped: two deliveries, nothing left to retry.
      expect(next).toBeNull();
      expect(posts.map((p) => eventsOf(p).length)).toEqual([100, 50]);
      expect(loggedEvents("webhook").filter((l) => l.reason === "gave_up")).toHaveLength(2);
      expect(hooks.stats().pending).toBe(0);
    });
  });

  it("keeps retrying events younger than 24 h", async () => {
    await onHub(async (storage, ch) => {
      const { posts, fetcher } = receiver(down);
      const hooks = new Webhooks(storage, vars(), fetcher);
      hooks.add(clientEvent(ch, 1));
      storage.sql.exec(`UPDATE webhook_outbox SET event = '{"at":' || ? || ',' || substr(event, instr(event, ',') + 1)`, Date.now() - GIVE_UP_MS + 3600_000);
      expect(await hooks.deliver(Date.now())).not.toBeNull();
      expect(posts).toHaveLength(1);
      expect(storage.kv.get<Inflight>(WEBHOOK_INFLIGHT_KEY)).toMatchObject({ attempts: 1 });
      expect(hooks.stats().pending).toBe(1);
    });
  });

  it("spreads retries with full jitter: hubs that failed together do not retry together", async () => {
    const waits: number[] = [];
    const spent: number[] = [];
    for (let i = 0; i < 12; i++) {
      await onHub(async (storage, ch) => {
        const hooks = new Webhooks(storage, vars(), receiver(down).fetcher);
        hooks.add(clientEvent(ch, 1));
        const now = Date.now();
        const next = (await hooks.deliver(now))!;
        waits.push(next - now);
        spent.push(Date.now() - now);
      });
    }
    // The first retry waits a random share of 1 s, counted from the failed post's answer.
    expect(waits.every((w, i) => w >= 0 && w <= spent[i]! + 1001)).toBe(true);
    expect(new Set(waits).size).toBeGreaterThan(3);
  });

  it("honours Retry-After on 429 and 503, in seconds or as an HTTP date", async () => {
    await onHub(async (storage, ch) => {
      const limited = () => new Response("slow down", { status: 429, headers: { "retry-after": "2" } });
      const { posts, fetcher } = receiver(limited, ok);
      const hooks = new Webhooks(storage, vars(), fetcher);
      hooks.add(clientEvent(ch, 1));
      const now = Date.now();
      const next = (await hooks.deliver(now))!;
      expect(next - now).toBeGreaterThanOrEqual(2000);
      // Woken early (another job's alarm), it does not post before the receiver asked.
      expect(await hooks.deliver(now + 1500)).toBe(next);
      expect(posts).toHaveLength(1);
    });
    const now = Date.UTC(2026, 11, 1, 10, 0, 0);
    expect(retryAfterMs("2", now)).toBe(2000);
    expect(retryAfterMs(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(retryAfterMs("soon", now)).toBeNull();
    expect(retryAfterMs(null, now)).toBeNull();
  });

  it("does not follow a redirect: a 302 is a failure, logged and dropped, and the next delivery goes on", async () => {
    await onHub(async (storage, ch) => {
      const moved = () => new Response(null, { status: 302, headers: { location: "http://elsewhere.test/" } });
      const { posts, fetcher } = receiver(moved, ok);
      const hooks = new Webhooks(storage, vars(), fetcher);
      hooks.add(clientEvent(ch, 1));
      await hooks.deliver(Date.now());
      hooks.add(clientEvent(ch, 2));
      await drain(hooks);
      expect(posts.map((p) => p.redirect)).toEqual(["manual", "manual"]);
      expect(posts.map(eventsOf)).toEqual([["e1"], ["e2"]]);
      expect(loggedEvents("webhook")).toContainEqual(expect.objectContaining({ status: 302, attempt: 1 }));
      expect(loggedEvents("webhook")).toContainEqual(expect.objectContaining({ dropped: 1, reason: "rejected" }));
    });
  });
});
