// An AI SDK chat on a hibercast stream, with no Redis: the app's route streams the model's answer
// (the AI SDK's mock model, one word every 30 ms) into `/v1/stream/chat-<id>` with
// @durable-streams/aisdk-transport, and the browser side's transport reads it from hibercast.
// A client that loses its connection mid-answer and calls reconnectToStream gets the whole
// answer once; a finished answer replays from the start.
import { createDurableChatTransport, toDurableStreamResponse } from "@durable-streams/aisdk-transport";
import { simulateReadableStream, streamText, type UIMessage, type UIMessageChunk } from "ai";
import { MockLanguageModelV3 } from "ai/test";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { serveOnWorkerd } from "../../scripts/serve-workerd.mjs";

const KEY = "ai-sdk-test-publish-key";
const WORDS = Array.from({ length: 20 }, (_, i) => `word${i} `);
let hibercast: Awaited<ReturnType<typeof serveOnWorkerd>>;
let app: Server;
let appUrl: string;

/** The model: the AI SDK's mock, streaming WORDS. */
const model = () =>
  new MockLanguageModelV3({
    doStream: async () => ({
      stream: simulateReadableStream({
        chunkDelayInMs: 30,
        chunks: [
          { type: "text-start", id: "t" },
          ...WORDS.map((delta) => ({ type: "text-delta" as const, id: "t", delta })),
          { type: "text-end", id: "t" },
          { type: "finish", finishReason: { unified: "stop", raw: undefined }, logprobs: undefined, usage: { inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined }, outputTokens: { total: 20, text: 20, reasoning: undefined } } },
        ],
      }),
    }),
  });

const streamUrl = (chatId: string) => `${hibercast.url}/v1/stream/chat-${chatId}`;

/** The app's server: POST /api/chat answers into a stream; GET /api/chat/:id/stream says where it is. */
async function handle(method: string, path: string, body: string): Promise<Response> {
  if (method === "POST" && path === "/api/chat") {
    const { id, messages } = JSON.parse(body) as { id: string; messages: UIMessage[] };
    const result = streamText({ model: model(), prompt: messages.map((m) => m.parts.map((p) => (p.type === "text" ? p.text : "")).join("")).join("\n") });
    return toDurableStreamResponse({ source: result.toUIMessageStream(), stream: { writeUrl: streamUrl(id), headers: { authorization: `Bearer ${KEY}` } } });
  }
  const reconnect = /^\/api\/chat\/([^/]+)\/stream$/.exec(path);
  if (method === "GET" && reconnect) {
    const head = await fetch(streamUrl(reconnect[1]!), { method: "HEAD" });
    return head.status === 200 ? Response.json({ streamUrl: streamUrl(reconnect[1]!) }, { headers: { location: streamUrl(reconnect[1]!) } }) : new Response(null, { status: 204 });
  }
  return new Response("not found", { status: 404 });
}

beforeAll(async () => {
  hibercast = await serveOnWorkerd({ PUBLISH_KEY: KEY, STREAM_LONG_POLL_MS: "1500" });
  app = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      const answer = await handle(req.method!, req.url!, body);
      const headers: Record<string, string> = {};
      answer.headers.forEach((value, name) => (headers[name] = value));
      res.writeHead(answer.status, headers);
      res.end(Buffer.from(await answer.arrayBuffer()));
    });
  });
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
  appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
}, 30_000);
afterAll(() => {
  app?.close();
  hibercast?.stop();
});

/** The text deltas of a UI message stream, read until it ends (or `until` deltas, then stop reading). */
async function deltas(chunks: ReadableStream<UIMessageChunk>, until = Infinity): Promise<{ text: string[]; ended: boolean }> {
  const reader = chunks.getReader();
  const text: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { text, ended: true };
    if (value.type === "text-delta") text.push(value.delta);
    if (text.length >= until) {
      await reader.cancel().catch(() => {});
      return { text, ended: false };
    }
  }
}

const question: UIMessage[] = [{ id: "q1", role: "user", parts: [{ type: "text", text: "tell me twenty words" }] }];

it("a chat whose connection drops mid-answer reconnects and gets the whole answer once; a finished answer replays from the start", async () => {
  const transport = createDurableChatTransport({ api: `${appUrl}/api/chat` });
  const chatId = `c${Date.now().toString(36)}`;
  const lost = new AbortController();
  const first = await transport.sendMessages({ trigger: "submit-message", chatId, messageId: undefined, messages: question, abortSignal: lost.signal });
  const partial = await deltas(first, 5);
  lost.abort(); // the page lost its connection after 5 words
  expect(partial.text).toEqual(WORDS.slice(0, 5));

  const resumed = await transport.reconnectToStream({ chatId });
  expect(resumed).not.toBeNull();
  const whole = await deltas(resumed!);
  expect(whole).toEqual({ text: WORDS, ended: true });

  // Later (a reload after the answer finished): the whole answer again, from the start, and done.
  const replay = await deltas((await transport.reconnectToStream({ chatId }))!);
  expect(replay).toEqual({ text: WORDS, ended: true });
  // A chat with no answer stream: nothing to resume.
  expect(await transport.reconnectToStream({ chatId: "never-asked" })).toBeNull();
}, 30_000);
