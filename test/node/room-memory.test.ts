// A replay goes out a page at a time (DESIGN v1.3 "Bounded memory"): sockets that ask for the
// whole of a big log and never read cannot make a room hold it once per socket, and a reader
// beside them keeps receiving. On workerd directly, as production runs it; the room's memory is
// the server process's. 0.3.0 queued every replay in full: 8 × 60 MB here came to ~800 MB.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import WebSocket from "ws";
import { connect, subscribe } from "../../src/client/index";
import { createPublisher } from "../../src/client/publisher";
import { serveOnWorkerd } from "../../scripts/serve-workerd.mjs";
import { channelName, sleep, until } from "./helpers";

const KEY = "room-memory-test-publish-key";
let server: Awaited<ReturnType<typeof serveOnWorkerd>>;
beforeAll(async () => {
  // Room for the live messages beside the 1000 big ones, so `since=0` stays servable.
  server = await serveOnWorkerd({ PUBLISH_KEY: KEY, LOG_MAX_MESSAGES: "1100" });
}, 30_000);
afterAll(() => server?.stop());

/** The server process's resident memory, in MB. */
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, "utf8"))![1]) / 1024;

it("8 sockets that never read a 60 MB replay leave the room's memory bounded; a reader beside them keeps receiving, and the SDK reads the whole replay page by page (one socket, and /v1/ws)", async () => {
  const ch = channelName("big");
  const pub = createPublisher({ url: server.url, key: KEY });
  const blob = "x".repeat(60_000);
  for (let i = 0; i < 1000; i += 20) await Promise.all(Array.from({ length: 20 }, (_, k) => pub.publish(ch, "big", { i: i + k, blob })));
  const wsUrl = `${server.url.replace("http", "ws")}/v1/channels/${ch}/ws`;

  const reader = new WebSocket(wsUrl);
  const live: number[] = [];
  reader.on("message", (d) => {
    const f = JSON.parse(String(d)) as { t: string; e?: string; d?: { s: number } };
    if (f.t === "msg" && f.e === "live") live.push(f.d!.s);
  });
  await new Promise((r) => reader.on("open", r));
  const before = rssMb();

  // Each takes its welcome and a frame or two, then stops reading (the TCP window closes).
  const opened = Date.now();
  const stuck = Array.from({ length: 8 }, () => {
    const ws = new WebSocket(`${wsUrl}?since=0`);
    const frames: { t: string; seq?: number; close?: number }[] = [];
    ws.on("message", (d) => {
      frames.push(JSON.parse(String(d)));
      if (frames.length === 2) (ws as unknown as { _socket: { pause(): void } })._socket.pause();
    });
    const closed = new Promise<number>((r) => ws.on("close", (code) => r(code)));
    return Object.assign(ws, { frames, closed });
  });
  await until(() => stuck.every((ws) => ws.readyState === WebSocket.OPEN), 10_000, "the stuck sockets to open");
  for (let s = 0; s < 50; s++) {
    await pub.publish(ch, "live", { s });
    await sleep(100); // 10 a second
  }
  await until(() => live.length === 50, 10_000, "the reader to get every live message");
  const after = rssMb();
  console.log(`room memory: ${before.toFixed(1)} MB before the 8 replays, ${after.toFixed(1)} MB after 5 s of them`);
  expect(live).toEqual(Array.from({ length: 50 }, (_, s) => s));
  // One page each (about 1 MiB) is what they may cost; 0.3.0 queued their 480 MB.
  expect(after - before).toBeLessThan(40);

  // A client that reads gets all 1050 messages once, in order, across 60 pages and the
  // live messages published during its replay.
  const seqs: number[] = [];
  const sdk = subscribe({ url: server.url, channel: ch, since: { seq: 0, epoch: null } });
  sdk.on("big", (_d, m) => void seqs.push(m.seq));
  sdk.on("live", (_d, m) => void seqs.push(m.seq));
  await sleep(200);
  await pub.publish(ch, "live", { s: 50 });
  await until(() => seqs.length === 1051, 60_000, "the SDK to read the whole log");
  expect(seqs).toEqual(Array.from({ length: 1051 }, (_, i) => i + 1));
  sdk.close();

  // The same over a multiplexed connection (`/v1/ws`, served by a connection edge).
  const muxSeqs: number[] = [];
  const conn = connect({ url: server.url });
  const muxSub = conn.subscribe(ch, { since: { seq: 0, epoch: null } });
  muxSub.on("big", (_d, m) => void muxSeqs.push(m.seq));
  muxSub.on("live", (_d, m) => void muxSeqs.push(m.seq));
  await until(() => muxSeqs.length === 1051, 60_000, "the multiplexed SDK to read the whole log");
  expect(muxSeqs).toEqual(Array.from({ length: 1051 }, (_, i) => i + 1));
  conn.close();

  // A page not asked past in 30 s ends its socket: reading again, it gets the rest of its one
  // page, the `more`, and the close (4503: resume from the last seq it got).
  await sleep(Math.max(0, opened + 31_000 - Date.now()));
  const slow = stuck[0]!;
  (slow as unknown as { _socket: { resume(): void } })._socket.resume();
  expect(await slow.closed).toBe(4503);
  const msgs = slow.frames.filter((f) => f.t === "msg");
  expect(msgs.map((f) => f.seq)).toEqual(Array.from({ length: 17 }, (_, i) => i + 1));
  expect(slow.frames.slice(-2)).toMatchObject([{ t: "more", seq: 17 }, { t: "err", code: "unavailable", close: 4503 }]);
  for (const ws of stuck) ws.terminate();
  reader.close();
}, 180_000);
