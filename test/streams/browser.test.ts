// A browser (real Chromium, driven by playwright-core) reads a hibercast stream with
// @durable-streams/client and `live=sse` while its connection is dropped again and again: it
// reads on from the last offset it got and sees every item once, in order.
import { build } from "esbuild";
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DurableStream } from "@durable-streams/client";
import { serveOnWorkerd } from "../../scripts/serve-workerd.mjs";
import { TcpProxy } from "../node/helpers";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const KEY = "browser-stream-publish-key";
let server: Awaited<ReturnType<typeof serveOnWorkerd>>;
let browser: Browser;
let clientBundle: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (CI does this)`);
  server = await serveOnWorkerd({ PUBLISH_KEY: KEY, STREAM_LONG_POLL_MS: "1500" });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"] });
  // The client library as a page script (window.DS), as an app's bundle would ship it.
  const out = await build({ stdin: { contents: 'export { stream } from "@durable-streams/client";', resolveDir: process.cwd() }, bundle: true, format: "iife", globalName: "DS", platform: "browser", write: false, logLevel: "warning" });
  clientBundle = out.outputFiles[0]!.text;
}, 60_000);
afterAll(async () => {
  await browser?.close();
  server?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it("reads a stream live over SSE across dropped connections, every item once, in order", { timeout: 60_000 }, async () => {
  const id = `browser-${Date.now().toString(36)}`;
  const writer = await DurableStream.create({ url: `${server.url}/v1/stream/${id}`, headers: { authorization: `Bearer ${KEY}` }, contentType: "application/json" });
  const proxy = await TcpProxy.start(server.url);
  const page = await browser.newPage();
  await page.addScriptTag({ content: clientBundle });
  await page.evaluate((url) => {
    const w = window as unknown as { seen: number[]; DS: typeof import("@durable-streams/client") };
    w.seen = [];
    let offset = "-1";
    void (async () => {
      for (;;) {
        try {
          const res = await w.DS.stream<{ i: number }>({ url, live: "sse", json: true, offset, warnOnHttp: false });
          res.subscribeJson(({ items, offset: next }) => {
            w.seen.push(...items.map((x) => x.i));
            offset = next;
          });
          await res.closed;
        } catch {
          // dropped: read on from `offset`
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
  }, `http://127.0.0.1:${proxy.port}/v1/stream/${id}`);
  const seen = () => page.evaluate(() => (window as unknown as { seen: number[] }).seen);
  const total = 60;
  for (let i = 0; i < total; i++) {
    await writer.append(JSON.stringify({ i }));
    await sleep(15);
    if (i % 15 === 14) proxy.cut();
  }
  await expect.poll(async () => (await seen()).length, { timeout: 20_000 }).toBeGreaterThanOrEqual(total);
  expect(await seen()).toEqual(Array.from({ length: total }, (_, i) => i));
  expect(proxy.cuts).toBeGreaterThan(2);
  await page.close();
  await proxy.close();
});
