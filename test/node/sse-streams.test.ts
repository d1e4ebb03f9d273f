// SSE streams seen from a real TCP client: a reader that stops reading is cut off at
// SSE_MAX_BACKLOG_BYTES and resumes with nothing lost, a reader beside it is unaffected, and a
// client that goes away stops counting within a heartbeat.
//
// These run on workerd directly, as production runs the Worker: wrangler dev puts a proxy in
// front that reads every response eagerly, so behind it the Worker never sees a slow reader.
import http from "node:http";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createPublisher } from "../../src/client/publisher";
import { serveOnWorkerd } from "../../scripts/serve-workerd.mjs";
import { channelName, until } from "./helpers";

const KEY = "sse-test-publish-key";
let server: Awaited<ReturnType<typeof serveOnWorkerd>>;
beforeAll(async () => {
  server = await serveOnWorkerd({ PUBLISH_KEY: KEY });
}, 30_000);
afterAll(() => server?.stop());
const baseUrl = () => server.url;
const publisher = () => createPublisher({ url: baseUrl(), key: KEY });

const PUBLISHES = 160;
const PAYLOAD = "x".repeat(60_000); // 160 × 60 KB ≈ 9.6 MB: more than the kernel's socket buffers + 1 MiB

/** Parses SSE text into events (the parts an EventSource keeps). */
function events(text: string): { event?: string; id?: string; data?: string }[] {
  return text
    .split("\n\n")
    .filter((block) => block.trim() !== "")
    .map((block) => {
      const e: { event?: string; id?: string; data?: string } = {};
      for (const line of block.split("\n")) {
        const m = /^(event|id|data): ?(.*)$/.exec(line);
        if (m) e[m[1] as "event" | "id" | "data"] = m[2];
      }
      return e;
    });
}

/** An SSE request over a plain TCP connection, whose reading can be paused. */
function open(path: string, headers: Record<string, string> = {}): Promise<{ res: http.IncomingMessage; req: http.ClientRequest; text: () => string }> {
  return new Promise((resolve, reject) => {
    let body = "";
    const req = http.get(`${baseUrl()}${path}`, { headers: { accept: "text/event-stream", ...headers }, agent: false }, (res) => {
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      resolve({ res, req, text: () => body });
    });
    req.on("error", reject);
  });
}

const stats = async (ch: string) => (await (await fetch(`${baseUrl()}/v1/channels/${ch}`)).json()) as { subscribers: number; transports: { sse: number } };
const msgSeqs = (text: string) => events(text).filter((e) => e.id !== undefined).map((e) => Number(e.id!.split(":")[1]));

it("ends a stream that stops reading past its backlog, and it resumes from Last-Event-ID with nothing lost", { timeout: 60_000 }, async () => {
  const ch = channelName("slow");
  const slow = await open(`/v1/channels/${ch}/sse`);
  const steady = await open(`/v1/channels/${ch}/sse`);
  await until(() => slow.text().includes("event: welcome") && steady.text().includes("event: welcome"), 5000, "both welcomes");
  slow.res.pause(); // stops reading: the kernel's buffers fill, then the Worker's

  const pub = publisher();
  for (let i = 1; i <= PUBLISHES; i++) await pub.publish(ch, "big", { i, pad: PAYLOAD });

  // The reader that kept reading got everything, in order, and its stream is still open.
  await until(() => msgSeqs(steady.text()).length === PUBLISHES, 20_000, "the steady reader");
  expect(msgSeqs(steady.text())).toEqual(Array.from({ length: PUBLISHES }, (_, i) => i + 1));
  // The slow one was ended: only the steady stream is still counted.
  let counted = 2;
  for (const deadline = Date.now() + 10_000; Date.now() < deadline && counted !== 1; ) counted = (await stats(ch)).transports.sse;
  expect(counted).toBe(1);

  // Reading again, the slow client gets what was queued, then the err, then the end.
  slow.res.resume();
  await new Promise((resolve) => slow.res.on("end", resolve));
  const got = events(slow.text());
  const err = got.find((e) => e.event === "err");
  expect(JSON.parse(err!.data!)).toMatchObject({ t: "err", code: "unavailable", message: expect.stringMatching(/slow consumer/) });
  const seen = msgSeqs(slow.text());
  expect(seen.length).toBeLessThan(PUBLISHES);
  const lastId = got.filter((e) => e.id !== undefined).at(-1)!.id!;

  // Reconnecting with Last-Event-ID as EventSource does, the rest arrives exactly once. A replay
  // bigger than the backlog limit comes in parts: each part ends the stream, the next resumes.
  let cursor = lastId;
  let reconnects = 0;
  while (seen.at(-1) !== PUBLISHES && reconnects++ < 20) {
    const again = await open(`/v1/channels/${ch}/sse`, { "last-event-id": cursor });
    const done = new Promise((resolve) => again.res.on("end", resolve));
    await Promise.race([done, until(() => msgSeqs(again.text()).at(-1) === PUBLISHES, 20_000, "the resumed stream")]);
    const part = events(again.text()).filter((e) => e.id !== undefined);
    seen.push(...part.map((e) => Number(e.id!.split(":")[1])));
    cursor = part.at(-1)?.id ?? cursor;
    again.req.destroy();
  }
  expect(seen).toEqual(Array.from({ length: PUBLISHES }, (_, i) => i + 1));
  steady.req.destroy();
});

it("stops counting an SSE client within a heartbeat of it going away", { timeout: 20_000 }, async () => {
  const ch = channelName("gone");
  const client = await open(`/v1/channels/${ch}/sse`);
  await until(() => client.text().includes("event: welcome"), 5000, "the welcome");
  expect((await stats(ch)).subscribers).toBe(1);
  client.req.destroy(); // curl -N, then Ctrl-C
  const started = Date.now();
  let subscribers = 1;
  while (subscribers !== 0 && Date.now() - started < 7000) {
    await new Promise((r) => setTimeout(r, 50));
    subscribers = (await stats(ch)).subscribers;
  }
  expect(subscribers).toBe(0);
  const delivered = ((await publisher().publish(ch, "m", 1)) as { delivered: number }).delivered;
  expect(delivered).toBe(0);
});
