// `npm run pusher-users`: what Pusher users cost on the worker served on workerd. N connections
// (default 500, USERS_N) each sign in and subscribe to their user channel, as pusher-js does;
// another N each join one presence channel instead. For each: the time it took and the server's
// memory per connection. Then sendToUser: events to one user with 5 connections, and to N users
// one each, answer→delivery latency. Everything stays on 127.0.0.1; the run stops by itself.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { serveOnWorkerd } from "./serve-workerd.mjs";

const N = Number(process.env.USERS_N ?? 500);
const APP = { id: "77", key: "users-bench-key", secret: "users-bench-secret" };
setTimeout(() => {
  console.error("pusher-users: hard stop reached");
  process.exit(2);
}, 240_000).unref();

const sign = (text) => createHmac("sha256", APP.secret).update(text).digest("hex");
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const rssMb = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;

/** A raw Pusher client: connects, and resolves on the frames it waits for. */
function client(base) {
  const ws = new WebSocket(`${base.replace("http", "ws")}/app/${APP.key}?protocol=7`);
  const waiting = [];
  const c = { ws, socketId: null, onEvent: null };
  ws.on("message", (raw) => {
    const f = JSON.parse(raw.toString());
    if (f.event === "pusher:connection_established") c.socketId = JSON.parse(f.data).socket_id;
    c.onEvent?.(f);
    for (const w of [...waiting]) if (w.test(f)) waiting.splice(waiting.indexOf(w), 1), w.resolve(f);
  });
  c.until = (test) => new Promise((resolve) => waiting.push({ test, resolve }));
  c.ready = c.until((f) => f.event === "pusher:connection_established");
  return c;
}

async function signIn(base, id) {
  const c = client(base);
  await c.ready;
  const userData = JSON.stringify({ id });
  c.ws.send(JSON.stringify({ event: "pusher:signin", data: { auth: `${APP.key}:${sign(`${c.socketId}::user::${userData}`)}`, user_data: userData } }));
  await c.until((f) => f.event === "pusher:signin_success");
  c.ws.send(JSON.stringify({ event: "pusher:subscribe", data: { auth: "", channel: `#server-to-user-${id}` } }));
  await c.until((f) => f.event === "pusher_internal:subscription_succeeded");
  return c;
}

async function joinPresence(base, channel, id) {
  const c = client(base);
  await c.ready;
  const channelData = JSON.stringify({ user_id: id });
  c.ws.send(JSON.stringify({ event: "pusher:subscribe", data: { channel, channel_data: channelData, auth: `${APP.key}:${sign(`${c.socketId}:${channel}:${channelData}`)}` } }));
  await c.until((f) => f.event === "pusher_internal:subscription_succeeded");
  return c;
}

/** Opens n connections with `open`, 50 at a time: seconds taken and server MB per connection. */
async function phase(server, n, open) {
  const before = rssMb(server.pid);
  const t0 = performance.now();
  const opened = [];
  for (let i = 0; i < n; i += 50) opened.push(...(await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => open(i + k)))));
  const s = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 500));
  return { opened, s, kbPer: ((rssMb(server.pid) - before) * 1024) / n };
}

/** POSTs a signed Pusher HTTP API event (what the `pusher` SDK's sendToUser does). */
async function sendToUser(base, user, name, data) {
  const body = JSON.stringify({ name, data: JSON.stringify(data), channels: [`#server-to-user-${user}`] });
  const params = { auth_key: APP.key, auth_timestamp: String(Math.floor(Date.now() / 1000)), auth_version: "1.0", body_md5: (await import("node:crypto")).createHash("md5").update(body).digest("hex") };
  const query = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join("&");
  const path = `/apps/${APP.id}/events`;
  const url = `${base}${path}?${query}&auth_signature=${sign(`POST\n${path}\n${query}`)}`;
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
}

const server = await serveOnWorkerd({ PUBLISH_KEY: "users-bench-publish-key", JWT_SECRET: "users-bench-jwt-secret-0123456789", PUSHER_APP_ID: APP.id, PUSHER_KEY: APP.key, PUSHER_SECRET: APP.secret, CONNECTION_EDGES: "4" });
try {
  const signedIn = await phase(server, N, (i) => signIn(server.url, `user${i}`));
  // Pusher presence channels hold at most 100 members: 100 per channel.
  const presence = await phase(server, N, (i) => joinPresence(server.url, `presence-bench-${Math.floor(i / 100)}`, `member${i}`));
  console.log(`pusher-users: ${N} connections each`);
  console.log(`sign-in + user channel: ${signedIn.s.toFixed(2)} s, ${signedIn.kbPer.toFixed(1)} KB per connection`);
  console.log(`presence subscription:  ${presence.s.toFixed(2)} s, ${presence.kbPer.toFixed(1)} KB per connection`);
  // sendToUser to one user with 5 connections (the first user's, plus 4 more).
  const five = [signedIn.opened[0], ...(await Promise.all([1, 2, 3, 4].map(() => signIn(server.url, "user0"))))];
  const lat = [];
  for (let i = 0; i < 100; i++) {
    const t = performance.now();
    const got = Promise.all(five.map((c) => c.until((f) => f.event === "notice" && JSON.parse(f.data).i === i)));
    await sendToUser(server.url, "user0", "notice", { i });
    await got;
    lat.push(performance.now() - t);
  }
  lat.sort((a, b) => a - b);
  console.log(`sendToUser, one user with 5 connections, 100 events one after another: p50 ${percentile(lat, 50).toFixed(1)} ms, p99 ${percentile(lat, 99).toFixed(1)} ms (request to the last of the 5 deliveries)`);
  const t0 = performance.now();
  const all = Promise.all(signedIn.opened.slice(0, Math.min(N, 200)).map((c, i) => c.until((f) => f.event === "notice" && JSON.parse(f.data).to === i)));
  await Promise.all(Array.from({ length: Math.min(N, 200) }, (_, i) => sendToUser(server.url, `user${i}`, "notice", { to: i })));
  await all;
  console.log(`sendToUser to ${Math.min(N, 200)} users at once, one connection each: ${(performance.now() - t0).toFixed(0)} ms until every one got its event`);
} finally {
  await server.stop();
}
process.exit(0);
