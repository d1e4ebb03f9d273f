// The live console page's script, built on the project's own client SDK (bundled into the page
// by scripts/build-console.mjs). It doubles as the SDK's live example.
import { connect, HibercastError, subscribe, type MsgFrame, type MultiplexedConnection, type Subscription } from "../client/index.js";
import { ago, draw, spanOf } from "./chart.js";
import { occupied, render } from "./channels.js";
import { Rates, type Counts } from "./rates.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const KEY_STORAGE = "hibercast.publishKey"; // sessionStorage only: gone when the tab closes
/**
 * The service's base: the folder of this page (`/` for `/` and `/console`; under a host Worker's
 * prefix, `/rt/` for `/rt/` and `/rt/console`), so the page works wherever hibercast is mounted.
 */
const SERVICE = new URL(".", location.href);

const ui = {
  form: $<HTMLFormElement>("connect"),
  channel: $<HTMLInputElement>("channel"),
  token: $<HTMLInputElement>("token"),
  rewind: $<HTMLInputElement>("rewind"),
  connectBtn: $<HTMLButtonElement>("connect-btn"),
  dropBtn: $<HTMLButtonElement>("drop-btn"),
  closeBtn: $<HTMLButtonElement>("close-btn"),
  status: $("status"),
  frames: $<HTMLOListElement>("frames"),
  empty: $("frames-empty"),
  publish: $<HTMLFormElement>("publish"),
  event: $<HTMLInputElement>("event"),
  data: $<HTMLTextAreaElement>("data"),
  key: $<HTMLInputElement>("key"),
  publishResult: $("publish-result"),
  members: $<HTMLUListElement>("members"),
  membersEmpty: $("members-empty"),
  stats: $("stats"),
  refresh: $<HTMLButtonElement>("refresh-btn"),
  liveOf: $("live-of"),
  rateChart: document.getElementById("rate-chart") as unknown as SVGSVGElement,
  rateNow: $("rate-now"),
  rateTop: $("rate-top"),
  subsChart: document.getElementById("subs-chart") as unknown as SVGSVGElement,
  subsNow: $("subs-now"),
  subsTop: $("subs-top"),
  occupied: $<HTMLUListElement>("occupied"),
  occupiedNote: $("occupied-note"),
  occupiedBtn: $<HTMLButtonElement>("occupied-btn"),
};

let sub: Subscription | null = null;
/** Several channels: one multiplexed connection (`GET /v1/ws`) with a subscription each. */
let mux: MultiplexedConnection | null = null;
let watching: string[] = [];
/** Whether the page samples the watched channels' stats (from connecting until closed). */
let sampling = false;
/** Counts up on each connect: a stats answer for channels no longer watched is dropped. */
let generation = 0;
let rates = new Rates();
/** One sample at a time: a slow answer must not land after the next one and draw time backwards. */
let inFlight = false;
let lastSeqBeforeDrop: number | null = null;
/** The epoch the page last heard of (welcome or reset), and whether a reset now would be live. */
let epoch: string | null = null;
let epochBefore: string | null = null;
let live = false;

function setStatus(text: string, kind: "idle" | "ok" | "warn" | "error"): void {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
}

function row(cells: [string, string][], kind: string, li = document.createElement("li")): HTMLLIElement {
  li.replaceChildren();
  li.className = `frame ${kind}`;
  for (const [cls, text] of cells) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text; // textContent, never innerHTML: message data is untrusted
    li.append(span);
  }
  if (li.parentElement === null) ui.frames.prepend(li);
  while (ui.frames.children.length > 500) ui.frames.lastElementChild?.remove();
  ui.empty.hidden = true;
  return li;
}

/** Rows of messages that grow (appends), by channel and seq: each append rewrites its row in place. */
const growing = new Map<string, HTMLLIElement>();

const time = (ts: number) => new Date(ts).toLocaleTimeString();
const notice = (text: string, kind = "notice") => row([["time", time(Date.now())], ["text", text]], kind);

function showMessage(msg: MsgFrame): void {
  const key = `${msg.ch}\n${msg.seq}`;
  // Once an append has arrived the row says so, until the message is done.
  const grown = msg.v !== undefined;
  const li = row(
    [
      ...(watching.length > 1 ? ([["ch", msg.ch]] as [string, string][]) : []),
      ["seq", grown ? `#${msg.seq} (grown to #${msg.v})` : `#${msg.seq}`],
      ...(grown ? ([["grow", msg.done ? "done" : "growing…"]] as [string, string][]) : []),
      ["event", msg.e],
      ["data", JSON.stringify(msg.d)],
      ["time", time(msg.ts)],
    ],
    grown ? `msg ${msg.done ? "grown" : "growing"}` : "msg",
    growing.get(key),
  );
  // A string message may grow: keep its row (at most 100) so the next append updates it.
  if (typeof msg.d === "string" && msg.done !== true) growing.set(key, li);
  else growing.delete(key);
  if (growing.size > 100) growing.delete(growing.keys().next().value!);
}

function renderMembers(): void {
  ui.members.replaceChildren();
  for (const m of sub?.members.values() ?? []) {
    const li = document.createElement("li");
    li.textContent = m.info === null ? m.id : `${m.id} ${JSON.stringify(m.info)}`;
    ui.members.append(li);
  }
  ui.membersEmpty.hidden = ui.members.children.length > 0;
}

/** One sample of every watched channel's stats: a point on each chart, and the first channel's stats as text. */
async function refreshStats(): Promise<void> {
  const channels = watching.length > 0 ? watching : [ui.channel.value.split(",")[0]!.trim()].filter((c) => c !== "");
  if (channels.length === 0 || inFlight) return;
  inFlight = true;
  const headers: Record<string, string> = {};
  const credential = ui.token.value.trim() || ui.key.value.trim();
  if (credential) headers.authorization = `Bearer ${credential}`;
  const asked = generation;
  const t = Date.now();
  try {
    const answers = await Promise.all(
      channels.map(async (channel) => {
        const res = await fetch(new URL(`v1/channels/${encodeURIComponent(channel)}`, SERVICE), { headers });
        return { ok: res.ok, status: res.status, body: await res.json() };
      }),
    );
    if (asked !== generation) return;
    const { ok, status, body } = answers[0]!;
    ui.stats.textContent = ok ? JSON.stringify(body, null, 2) : `${status} ${body.error?.code}: ${body.error?.message}`;
    if (answers.every((a) => a.ok)) {
      rates.add(t, answers.map((a) => a.body as Counts));
      drawCharts();
    }
  } catch {
    if (asked === generation) ui.stats.textContent = "server unreachable";
  } finally {
    inFlight = false;
  }
}

const perSecond = (v: number) => (v >= 10 ? v.toFixed(0) : v.toFixed(1));

function drawCharts(): void {
  const of = watching.length > 1 ? `${watching.length} channels` : (watching[0] ?? "");
  const now = Date.now();
  const span = spanOf(rates.since, now);
  const last = `last ${ago(span)}: now`;
  const [delivered, subscribers] = [rates.now(rates.delivered), rates.now(rates.subscribers)];
  ui.liveOf.textContent = of ? ` · ${of}` : "";
  document.querySelectorAll(".from").forEach((from) => (from.textContent = `${ago(span)} ago`));
  ui.rateNow.textContent = rates.delivered.length > 0 ? `${perSecond(delivered)}/s` : "–";
  ui.subsNow.textContent = rates.subscribers.length > 0 ? String(subscribers) : "–";
  const rateLabel = `Delivered per second on ${of}, ${last} ${perSecond(delivered)}/s (${perSecond(rates.messages)} messages/s)`;
  ui.rateTop.textContent = `${draw(ui.rateChart, rates.delivered, now, span, rateLabel)}/s`;
  ui.subsTop.textContent = String(draw(ui.subsChart, rates.subscribers, now, span, `Subscribers of ${of}, ${last} ${subscribers}`));
}

/** The occupied-channel list as last drawn, so a refresh that changes nothing keeps focus where it is. */
let listed = "";
/** Auto-refresh only while the key lists channels: a wrong key is not retried every few seconds. */
let listing = false;

async function refreshOccupied(): Promise<void> {
  const key = ui.key.value.trim();
  const names = await occupied(SERVICE, key);
  listing = typeof names !== "string";
  const drawn = JSON.stringify([names, watching]);
  if (drawn === listed) return;
  listed = drawn;
  render(ui.occupied, ui.occupiedNote, names, watching, (channel) => {
    ui.channel.value = channel;
    connect_();
  });
}

/** Several channels at once over one socket: a row per message names its channel. */
function watchMany(channels: string[]): void {
  setStatus("connecting…", "warn");
  const m = connect({ url: SERVICE.href, token: ui.token.value.trim() || undefined, backoff: { initialMs: 250, maxMs: 5000 } });
  mux = m;
  const rewind = Number(ui.rewind.value) || undefined;
  let subscribed = 0;
  for (const ch of channels) {
    const s = m.subscribe(ch, { rewind });
    s.on("*", (_data, msg) => showMessage(msg));
    s.connection.on("welcome", () => {
      subscribed++;
      setStatus(`watching ${channels.length} channels over one socket (${Math.min(subscribed, channels.length)} subscribed)`, "ok");
    });
    s.connection.on("reset", (r) => notice(`reset on ${ch}: refetch state, live from #${r.seq} (epoch ${r.epoch})`, "reset"));
    s.connection.on("error", (e) => notice(`${ch}: ${e.code}: ${e.message}`, "error"));
  }
  m.events.on("reconnecting", ({ attempt, delayMs, code }) => {
    subscribed = 0;
    setStatus(`reconnecting (attempt ${attempt}, in ${delayMs} ms, after close ${code})`, "warn");
  });
  m.events.on("welcome", () => {
    if (lastSeqBeforeDrop !== null) notice("reconnected: every channel resumes from its own cursor", "resume");
    lastSeqBeforeDrop = null;
  });
  m.events.on("close", ({ error }) => {
    setStatus(error ? `closed: ${error.code}: ${error.message}` : "closed", error ? "error" : "idle");
    if (mux === m) sampling = false;
    ui.dropBtn.disabled = ui.closeBtn.disabled = true;
  });
  ui.dropBtn.disabled = ui.closeBtn.disabled = false;
  renderMembers();
}

function connect_(): void {
  sub?.close();
  mux?.close();
  sub = mux = null;
  ui.frames.replaceChildren();
  growing.clear();
  ui.empty.hidden = false;
  // Nothing of the previous channel stays on screen.
  ui.stats.textContent = "";
  ui.publishResult.textContent = "";
  delete ui.publishResult.dataset.kind;
  lastSeqBeforeDrop = null;
  epoch = epochBefore = null;
  live = false;
  watching = ui.channel.value.split(",").map((c) => c.trim()).filter((c) => c !== "");
  history.replaceState(null, "", `?channel=${encodeURIComponent(watching.join(","))}`);
  generation++;
  rates = new Rates();
  sampling = true;
  drawCharts();
  void refreshOccupied();
  if (watching.length > 1) return watchMany(watching);
  const channel = watching[0] ?? "";
  const rewind = Number(ui.rewind.value) || undefined;
  setStatus("connecting…", "warn");
  const s = subscribe({ url: SERVICE.href, channel, token: ui.token.value.trim() || undefined, rewind, backoff: { initialMs: 250, maxMs: 5000 } });
  sub = s;
  s.on("*", (_data, msg) => {
    live = true;
    showMessage(msg);
  });
  s.connection.on("welcome", (w) => {
    live = false;
    epochBefore = epoch;
    epoch = w.epoch;
    setStatus(`connected to ${w.ch} · seq ${w.seq} · epoch ${w.epoch}`, "ok");
    if (lastSeqBeforeDrop !== null) {
      const missed = w.seq - lastSeqBeforeDrop;
      notice(missed > 0 ? `resumed after #${lastSeqBeforeDrop}: replaying #${lastSeqBeforeDrop + 1}–#${w.seq}` : `resumed after #${lastSeqBeforeDrop}: nothing missed`, "resume");
      lastSeqBeforeDrop = null;
    }
    void refreshStats();
  });
  s.connection.on("reset", (r) => {
    // A reset on a live connection is a purge; right after a welcome it answers the resume
    // point: a purge while away changed the epoch, otherwise the log no longer covers the gap.
    const why = live || (epochBefore !== null && epochBefore !== r.epoch) ? "the channel was purged" : "the log no longer covers the gap";
    notice(`reset: ${why}; refetch state, live from #${r.seq} (epoch ${r.epoch})`, "reset");
    epoch = r.epoch;
    live = true;
    setStatus(`connected to ${channel} · seq ${r.seq} · epoch ${r.epoch}`, "ok");
  });
  s.connection.on("reconnecting", ({ attempt, delayMs, code }) => {
    lastSeqBeforeDrop ??= s.cursor?.seq ?? null;
    setStatus(`reconnecting (attempt ${attempt}, in ${delayMs} ms, after close ${code})`, "warn");
  });
  s.connection.on("close", ({ error }) => {
    setStatus(error ? `closed: ${error.code}: ${error.message}` : "closed", error ? "error" : "idle");
    if (sub === s) sampling = false;
    ui.dropBtn.disabled = ui.closeBtn.disabled = true;
  });
  s.connection.on("error", (e) => notice(`error: ${e.code}: ${e.message}`, "error"));
  for (const e of ["members", "join", "leave"] as const) s.presence.on(e, renderMembers);
  renderMembers();
  ui.dropBtn.disabled = ui.closeBtn.disabled = false;
}

async function publish(): Promise<void> {
  const channel = watching[0] ?? ui.channel.value.split(",")[0]!.trim();
  let data: unknown;
  try {
    data = ui.data.value.trim() === "" ? null : JSON.parse(ui.data.value);
  } catch {
    ui.publishResult.textContent = "data is not valid JSON";
    ui.publishResult.dataset.kind = "error";
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, ui.key.value);
  try {
    const res = await fetch(new URL(`v1/channels/${encodeURIComponent(channel)}/messages`, SERVICE), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${ui.key.value.trim()}` },
      body: JSON.stringify({ event: ui.event.value.trim(), data }),
    });
    const body = await res.json();
    if (!res.ok) throw new HibercastError(body.error?.code ?? "internal", body.error?.message ?? `HTTP ${res.status}`, res.status);
    ui.publishResult.textContent = `published #${body.seq} to ${body.delivered} subscriber(s)`;
    ui.publishResult.dataset.kind = "ok";
  } catch (err) {
    const e = err instanceof HibercastError ? `${e2s(err)}` : "server unreachable";
    ui.publishResult.textContent = `not published: ${e}`;
    ui.publishResult.dataset.kind = "error";
  }
}

const e2s = (e: HibercastError) => `${e.status ?? ""} ${e.code}: ${e.message}`.trim();

ui.form.addEventListener("submit", (e) => {
  e.preventDefault();
  connect_();
});
ui.publish.addEventListener("submit", (e) => {
  e.preventDefault();
  void publish();
});
ui.dropBtn.addEventListener("click", () => {
  lastSeqBeforeDrop = sub?.cursor?.seq ?? (mux ? 0 : null);
  notice("connection dropped by you; reconnecting with resume", "notice");
  sub?.reconnect();
  mux?.reconnect();
});
ui.closeBtn.addEventListener("click", () => (sub?.close(), mux?.close()));
ui.refresh.addEventListener("click", () => void refreshStats());
ui.occupiedBtn.addEventListener("click", () => void refreshOccupied());
ui.key.addEventListener("change", () => {
  sessionStorage.setItem(KEY_STORAGE, ui.key.value);
  void refreshOccupied();
});

// A sample a second while connected (rates need a steady beat), the channel list every 5 s;
// neither while the tab is hidden, where nobody looks and the rooms may sleep.
let ticks = 0;
setInterval(() => {
  if (document.hidden) return;
  if (sampling) void refreshStats();
  if (++ticks % 5 === 0 && listing) void refreshOccupied();
}, 1000);

ui.key.value = sessionStorage.getItem(KEY_STORAGE) ?? "";
ui.channel.value = new URLSearchParams(location.search).get("channel") ?? ui.channel.value;
setStatus("not connected", "idle");
void refreshOccupied();
