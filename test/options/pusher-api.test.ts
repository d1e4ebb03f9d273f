// The Pusher HTTP API under hostile input (DESIGN.md v1.3 "Bounded memory and time per request",
// "Replays of signed requests"): the signed query is checked before a byte of the body is read,
// the body is read with a hard cap, and a replayed signed request publishes once.
import { describe, expect, it } from "vitest";
import { hmacHex } from "../../src/pusher/signature";
import { call, channelName, chunkedBody, type HistoryPage } from "../helpers";

const APP = "77";
const KEY = "test-pusher-key";
const SECRET = "test-pusher-secret";
/** The API's body cap in this project: 100 events of the default MAX_MESSAGE_BYTES (65536). */
const CAP = 100 * 65536;

const hex = (bytes: ArrayBuffer) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
const md5 = async (body: string) => hex(await crypto.subtle.digest("MD5", new TextEncoder().encode(body)));

/**
 * A query signed as the `pusher` SDK signs it: auth_key, auth_timestamp, auth_version and
 * body_md5, sorted by name, HMAC-SHA256 of `METHOD\nPATH\nQUERY`.
 */
async function signedQuery(method: string, path: string, o: { md5?: string; secret?: string; timestamp?: number } = {}): Promise<string> {
  const params: Record<string, string> = {
    auth_key: KEY,
    auth_timestamp: String(o.timestamp ?? Math.floor(Date.now() / 1000)),
    auth_version: "1.0",
    ...(o.md5 === undefined ? {} : { body_md5: o.md5 }),
  };
  const query = Object.keys(params)
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join("&");
  return `${query}&auth_signature=${await hmacHex(o.secret ?? SECRET, `${method}\n${path}\n${query}`)}`;
}

/**
 * A body that never ends: a chunked upload of 64 KiB chunks for as long as it is read, up to
 * twice the cap, and then held open without closing. `pulled` says how much was read. `stop()`
 * closes it, so a server that reads bodies to their end still answers in the end and a failing
 * test fails instead of hanging (holding it open, rather than enqueuing for ever, keeps the
 * isolate free to run the test's timer).
 */
function endlessBody() {
  return chunkedBody(new Uint8Array(2 * CAP).fill(0x78), 65536, true);
}

/** POSTs `body` (no content-length: chunked) and answers within `ms`, or says it did not. */
async function postWithin(path: string, body: ReadableStream<Uint8Array>, stop: () => void, ms = 3000): Promise<{ status: number; text: string } | "no answer"> {
  const answer = call(path, { method: "POST", headers: { "content-type": "application/json" }, body }).then(async (res) => ({ status: res.status, text: await res.text() }));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"no answer">((resolve) => (timer = setTimeout(() => resolve("no answer"), ms)));
  const result = await Promise.race([answer, timeout]);
  clearTimeout(timer);
  stop();
  return result;
}

const historyOf = async (ch: string) => (await (await call(`/v1/channels/${ch}/messages?limit=1000`)).json<HistoryPage>()).messages;

describe("Pusher HTTP API: the signed query comes before the body", () => {
  const events = `/apps/${APP}/events`;

  it("answers a bad signature 401 at once, without reading a never-ending chunked body", async () => {
    const { stream, state } = endlessBody();
    const path = `${events}?${await signedQuery("POST", events, { md5: "0".repeat(32), secret: "wrong-secret" })}`;
    const answer = await postWithin(path, stream, state.stop);
    expect(answer).toMatchObject({ status: 401, text: expect.stringContaining("Invalid signature") });
    // At most what the runtime buffers ahead of a reader that never came: nowhere near the cap.
    expect(state.pulled).toBeLessThan(CAP / 4);
  });

  it("answers a stale timestamp and an unknown key 401 the same way, body unread", async () => {
    for (const [query, reason] of [
      [await signedQuery("POST", events, { md5: "0".repeat(32), timestamp: Math.floor(Date.now() / 1000) - 601 }), "Timestamp expired"],
      [(await signedQuery("POST", events, { md5: "0".repeat(32) })).replace(`auth_key=${KEY}`, "auth_key=someone-else"), "Unknown auth_key"],
    ] as const) {
      const { stream, state } = endlessBody();
      expect(await postWithin(`${events}?${query}`, stream, state.stop)).toMatchObject({ status: 401, text: expect.stringContaining(reason) });
      expect(state.pulled).toBeLessThan(CAP / 4);
    }
  });

  it("answers a good signature over a body past the cap 413, cutting the upload at the cap", async () => {
    const { stream, state } = endlessBody();
    const path = `${events}?${await signedQuery("POST", events, { md5: "0".repeat(32) })}`;
    const answer = await postWithin(path, stream, state.stop, 4000);
    expect(answer).toMatchObject({ status: 413 });
    // Read up to the cap and a little past it (the chunk that crossed it, what the pipe held).
    expect(state.pulled).toBeGreaterThan(CAP);
    expect(state.pulled).toBeLessThan(CAP + 1024 * 1024);
  });

  it("still holds the body to the signed body_md5 once it is read", async () => {
    const ch = channelName("pz-api-md5");
    const body = JSON.stringify({ name: "e", data: "{}", channel: ch });
    const res = await call(`${events}?${await signedQuery("POST", events, { md5: await md5(`${body} `) })}`, { method: "POST", headers: { "content-type": "application/json" }, body });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain("body_md5");
    expect(await historyOf(ch)).toEqual([]);
  });
});

describe("Pusher HTTP API: a replayed signed request publishes once", () => {
  async function send(path: string, body: string, query?: string): Promise<{ query: string; status: number; text: string }> {
    const q = query ?? (await signedQuery("POST", path, { md5: await md5(body) }));
    const res = await call(`${path}?${q}`, { method: "POST", headers: { "content-type": "application/json" }, body });
    return { query: q, status: res.status, text: await res.text() };
  }

  it("events: the same request twice (or with the signature in capitals) is one message per channel", async () => {
    const a = channelName("pz-api-replay");
    const b = channelName("pz-api-replay");
    const path = `/apps/${APP}/events`;
    const body = JSON.stringify({ name: "paid", data: JSON.stringify({ order: 1 }), channels: [a, b] });
    const first = await send(path, body);
    expect(first).toMatchObject({ status: 200, text: "{}" });
    // The replay is accepted as Pusher would, and answered by the dedupe: nothing new is logged.
    expect(await send(path, body, first.query)).toMatchObject({ status: 200, text: "{}" });
    const upper = first.query.replace(/auth_signature=([0-9a-f]+)/, (_, s: string) => `auth_signature=${s.toUpperCase()}`);
    expect(await send(path, body, upper)).toMatchObject({ status: 200 });
    for (const ch of [a, b]) expect((await historyOf(ch)).map((m) => [m.e, m.d])).toEqual([["paid", { order: 1 }]]);
  });

  it("batch_events: a replay adds nothing, and two equal events of one batch both stay", async () => {
    const ch = channelName("pz-api-replay");
    const path = `/apps/${APP}/batch_events`;
    const item = { channel: ch, name: "tick", data: "same" };
    const body = JSON.stringify({ batch: [item, item, { ...item, data: "other" }] });
    const first = await send(path, body);
    expect(first.status).toBe(200);
    expect((await send(path, body, first.query)).status).toBe(200);
    expect((await historyOf(ch)).map((m) => m.d)).toEqual(["same", "same", "other"]);
  });

  it("another signed request with the same events (a new timestamp) is published again", async () => {
    const ch = channelName("pz-api-replay");
    const path = `/apps/${APP}/events`;
    const body = JSON.stringify({ name: "e", data: "x", channel: ch });
    const now = Math.floor(Date.now() / 1000);
    for (const timestamp of [now, now - 1]) {
      const query = await signedQuery("POST", path, { md5: await md5(body), timestamp });
      expect((await send(path, body, query)).status).toBe(200);
    }
    expect((await historyOf(ch)).length).toBe(2);
  });
});

it("refuses an event name only the server may send (pusher_internal:, pusher:, hibercast:), as every publisher is refused", async () => {
  const ch = channelName("reserved");
  for (const name of ["pusher_internal:member_added", "pusher:subscription_succeeded", "hibercast:append"]) {
    const body = JSON.stringify({ name, channel: ch, data: JSON.stringify({ user_id: "ceo" }) });
    const path = `/apps/${APP}/events`;
    const res = await call(`${path}?${await signedQuery("POST", path, { md5: await md5(body) })}`, { method: "POST", headers: { "content-type": "application/json" }, body });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("reserved");
  }
  expect(await historyOf(ch)).toEqual([]);
});
