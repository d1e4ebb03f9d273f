// Webhook deliveries against a real HTTP receiver, at their limits (DESIGN.md "One rule set":
// Webhooks; security review findings 5 and 22): large client events sent while the receiver is
// down all arrive afterwards, each delivery at most 256 KiB; a 429's Retry-After is waited out;
// a 302 is not followed (it would turn the POST into a body-less GET that counted as delivered).
import http from "node:http";
import WebSocket from "ws";
import { afterAll, beforeAll, expect, it } from "vitest";
import { channelName, sleep, token, until } from "./helpers";
import { startServer, type LocalServer } from "./server";

interface Request {
  method: string;
  path: string;
  at: number;
  bytes: number;
  delivery: string;
  status: number;
  events: { name: string; channel: string; event?: string; data?: string }[];
}

type Answer = { status: number; headers?: Record<string, string> };

/** Answers each POST by the first rule that matches its events' channel; 200 when none does. */
class Receiver {
  readonly requests: Request[] = [];
  /** Per channel: answers for its attempts in turn (the last one repeats), or one that decides. */
  readonly rules = new Map<string, (attempt: number) => Answer>();
  private server!: http.Server;
  url = "";

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks);
        const events = raw.length > 0 ? (JSON.parse(raw.toString("utf8")) as { events: Request["events"] }).events : [];
        const channel = events[0]?.channel ?? "";
        const attempt = this.requests.filter((r) => r.events[0]?.channel === channel && channel !== "").length + 1;
        const answer = this.rules.get(channel)?.(attempt) ?? { status: 200 };
        this.requests.push({ method: req.method!, path: req.url!, at: Date.now(), bytes: raw.length, delivery: String(req.headers["x-hibercast-delivery"]), status: answer.status, events });
        res.writeHead(answer.status, answer.headers).end();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  of(channel: string): Request[] {
    return this.requests.filter((r) => r.events.some((e) => e.channel === channel));
  }

  /** Event names (client events as `event:data-prefix`) of a channel, as accepted, in order. */
  received(channel: string): string[] {
    return this.of(channel)
      .filter((r) => r.status === 200)
      .flatMap((r) => r.events)
      .map((e) => (e.name === "client_event" ? `${e.event}:${e.data!.slice(0, e.data!.indexOf("|"))}` : e.name));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const receiver = new Receiver();
let server: LocalServer;

beforeAll(async () => {
  await receiver.start();
  server = await startServer({ vars: { WEBHOOK_URL: `${receiver.url}/hooks`, WEBHOOK_SECRET: "node-test-webhook-secret" } });
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await receiver.stop();
});

async function socket(ch: string, sub: string): Promise<WebSocket> {
  const t = await token({ sub, ch: [ch], pub: [ch] });
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/v1/channels/${ch}/ws?token=${t}`);
  await new Promise<void>((resolve, reject) => {
    ws.once("message", () => resolve());
    ws.once("error", reject);
  });
  return ws;
}

it("delivers every one of 40 client events of 60 KB sent while the receiver was down, each delivery ≤ 256 KiB", async () => {
  const ch = channelName("hooks-big");
  let down = true;
  receiver.rules.set(ch, () => ({ status: down ? 503 : 200 }));
  const sockets = await Promise.all(["a", "b", "c", "d"].map((sub) => socket(ch, sub)));
  const pad = "x".repeat(60_000);
  // Ten from each socket: within the per-socket rate limit of 10 a second.
  sockets.forEach((ws, s) => {
    for (let n = 1; n <= 10; n++) ws.send(JSON.stringify({ t: "pub", e: `s${s}`, d: `${n}|${pad}` }));
  });
  await until(() => receiver.of(ch).some((r) => r.status === 503), 10_000, "a refused attempt");
  await sleep(2000);
  down = false;
  await until(() => receiver.received(ch).length >= 41, 40_000, "all 41 events after recovery");
  const received = receiver.received(ch);
  expect(received[0]).toBe("channel_occupied");
  for (let s = 0; s < 4; s++) expect(received.filter((e) => e.startsWith(`s${s}:`))).toEqual(Array.from({ length: 10 }, (_, i) => `s${s}:${i + 1}`));
  expect(Math.max(...receiver.of(ch).map((r) => r.bytes))).toBeLessThanOrEqual(256 * 1024);
  for (const ws of sockets) ws.close();
}, 60_000);

it("waits out a 429's Retry-After: 2 before the next attempt, which is the same delivery", async () => {
  const ch = channelName("hooks-429");
  receiver.rules.set(ch, (attempt) => (attempt === 1 ? { status: 429, headers: { "retry-after": "2" } } : { status: 200 }));
  const ws = await socket(ch, "ann");
  await until(() => receiver.received(ch).includes("channel_occupied"), 15_000, "the retried delivery");
  const [first, second] = receiver.of(ch);
  expect(first!.status).toBe(429);
  expect(second!.delivery).toBe(first!.delivery);
  // The hub schedules the retry ≥ 2 s after it read the answer, which came after the request.
  expect(second!.at - first!.at).toBeGreaterThanOrEqual(1990);
  ws.close();
}, 30_000);

it("does not follow a 302: nothing reaches the Location, the delivery is dropped, and the next one goes", async () => {
  const ch = channelName("hooks-302");
  receiver.rules.set(ch, (attempt) => (attempt === 1 ? { status: 302, headers: { location: `${receiver.url}/elsewhere` } } : { status: 200 }));
  const ws = await socket(ch, "ann");
  await until(() => receiver.of(ch).length > 0, 10_000, "the first attempt");
  ws.close();
  await until(() => receiver.received(ch).includes("channel_vacated"), 20_000, "the next delivery");
  expect(receiver.requests.filter((r) => r.path === "/elsewhere")).toEqual([]);
  expect(receiver.of(ch).map((r) => [r.method, r.status, r.events.map((e) => e.name)])).toEqual([
    ["POST", 302, ["channel_occupied"]],
    ["POST", 200, ["channel_vacated"]],
  ]);
}, 30_000);
