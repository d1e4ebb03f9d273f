// `npm run appends`: what streaming an answer costs, with appends against republishing the whole
// text on every token. One channel with N WebSocket subscribers (default 1000, APPENDS_N) on the
// worker served on workerd; an answer of T tokens (default 300, APPENDS_TOKENS) of ~5 characters,
// written A at a time (default 1: one answer, token after token as a model yields them; 4: four
// answers growing at once, APPENDS_PARALLEL). Prints appends/s, publish→delivery p50/p99, the
// bytes every subscriber received, and checks that each rebuilt every answer exactly. Then the
// same answers as whole-text republishes (the workaround appends replace), for the byte count.
// Everything stays on 127.0.0.1; each phase has a time cap and the run stops by itself.
import WebSocket from "ws";
import { serveOnWorkerd } from "./serve-workerd.mjs";

const KEY = "appends-bench-publish-key";
const N = Number(process.env.APPENDS_N ?? 1000);
const TOKENS = Number(process.env.APPENDS_TOKENS ?? 300);
const PARALLEL = Number(process.env.APPENDS_PARALLEL ?? 1);
setTimeout(() => {
  console.error("appends: hard stop reached");
  process.exit(2);
}, 280_000).unref();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const tokenAt = (i) => ` w${String(i).padStart(3, "0")}`;

/** N subscribers that rebuild each message's text from msg and append frames (batches unpacked). */
async function subscribers(base, channel) {
  const views = [];
  let bytes = 0;
  const latencies = [];
  for (let done = 0; done < N; ) {
    const batch = Math.min(200, N - done);
    await Promise.all(
      Array.from({ length: batch }, () => new Promise((resolve, reject) => {
        const ws = new WebSocket(`${base.replace("http", "ws")}/v1/channels/${channel}/ws?batch=1`);
        const texts = new Map();
        views.push({ ws, texts });
        const timer = setTimeout(() => reject(new Error("connect timeout")), 20_000);
        // Every subscriber counts its bytes; one in ten also rebuilds the texts, so the client's
        // own parsing does not become what is measured.
        const tracked = views.length % 10 === 1;
        if (!tracked) texts.untracked = true;
        let welcomed = false;
        const take = (f) => {
          if (f.t === "welcome") {
            welcomed = true;
            clearTimeout(timer);
            return resolve();
          }
          if (f.t === "batch") return f.f.forEach(take);
          if (f.t === "msg") {
            texts.set(f.id, f.d);
            // A republish: its id is the answer's and the token's index.
            const [, answer, i] = /^(answer-\d+)-(\d+)$/.exec(f.id) ?? [];
            const sent = answer === undefined ? undefined : sentAt.get(`${answer}:${i.padStart(3, "0")}`);
            if (sent !== undefined) latencies.push(performance.now() - sent);
          }
          if (f.t === "append") {
            texts.set(f.id, (texts.get(f.id) ?? "") + f.d);
            // The frame's last token names the append (joined frames end with the newest one).
            const sent = sentAt.get(`${f.id}:${/w(\d+)$/.exec(f.d)?.[1]}`);
            if (sent !== undefined) latencies.push(performance.now() - sent);
          }
        };
        ws.on("message", (raw) => {
          bytes += raw.length;
          if (tracked || !welcomed) take(JSON.parse(raw.toString()));
        });
        ws.on("error", reject);
      })),
    );
    done += batch;
  }
  return { views, bytes: () => bytes, latencies };
}

const sentAt = new Map();

async function post(base, channel, body) {
  const res = await fetch(`${base}/v1/channels/${channel}/messages`, { method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return res.json();
}

async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function run(base, mode) {
  const channel = `appends-${mode}-${Date.now().toString(36)}`;
  const subs = await subscribers(base, channel);
  const answers = Array.from({ length: PARALLEL }, (_, a) => `answer-${a}`);
  const whole = "Answer:" + Array.from({ length: TOKENS }, (_, i) => tokenAt(i)).join("");
  for (const id of answers) await post(base, channel, { event: "token", data: "Answer:", id });
  await sleep(200);
  const before = subs.bytes();
  const t0 = performance.now();
  await Promise.all(
    answers.map(async (id) => {
      let text = "Answer:";
      for (let i = 0; i < TOKENS; i++) {
        text += tokenAt(i);
        sentAt.set(`${id}:${String(i).padStart(3, "0")}`, performance.now());
        if (mode === "append") await post(base, channel, { append: id, data: tokenAt(i), id: `${id}-${i}` });
        else await post(base, channel, { event: "token", data: text, id: `${id}-${i}` });
      }
    }),
  );
  const writeS = (performance.now() - t0) / 1000;
  const tracked = subs.views.filter((v) => !v.texts.untracked);
  await until(() => tracked.every((v) => answers.every((id) => mode === "append" ? v.texts.get(id) === whole : v.texts.get(`${id}-${TOKENS - 1}`) === whole)), 60_000, "every tracked subscriber to rebuild every answer");
  await sleep(300);
  const exact = `${tracked.filter((v) => answers.every((id) => (mode === "append" ? v.texts.get(id) : v.texts.get(`${id}-${TOKENS - 1}`)) === whole)).length}/${tracked.length}`;
  const received = subs.bytes() - before;
  subs.views.forEach((v) => v.ws.close());
  const sorted = subs.latencies.sort((a, b) => a - b);
  sentAt.clear();
  return { mode, writes: TOKENS * PARALLEL, per_s: (TOKENS * PARALLEL) / writeS, p50: percentile(sorted, 50), p99: percentile(sorted, 99), bytes_per_subscriber: received / N, exact };
}

const server = await serveOnWorkerd({ PUBLISH_KEY: KEY, JWT_SECRET: "appends-bench-jwt-secret-0123456789", CLIENT_PUB_PER_S: "1000" });
try {
  console.log(`appends: ${N} subscribers, ${PARALLEL} answer(s) of ${TOKENS} tokens`);
  const rows = [await run(server.url, "append"), await run(server.url, "republish")];
  console.log("mode        writes  writes/s  p50_ms  p99_ms  KB/subscriber  exact");
  for (const r of rows) console.log(`${r.mode.padEnd(10)} ${String(r.writes).padStart(7)} ${r.per_s.toFixed(0).padStart(9)} ${r.p50.toFixed(1).padStart(7)} ${r.p99.toFixed(1).padStart(7)} ${(r.bytes_per_subscriber / 1024).toFixed(1).padStart(14)} ${r.exact}`);
  console.log(`bytes on the wire: appends ${((rows[0].bytes_per_subscriber / rows[1].bytes_per_subscriber) * 100).toFixed(1)}% of republishing the whole text`);
} finally {
  await server.stop();
}
process.exit(0);
