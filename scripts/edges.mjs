// `npm run edges -- chaos [N] [M] [K]`: a sharded channel on workerd itself (no dev proxy),
//   N raw WebSocket subscribers (batch frames, README resume logic) through a TCP proxy that cuts
//   2% of connections every 150 ms (env CUT=0.005 for 0.5%) while M publishes go out; checks every subscriber got 1..M
//   once, in order, and counts resets. Defaults: 8000 subscribers, 500 publishes, K=8.
// `npm run edges -- cost [N] [M]`: CPU of the workerd process per delivery, unsharded against
//   K=8 at the same N, and per publish as a function of K (one subscriber per edge).
// Everything stays on 127.0.0.1; every phase has a time cap and the run stops by itself.
import net from "node:net";
import WebSocket from "ws";
import { cpuMs, serveOnWorkerd } from "./serve-workerd.mjs";

const KEY = "edges-test-publish-key";
const hardStop = setTimeout(() => (console.error("edges: hard stop reached"), process.exit(2)), 540_000);
hardStop.unref();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const [mode = "chaos", ...args] = process.argv.slice(2);
/** The share of connections reset every 150 ms (env CUT; 2% by default). */
const CUT = Number(process.env.CUT ?? 0.02);

// The TCP proxy runs in a process of its own: one process may hold 20,000 file handles here, and
// 8,000 subscribers take one each on the client side and two each in the proxy.
if (mode === "proxy") {
  const p = await proxy(args[0]);
  let cutting = null;
  let cut = 0;
  console.log(p.url);
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (line) => {
    if (line.startsWith("cut-on")) cutting = setInterval(() => (cut += p.cut(CUT)), 150);
    if (line.startsWith("cut-off")) (clearInterval(cutting), console.log(`cut ${cut}`));
    if (line.startsWith("exit")) (p.close(), process.exit(0));
  });
  await new Promise(() => {});
}

/** The proxy in a child process: its URL, and cuts switched on and off through its stdin. */
async function proxyProcess(target) {
  const { spawn } = await import("node:child_process");
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, "proxy", target], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = [];
  let wake = null;
  child.stdout.setEncoding("utf8").on("data", (d) => (lines.push(...d.trim().split("\n")), wake?.()));
  const nextLine = async () => {
    while (lines.length === 0) await new Promise((r) => (wake = r));
    return lines.shift();
  };
  const url = await nextLine();
  return {
    url,
    start: () => child.stdin.write("cut-on\n"),
    stop: async () => (child.stdin.write("cut-off\n"), Number((await nextLine()).split(" ")[1])),
    close: () => child.stdin.write("exit\n"),
  };
}

const rules = [1, 2, 4, 8, 16].map((k) => ({ match: `k${k}-*`, shards: k }));
const server = await serveOnWorkerd({ PUBLISH_KEY: KEY, CHANNEL_OPTIONS: JSON.stringify(rules), LOG_MAX_MESSAGES: "1000" });
const serverCpuMs = () => cpuMs(server.pid);

/** A TCP proxy that can reset a fraction of its connections. */
function proxy(target) {
  const pairs = new Set();
  const srv = net.createServer((c) => {
    const u = net.connect(Number(new URL(target).port), "127.0.0.1");
    const pair = [c, u];
    pairs.add(pair);
    c.pipe(u);
    u.pipe(c);
    for (const s of pair) {
      s.on("error", () => pair.forEach((x) => x.destroy()));
      s.on("close", () => (pairs.delete(pair), pair.forEach((x) => x.destroy())));
    }
  });
  return new Promise((resolve) =>
    srv.listen(0, "127.0.0.1", () =>
      resolve({
        url: `http://127.0.0.1:${srv.address().port}`,
        cut(fraction) {
          let n = 0;
          for (const pair of [...pairs]) if (Math.random() < fraction) (pair.forEach((s) => s.resetAndDestroy()), pairs.delete(pair), n++);
          return n;
        },
        close: () => (pairs.forEach((p) => p.forEach((s) => s.destroy())), srv.close()),
      }),
    ),
  );
}

/** A subscriber as the README writes one: cursor from welcome/reset/msg, resume on every drop. */
function subscriber(base, channel, stats) {
  const me = { seqs: [], resets: 0, open: false, closed: false, cursor: { since: 0, epoch: null } };
  const connect = () => {
    if (me.closed) return;
    const q = `batch=1&since=${me.cursor.since}` + (me.cursor.epoch ? `&epoch=${me.cursor.epoch}` : "");
    const ws = new WebSocket(`${base.replace("http", "ws")}/v1/channels/${channel}/ws?${q}`);
    me.ws = ws;
    const handle = (f) => {
      if (f.t === "batch") return f.f.forEach(handle);
      if (f.t === "welcome") (me.cursor.epoch = f.epoch), (me.open = true);
      if (f.t === "reset") (me.cursor = { since: f.seq, epoch: f.epoch }), me.resets++;
      if (f.t === "msg" && f.seq > me.cursor.since) (me.seqs.push(f.seq), (me.cursor.since = f.seq), stats.delivered++);
    };
    ws.on("message", (raw) => handle(JSON.parse(raw.toString())));
    ws.on("error", () => {});
    ws.on("close", () => {
      me.open = false;
      if (!me.closed) (stats.reconnects++, setTimeout(connect, 20 + Math.random() * 200));
    });
  };
  connect();
  return me;
}

const publishStats = { retries: 0 };
async function publishAll(channel, m, inFlight = 4) {
  let next = 1;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let i = next++; i <= m; i = next++) {
        // As an origin would: a dropped request is retried with the same id (never published twice).
        for (let attempt = 1; ; attempt++) {
          try {
            const res = await fetch(`${server.url}/v1/channels/${channel}/messages`, {
              method: "POST",
              headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
              body: JSON.stringify({ event: "tick", data: i, id: `p-${i}` }),
            });
            if (!res.ok) throw new Error(`publish ${i}: ${res.status}`);
            await res.arrayBuffer();
            break;
          } catch (err) {
            if (attempt >= 5) throw err;
            publishStats.retries++;
            await sleep(100 * attempt);
          }
        }
        if (i % 20 === 0) await sleep(10);
      }
    }),
  );
}

async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function subscribeAll(base, channel, n, stats) {
  const subs = [];
  for (let i = 0; i < n; i += 200) {
    for (let j = i; j < Math.min(n, i + 200); j++) subs.push(subscriber(base, channel, stats));
    await until(() => subs.every((s) => s.open), 60_000, `${subs.length} subscribers to connect`);
  }
  return subs;
}

try {
  if (mode === "chaos") {
    const [N = 8000, M = 500, K = 8] = args.map(Number);
    const p = await proxyProcess(server.url);
    const channel = `k${K}-chaos`;
    const stats = { delivered: 0, reconnects: 0 };
    const subs = await subscribeAll(p.url, channel, N, stats);
    const before = (await (await fetch(`${server.url}/v1/channels/${channel}`)).json());
    console.log(`connected ${N} subscribers over ${before.edges ?? 1} edges`);
    p.start();
    const started = Date.now();
    await publishAll(channel, M);
    await until(() => subs.every((s) => s.seqs.length >= M), 240_000, "every subscriber to catch up");
    const cut = await p.stop();
    const exact = subs.filter((s) => s.seqs.length === M && s.seqs.every((q, i) => q === i + 1)).length;
    const resets = subs.reduce((a, s) => a + s.resets, 0);
    console.log(JSON.stringify({ N, M, K, cut, reconnects: stats.reconnects, resets, exact, deliveries: stats.delivered, publishRetries: publishStats.retries, seconds: (Date.now() - started) / 1000 }));
    subs.forEach((s) => ((s.closed = true), s.ws.close()));
    p.close();
    if (exact !== N || resets !== 0) process.exitCode = 1;
  } else if (mode === "cost") {
    const [N = 2000, M = 200] = args.map(Number);
    for (const K of [1, 8]) {
      const stats = { delivered: 0, reconnects: 0 };
      const channel = `k${K}-cost-${N}`;
      const subs = await subscribeAll(server.url, channel, N, stats);
      await sleep(500);
      const cpu0 = serverCpuMs();
      await publishAll(channel, M);
      await until(() => subs.every((s) => s.seqs.length >= M), 120_000, "deliveries");
      const cpu = serverCpuMs() - cpu0;
      console.log(JSON.stringify({ what: "per delivery", K, N, M, cpuMs: cpu, usPerDelivery: +((cpu * 1000) / (N * M)).toFixed(2) }));
      subs.forEach((s) => ((s.closed = true), s.ws.close()));
      await sleep(1000);
    }
    for (const K of [1, 2, 4, 8, 16]) {
      const stats = { delivered: 0, reconnects: 0 };
      const channel = `k${K}-hub`;
      // The same 16 subscribers for every K, spread over its edges: what a publish costs the hub,
      // its pushes and the edges, per K.
      const subs = Array.from({ length: 16 }, () => subscriber(server.url, channel, stats));
      await until(() => subs.every((s) => s.open), 30_000, "hub subscribers");
      const edges = (await (await fetch(`${server.url}/v1/channels/${channel}`)).json()).edges ?? 1;
      await sleep(500);
      const cpu0 = serverCpuMs();
      await publishAll(channel, M * 2, 1);
      await until(() => subs.every((s) => s.seqs.length >= M * 2), 60_000, "hub deliveries");
      const cpu = serverCpuMs() - cpu0;
      console.log(JSON.stringify({ what: "per publish", K, edges, subscribers: subs.length, publishes: M * 2, usPerPublish: +((cpu * 1000) / (M * 2)).toFixed(1) }));
      subs.forEach((s) => ((s.closed = true), s.ws.close()));
    }
  }
} finally {
  await server.stop();
}
