// `npm run load`: a bounded load test against the worker served locally on workerd.
//   A: 5,000 subscribers on one channel.   B: 50 channels × 100 subscribers.
// Prints delivered msg/s, publish→delivery p50/p99, lost deliveries and the server's peak RSS.
// Everything stays on 127.0.0.1; every phase has a time cap and the whole run stops by itself.
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { serveOnWorkerd } from "./serve-workerd.mjs";

const KEY = "load-test-publish-key";
const HARD_STOP_MS = 280_000;
const hardStop = setTimeout(() => {
  console.error("load: hard stop reached");
  process.exit(2);
}, HARD_STOP_MS);
hardStop.unref();


const scenarios = [
  { name: "1 channel x 5000 subscribers", channels: 1, perChannel: Number(process.env.LOAD_N ?? 5000), publishesPerChannel: 40 },
  { name: "50 channels x 100 subscribers", channels: 50, perChannel: 100, publishesPerChannel: 20 },
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** Peak RSS (VmHWM) of the workerd process. */
function serverPeakMb() {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

async function connectAll(base, channel, count, onFrame) {
  const sockets = [];
  for (let done = 0; done < count; ) {
    const batch = Math.min(200, count - done);
    await Promise.all(
      Array.from({ length: batch }, () => new Promise((resolve, reject) => {
        const ws = new WebSocket(`${base.replace("http", "ws")}/v1/channels/${channel}/ws`);
        const timer = setTimeout(() => reject(new Error(`connect timeout on ${channel} after ${done} connected`)), 20_000);
        ws.on("message", (raw) => {
          const f = JSON.parse(raw.toString());
          if (f.t === "welcome") {
            clearTimeout(timer);
            resolve();
          } else onFrame(f);
        });
        ws.on("error", reject);
        sockets.push(ws);
      })),
    );
    done += batch;
  }
  return sockets;
}

async function run(base, s) {
  const latencies = [];
  let delivered = 0;
  let lastDelivery = 0;
  const onFrame = (f) => {
    if (f.t !== "msg") return;
    const now = Date.now();
    latencies.push(now - f.d.ts);
    delivered++;
    lastDelivery = now;
  };
  const channels = Array.from({ length: s.channels }, (_, i) => `load-${Date.now().toString(36)}-${i}`);
  const t0 = Date.now();
  const sockets = [];
  for (const ch of channels) sockets.push(...(await connectAll(base, ch, s.perChannel, onFrame)));
  const connectS = (Date.now() - t0) / 1000;
  const idleMb = serverPeakMb();

  // Publish: each channel gets `publishesPerChannel` messages, 8 requests in flight.
  const jobs = [];
  for (let i = 0; i < s.publishesPerChannel; i++) for (const ch of channels) jobs.push(ch);
  const start = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < jobs.length) {
        const ch = jobs[next++];
        const res = await fetch(`${base}/v1/channels/${ch}/messages`, {
          method: "POST",
          headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
          body: JSON.stringify({ event: "load", data: { ts: Date.now(), pad: "x".repeat(150) } }),
        });
        if (!res.ok) throw new Error(`publish failed: ${res.status} ${await res.text()}`);
      }
    }),
  );
  const expected = s.channels * s.perChannel * s.publishesPerChannel;
  const drainDeadline = Date.now() + 60_000;
  while (delivered < expected && Date.now() < drainDeadline) await sleep(50);
  await sleep(200); // late or duplicate frames would show up here
  latencies.sort((a, b) => a - b);
  for (const ws of sockets) ws.terminate();
  return {
    scenario: s.name,
    subscribers: s.channels * s.perChannel,
    publishes: jobs.length,
    connect_s: connectS.toFixed(1),
    delivered_msg_per_s: Math.round(delivered / ((lastDelivery - start) / 1000)),
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
    lost: expected - delivered,
    server_rss_idle_MB: Math.round(idleMb),
    server_peak_rss_MB: Math.round(serverPeakMb()),
  };
}

const server = await serveOnWorkerd({ PUBLISH_KEY: KEY, JWT_SECRET: "load-test-jwt-secret-0123456789abcdef" });
const base = server.url;
const results = [];
try {
  for (const s of scenarios) {
    results.push(await run(base, s));
    console.error(`load: ${s.name} done`);
  }
} finally {
  await server.stop();
}
console.table(results);
console.log(JSON.stringify(results));
process.exit(results.every((r) => r.lost === 0) ? 0 : 1);
