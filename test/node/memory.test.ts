// Nothing an outsider sends may grow memory without bound (DESIGN v1.3): 100,000 refused frames
// on one anonymous /v1/ws connection, each naming a new channel, leave a connection edge's memory
// flat, and the edge keeps serving a subscriber beside it. On workerd directly (as production
// runs it), with one connection edge so every frame reaches the same object.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import WebSocket from "ws";
import { createPublisher } from "../../src/client/publisher";
import { serveOnWorkerd } from "../../scripts/serve-workerd.mjs";
import { channelName } from "./helpers";

const KEY = "memory-test-publish-key";
let server: Awaited<ReturnType<typeof serveOnWorkerd>>;
beforeAll(async () => {
  server = await serveOnWorkerd({ PUBLISH_KEY: KEY, CONNECTION_EDGES: "1" });
}, 30_000);
afterAll(() => server?.stop());

/** The server process's resident memory, in MB. */
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, "utf8"))![1]) / 1024;

function open(path: string): Promise<{ ws: WebSocket; frames: unknown[]; waitFor(n: number): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(server.url.replace("http", "ws") + path);
    const frames: unknown[] = [];
    let want = Infinity;
    let wake = () => {};
    ws.on("message", (data) => {
      const f = JSON.parse(String(data)) as { t: string; f?: unknown[] };
      if (f.t === "batch") frames.push(...f.f!);
      else frames.push(f);
      if (frames.length >= want) wake();
    });
    ws.on("error", reject);
    ws.on("open", () =>
      resolve({
        ws,
        frames,
        waitFor: (n) =>
          new Promise<void>((done) => {
            want = n;
            wake = done;
            if (frames.length >= n) done();
          }),
      }),
    );
  });
}

it("an edge's memory stays flat over 100,000 refused frames, and a subscriber beside it keeps receiving", async () => {
  const ch = channelName("beside");
  const subscriber = await open("/v1/ws");
  await subscriber.waitFor(1); // welcome
  subscriber.ws.send(JSON.stringify({ t: "sub", ch }));
  await subscriber.waitFor(2); // subscribed

  const attacker = await open("/v1/ws");
  await attacker.waitFor(1);
  const pad = "p".repeat(100);
  let sent = 0;
  /** Sends `n` frames that are each refused, naming a channel never named before. */
  const refuse = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const name = `x${sent++}-${pad}`;
      const kind = sent % 3;
      attacker.ws.send(JSON.stringify(kind === 0 ? { t: "unsub", ch: name } : kind === 1 ? { t: "pub", ch: name, e: "e", d: 1 } : { t: "sub", ch: `private-${name}` }));
    }
    await attacker.waitFor(sent + 1);
  };
  // Warm up: the isolate's heap grows to its working size (garbage collection sets the pace).
  for (let round = 0; round < 5; round++) await refuse(10_000);
  const before = rssMb();
  for (let round = 0; round < 10; round++) await refuse(10_000);
  const after = rssMb();
  expect(attacker.frames.slice(1).every((f) => (f as { t: string }).t === "err")).toBe(true);
  expect(attacker.frames.length).toBe(150_001);
  console.log(`memory: ${before.toFixed(1)} MB after 50,000 refused frames, ${after.toFixed(1)} MB after 100,000 more`);
  // Resident memory moves with garbage collection (8-23 MB here, more when other tests share the
  // machine); what the refused frames kept in 0.3.0 came to 110 MB over the same frames.
  expect(after - before).toBeLessThan(40);

  await createPublisher({ url: server.url, key: KEY }).publish(ch, "still", 1);
  await subscriber.waitFor(3);
  expect(subscriber.frames[2]).toMatchObject({ t: "msg", ch, e: "still" });
  attacker.ws.close();
  subscriber.ws.close();
}, 120_000);
