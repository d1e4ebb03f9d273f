// The real Durable Streams client (@durable-streams/client) against hibercast streams on
// workerd: create, append, catch-up read, live SSE, and a live reader whose TCP connections are
// cut again and again while a writer appends (the app retries on errors, as the client
// documents): it sees every item once, in order.
import { DurableStream, stream } from "@durable-streams/client";
import { afterAll, beforeAll, expect, it } from "vitest";
import { serveOnWorkerd } from "../../scripts/serve-workerd.mjs";
import { TcpProxy } from "../node/helpers";

const KEY = "streams-client-publish-key";
const auth = { authorization: `Bearer ${KEY}` };
let server: Awaited<ReturnType<typeof serveOnWorkerd>>;
beforeAll(async () => {
  server = await serveOnWorkerd({ PUBLISH_KEY: KEY, STREAM_LONG_POLL_MS: "1500" });
}, 30_000);
afterAll(() => server?.stop());

let n = 0;
const name = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${n++}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it("creates a JSON stream, appends, and reads it back whole", async () => {
  const url = `${server.url}/v1/stream/${name("client")}`;
  const handle = await DurableStream.create({ url, headers: auth, contentType: "application/json" });
  for (let i = 0; i < 5; i++) await handle.append(JSON.stringify({ i }));
  const res = await stream<{ i: number }>({ url, live: false, json: true });
  expect(await res.json()).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
  expect(res.upToDate).toBe(true);
});

it("a live SSE reader sees every item once, in order, while its connections are cut", async () => {
  const id = name("client-sse");
  const url = `${server.url}/v1/stream/${id}`;
  const writer = await DurableStream.create({ url, headers: auth, contentType: "application/json" });
  const proxy = await TcpProxy.start(server.url);
  const seen: number[] = [];
  // A session ends when its connection is cut: the app reads on from the last offset it got.
  let offset = "-1";
  let reading = true;
  const current: { session: { cancel(): void } | null } = { session: null };
  const read = async () => {
    while (reading) {
      try {
        const res = await stream<{ i: number }>({ url: `http://127.0.0.1:${proxy.port}/v1/stream/${id}`, live: "sse", json: true, offset });
        current.session = res;
        res.subscribeJson(({ items, offset: next }) => {
          seen.push(...items.map((x) => x.i));
          offset = next;
        });
        await res.closed;
      } catch {
        // cut: go on from `offset`
      }
      await sleep(20);
    }
  };
  const reader = read();
  const total = 150;
  const cutting = (async () => {
    while (seen.length < total) {
      await sleep(150 + Math.random() * 100);
      proxy.cut();
    }
  })();
  for (let i = 0; i < total; i++) {
    await writer.append(JSON.stringify({ i }));
    if (i % 10 === 0) await sleep(20);
  }
  const deadline = Date.now() + 20_000;
  while (seen.length < total && Date.now() < deadline) await sleep(50);
  await cutting;
  reading = false;
  current.session?.cancel();
  await reader;
  await proxy.close();
  expect(proxy.cuts).toBeGreaterThan(2);
  expect(seen).toEqual(Array.from({ length: total }, (_, i) => i));
}, 40_000);

it("a closed stream ends a live reader after its last item", async () => {
  const url = `${server.url}/v1/stream/${name("client-close")}`;
  const handle = await DurableStream.create({ url, headers: auth, contentType: "text/plain" });
  await handle.append("hello ");
  const res = await stream({ url, live: "sse", offset: "-1" });
  let text = "";
  res.subscribeText(({ text: chunk }) => void (text += chunk));
  await sleep(200);
  await handle.close({ body: "world" });
  await res.closed;
  expect(text).toBe("hello world");
  expect(res.streamClosed).toBe(true);
});
