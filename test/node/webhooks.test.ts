// Webhooks delivered to a real HTTP receiver that checks every signature (DESIGN.md "Webhooks"):
// in order, batched, retried while the receiver is down, and kept across a restart of the
// server with its storage on disk. The receiver verifies deliveries with the function that
// docs/guides/webhooks.md prints, and a delivery is checked against the example printed there.
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import PusherServer from "pusher";
import WebSocket from "ws";
import { afterAll, beforeAll, expect, it } from "vitest";
import { channelName, sleep, token, until } from "./helpers";
import { NODE_PUSHER, startServer, type LocalServer } from "./server";
import { importSnippet, sameShape } from "./snippet-run";
import { snippet } from "./snippets";

const SECRET = "node-test-webhook-secret";

// docs/guides/webhooks.md: verifying a delivery, exactly as printed there.
const { verifyWebhook } = await importSnippet<{ verifyWebhook(secret: string, rawBody: string, header: string | undefined): boolean }>(
  "webhooks-verify",
  snippet("docs/guides/webhooks.md", "webhooks/verify"),
);

interface Delivery {
  id: string;
  status: number;
  events: { name: string; channel: string; user_id?: string; event?: string; data?: string }[];
  body: Record<string, unknown>;
  signed: boolean;
  pusherSigned: boolean;
}

/** A local receiver: answers 503 while down, records every attempt and whether it was signed right. */
class Receiver {
  down = false;
  /** Answers 400 to deliveries that hold an event of this channel (a receiver that rejects them). */
  rejects: string | null = null;
  readonly attempts: Delivery[] = [];
  private server!: http.Server;
  url = "";

  async start(): Promise<void> {
    const pusher = new PusherServer({ appId: NODE_PUSHER.appId, key: NODE_PUSHER.key, secret: NODE_PUSHER.secret, host: "127.0.0.1" });
    this.server = http.createServer((req, res) => {
      let raw = "";
      req.on("data", (chunk) => (raw += chunk));
      req.on("end", () => {
        const events = (JSON.parse(raw) as { events: Delivery["events"] }).events;
        const status = this.down ? 503 : events.some((e) => e.channel === this.rejects) ? 400 : 200;
        this.attempts.push({
          id: String(req.headers["x-hibercast-delivery"]),
          status,
          events,
          body: JSON.parse(raw) as Record<string, unknown>,
          signed: verifyWebhook(SECRET, raw, req.headers["x-hibercast-signature"] as string | undefined),
          // A Pusher webhook handler, unchanged: the SDK checks X-Pusher-Key and X-Pusher-Signature.
          pusherSigned: pusher.webhook({ headers: req.headers as Record<string, string>, rawBody: raw }).isValid(),
        });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}/hooks`;
  }

  /** Events of a channel as received in accepted deliveries, in order. */
  received(channel: string): string[] {
    return this.attempts
      .filter((a) => a.status === 200)
      .flatMap((a) => a.events)
      .filter((e) => e.channel === channel)
      .map((e) => (e.name === "client_event" ? `client_event:${e.event}:${e.data}` : e.user_id ? `${e.name}:${e.user_id}` : e.name));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const receiver = new Receiver();
const dir = mkdtempSync(path.join(tmpdir(), "hibercast-webhooks-"));
let server: LocalServer;

beforeAll(async () => {
  await receiver.start();
  server = await startServer({ persist: dir, vars: { WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET } });
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await receiver.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A presence member on the served worker (a raw hibercast socket that may publish). */
async function member(ch: string, sub: string): Promise<WebSocket & { opened: Promise<void> }> {
  const t = await token({ sub, ch: [ch], pub: [ch] });
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/v1/channels/${ch}/ws?token=${t}`);
  await new Promise<void>((resolve, reject) => {
    ws.once("message", () => resolve());
    ws.once("error", reject);
  });
  return ws as WebSocket & { opened: Promise<void> };
}

it("delivers occupied, members, client events and vacated, signed both ways, in order", async () => {
  const ch = channelName("presence-hooks");
  const ann = await member(ch, "ann");
  const bob = await member(ch, "bob");
  ann.send(JSON.stringify({ t: "pub", e: "typing", d: { on: true } }));
  // Each step once the receiver has the one before: two closes on two connections have no order of their own.
  await until(() => receiver.received(ch).some((e) => e.startsWith("client_event")), 10_000, "client_event");
  ann.close();
  await until(() => receiver.received(ch).includes("member_removed:ann"), 10_000, "member_removed:ann");
  bob.close();
  await until(() => receiver.received(ch).includes("channel_vacated"), 15_000, "channel_vacated");
  expect(receiver.received(ch)).toEqual(["channel_occupied", "member_added:ann", "member_added:bob", 'client_event:typing:{"on":true}', "member_removed:ann", "member_removed:bob", "channel_vacated"]);
  const mine = receiver.attempts.filter((a) => a.events.some((e) => e.channel === ch));
  expect(mine.every((a) => a.signed && a.pusherSigned)).toBe(true);
}, 30_000);

it("sends what docs/guides/webhooks.md shows: one member who joins, types and leaves", async () => {
  const ch = channelName("presence-doc");
  const ann = await member(ch, "ann");
  ann.send(JSON.stringify({ t: "pub", e: "typing", d: { on: true } }));
  await sleep(200);
  ann.close();
  await until(() => receiver.received(ch).includes("channel_vacated"), 15_000, "channel_vacated");
  const example = JSON.parse(snippet("docs/guides/webhooks.md", "webhooks/delivery").replaceAll("presence-room-1", ch)) as { time_ms: number; events: unknown[] };
  const mine = receiver.attempts.filter((a) => a.status === 200 && a.events.some((e) => e.channel === ch));
  // Deliveries may split the events differently; each has the example's shape, and together its events.
  for (const a of mine) expect(sameShape({ ...example, events: a.body.events }, a.body, ["time_ms"])).toBeNull();
  expect(mine.flatMap((a) => a.events)).toEqual(example.events);
  expect(mine.every((a) => a.signed)).toBe(true);
}, 30_000);

it("loses nothing and keeps the order while the receiver is down, and across a restart of the server", async () => {
  const ch = channelName("presence-hooks-down");
  receiver.down = true;
  const ann = await member(ch, "ann");
  let echoed = 0;
  ann.on("message", (raw) => (echoed += (JSON.parse(String(raw)) as { t: string }).t === "msg" ? 1 : 0));
  for (let i = 1; i <= 5; i++) ann.send(JSON.stringify({ t: "pub", e: "n", d: i }));
  // Each publish is in the outbox once its echo comes back (storage confirms before a send): only
  // then may the server stop. (The first refused attempt can come before them: it holds the join.)
  await until(() => echoed === 5, 10_000, "the five publishes");
  await until(() => receiver.attempts.some((a) => a.status === 503 && a.events.some((e) => e.channel === ch)), 10_000, "a refused attempt");
  const refused = receiver.attempts.find((a) => a.status === 503 && a.events.some((e) => e.channel === ch))!;

  // The process stops with the outbox on disk; a new one starts on the same storage.
  ann.terminate();
  await server.stop();
  server = await startServer({ persist: dir, vars: { WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET } });
  await sleep(1500);
  receiver.down = false;

  const expected = ["channel_occupied", "member_added:ann", ...[1, 2, 3, 4, 5].map((i) => `client_event:n:${i}`)];
  await until(() => receiver.received(ch).length >= expected.length, 40_000, "everything after recovery");
  expect(receiver.received(ch).slice(0, expected.length)).toEqual(expected);
  // A retry is the same delivery: its name came back with status 200.
  expect(receiver.attempts.filter((a) => a.id === refused.id).map((a) => a.status)).toContain(200);
  expect(receiver.attempts.filter((a) => a.events.some((e) => e.channel === ch)).every((a) => a.signed)).toBe(true);
}, 90_000);

it("drops a delivery the receiver rejects with a 4xx other than 429 (no retry), and goes on with the next", async () => {
  const ch = channelName("hooks-rejected");
  receiver.rejects = ch;
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/v1/channels/${ch}/ws`);
  await new Promise((resolve) => ws.once("message", resolve));
  await until(() => receiver.attempts.some((a) => a.status === 400), 10_000, "a rejected delivery");
  receiver.rejects = null;
  ws.close();
  await until(() => receiver.received(ch).includes("channel_vacated"), 15_000, "the next delivery");
  const attempts = receiver.attempts.filter((a) => a.events.some((e) => e.channel === ch));
  expect(attempts.map((a) => [a.status, a.events.map((e) => e.name)])).toEqual([
    [400, ["channel_occupied"]],
    [200, ["channel_vacated"]],
  ]);
}, 30_000);
