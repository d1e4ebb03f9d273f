// `npm run latency -- [N] [M] [IN_FLIGHT]`: publish -> delivery latency with N subscribers on one
// channel, M publishes over HTTP with IN_FLIGHT in flight (default 1: a publisher that sends one
// message at a time), on workerd itself, for the three ways a channel reaches its sockets: the
// room's own sockets, a sharded channel's edges (shards: 4), and `/v1/ws` connections (every
// subscriber its own multiplexed connection). Prints p50/p99/max per shape and messages/s.
// Defaults: 1000 subscribers, 50 publishes. Everything stays on 127.0.0.1.
import WebSocket from "ws";
import { serveOnWorkerd } from "./serve-workerd.mjs";

const [N = 1000, M = 50, IN_FLIGHT = 1] = process.argv.slice(2).map(Number);
const KEY = "latency-test-publish-key";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hardStop = setTimeout(() => (console.error("latency: hard stop reached"), process.exit(2)), 280_000);
hardStop.unref();

const server = await serveOnWorkerd({ PUBLISH_KEY: KEY, CHANNEL_OPTIONS: JSON.stringify([{ match: "sharded-*", shards: 4 }]) }, { logs: process.env.LOGS ? "inherit" : "ignore" });
const ws = server.url.replace(/^http/, "ws");

/** One subscriber: its socket and the time each seq arrived (ms, this process's clock). */
function subscriber(url, subscribe) {
  return new Promise((resolve, reject) => {
    const me = { socket: new WebSocket(url, { perMessageDeflate: false }), seen: new Map(), ready: false };
    const handle = (f) => {
      if (f.t === "batch") return f.f.forEach(handle);
      if (f.t === "welcome" && subscribe === undefined) (me.ready = true), resolve(me);
      if (f.t === "welcome" && subscribe !== undefined) me.socket.send(JSON.stringify(subscribe));
      if (f.t === "subscribed") (me.ready = true), resolve(me);
      if (f.t === "msg" && !me.seen.has(f.d.i)) me.seen.set(f.d.i, performance.now() - f.d.at + performance.timeOrigin);
    };
    me.socket.on("message", (raw) => handle(JSON.parse(raw.toString())));
    me.socket.on("error", reject);
  });
}

async function connectAll(n, make) {
  const subs = [];
  for (let i = 0; i < n; i += 200) subs.push(...(await Promise.all(Array.from({ length: Math.min(200, n - i) }, make))));
  return subs;
}

async function publishAll(channel) {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let i = next++; i < M; i = next++) {
        const res = await fetch(`${server.url}/v1/channels/${channel}/messages`, {
          method: "POST",
          headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
          body: JSON.stringify({ event: "tick", data: { i, at: performance.timeOrigin + performance.now() } }),
        });
        if (!res.ok) throw new Error(`publish ${i}: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
      }
    }),
  );
  return t0;
}

async function measure(shape, channel, make) {
  const subs = await connectAll(N, make);
  await sleep(300);
  const t0 = await publishAll(channel);
  const deadline = Date.now() + 30_000;
  while (subs.some((s) => s.seen.size < M) && Date.now() < deadline) await sleep(20);
  const lat = subs.flatMap((s) => [...s.seen.values()]).sort((a, b) => a - b);
  const lost = N * M - lat.length;
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]?.toFixed(1);
  console.log(`${shape.padEnd(18)} N=${N} M=${M} in_flight=${IN_FLIGHT}  p50 ${q(0.5)} ms  p99 ${q(0.99)} ms  max ${lat.at(-1)?.toFixed(1)} ms  lost ${lost}  (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  for (const s of subs) s.socket.terminate();
  await sleep(500);
}

try {
  const stamp = Date.now().toString(36);
  await measure("room", `room-${stamp}`, () => subscriber(`${ws}/v1/channels/room-${stamp}/ws?batch=1`));
  await measure("edges (shards: 4)", `sharded-${stamp}`, () => subscriber(`${ws}/v1/channels/sharded-${stamp}/ws?batch=1`));
  await measure("/v1/ws", `mux-${stamp}`, () => subscriber(`${ws}/v1/ws`, { t: "sub", ch: `mux-${stamp}` }));
} finally {
  await server.stop();
}
process.exit(0);
