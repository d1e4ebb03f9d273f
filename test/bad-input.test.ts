// The bad-input matrix of docs/errors.md: every row is one test here, with the same name.
// All rows aim at the same two channels, and the last test checks that the rooms still serve
// and that their logs hold exactly what was accepted.
import { beforeAll, describe, expect, it } from "vitest";
import { call, publish, TestSocket, token, type Frame, type HistoryPage } from "./helpers";

const CH = `matrix-${Date.now().toString(36)}`;
const PRIVATE = `private-matrix-${Date.now().toString(36)}`;
const APPENDS = `matrix-appends-${Date.now().toString(36)}`;

type Answer = { status?: number; close?: number; code?: string; frame?: Frame | null };

async function http(res: Response): Promise<Answer> {
  const body = res.headers.get("content-type")?.includes("json") ? await res.json<{ error?: { code: string } }>() : null;
  return { status: res.status, code: body?.error?.code };
}

/**
 * Opens a socket, sends `frames`, and answers the first err or ack after welcome and any close:
 * it reads until the socket closes, or 500 ms after an err (a close may follow it), or `wait`
 * with neither (what a frame that is ignored gets).
 */
async function socket(path: string, frames: (string | ArrayBuffer | Uint8Array)[] = [], wait = 2000): Promise<Answer> {
  const s = await TestSocket.open(path);
  const first = await s.next();
  if (first.t !== "welcome") {
    const { code } = await s.closed;
    return { close: code, code: first.t === "err" ? first.code : undefined };
  }
  for (const f of frames) s.ws.send(f);
  const closed: { code?: number } = {};
  void s.closed.then(({ code }) => (closed.code = code));
  const seen: Frame[] = [];
  const started = Date.now();
  let errAt: number | null = null;
  while (closed.code === undefined && Date.now() - started < wait && (errAt === null || Date.now() - errAt < 500)) {
    await new Promise((r) => setTimeout(r, 20));
    seen.push(...s.pending());
    errAt ??= seen.some((f) => f.t === "err") ? Date.now() : null;
  }
  seen.push(...s.pending());
  const frame = seen.find((f) => f.t === "err" || f.t === "ack") ?? null;
  s.close();
  return { close: closed.code, code: frame?.t === "err" ? frame.code : undefined, frame };
}

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;
const b64 = (o: unknown) => btoa(JSON.stringify(o)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
const post = (body: BodyInit, headers: Record<string, string>) =>
  call(`/v1/channels/${CH}/messages`, { method: "POST", headers: { authorization: "Bearer test-publish-key", ...headers }, body });

const rows: [string, () => Promise<Answer>, Answer][] = [
  // HTTP publish
  ["malformed JSON body", async () => http(await publish(CH, '{"event":"e","data":')), { status: 400, code: "bad_request" }],
  ["JSON body that is not an object", async () => http(await publish(CH, "[1,2,3]")), { status: 400, code: "bad_request" }],
  ["event of the wrong type", async () => http(await publish(CH, { event: 42, data: 1 })), { status: 400, code: "bad_request" }],
  ["event over 128 characters", async () => http(await publish(CH, { event: "e".repeat(129), data: 1 })), { status: 400, code: "bad_request" }],
  ["data missing", async () => http(await publish(CH, { event: "e" })), { status: 400, code: "bad_request" }],
  ["id of the wrong type", async () => http(await publish(CH, { event: "e", data: 1, id: { x: 1 } })), { status: 400, code: "bad_request" }],
  ["body over MAX_MESSAGE_BYTES", async () => http(await publish(CH, { event: "e", data: "x".repeat(66_000) })), { status: 413, code: "too_large" }],
  ["declared Content-Length over MAX_MESSAGE_BYTES", async () => http(await post("x".repeat(70_000), { "content-type": "text/plain", "content-length": "70000" })), { status: 413, code: "too_large" }],
  ["text body over MAX_MESSAGE_BYTES once stored as a JSON string", async () => http(await post("\u0001".repeat(20_000), { "content-type": "text/plain" })), { status: 413, code: "too_large" }],
  ["unsupported content type", async () => http(await publish(CH, "<a/>", { contentType: "application/xml" })), { status: 415, code: "unsupported_media_type" }],
  ["body that is not UTF-8", async () => http(await post(new Uint8Array([0xff, 0xfe, 0xfd]), { "content-type": "text/plain" })), { status: 400, code: "bad_request" }],
  ["publish without a credential", async () => http(await publish(CH, { event: "e", data: 1 }, { key: null })), { status: 401, code: "unauthorized" }],
  ["wrong publish key", async () => http(await publish(CH, { event: "e", data: 1 }, { key: "not-the-key" })), { status: 403, code: "forbidden" }],
  ["token without a pub grant", async () => http(await publish(CH, { event: "e", data: 1 }, { key: await token({ sub: "u", ch: ["*"] }) })), { status: 403, code: "forbidden" }],
  ["event name reserved for the server", async () => http(await publish(CH, { event: "pusher_internal:member_added", data: { user_id: "ceo" } })), { status: 400, code: "bad_request" }],
  // Appends, on a channel of their own (its messages "answer" and "answer-done" are made before the rows run)
  ["append to a message the channel does not have", async () => http(await publish(APPENDS, { append: "no-such-message", data: "x" })), { status: 404, code: "not_found" }],
  ["append whose data is not a string", async () => http(await publish(APPENDS, { append: "answer", data: 42 })), { status: 400, code: "bad_request" }],
  ["append id over 128 characters", async () => http(await publish(APPENDS, { append: "a".repeat(129), data: "x" })), { status: 400, code: "bad_request" }],
  ["append after done", async () => http(await publish(APPENDS, { append: "answer-done", data: "x" })), { status: 409, code: "conflict" }],
  // Channel names
  ["empty channel name", async () => http(await call("/v1/channels//messages")), { status: 404, code: "not_found" }],
  ["channel name of 129 characters", async () => http(await call(`/v1/channels/${"c".repeat(129)}`)), { status: 400, code: "bad_request" }],
  ["unicode channel name", async () => http(await call("/v1/channels/%E2%9C%93-check")), { status: 400, code: "bad_request" }],
  ["path trick in the channel name", async () => http(await call("/v1/channels/..%2F..%2Fhealthz")), { status: 400, code: "bad_request" }],
  ["broken percent-encoding", async () => http(await call("/v1/channels/%E0%A4%A")), { status: 400, code: "bad_request" }],
  ["bad channel name on the socket", () => socket("/v1/channels/no%20spaces/ws"), { close: 4400, code: "bad_request" }],
  // Tokens
  ["private channel without a token", () => socket(`/v1/channels/${PRIVATE}/ws`), { close: 4401, code: "unauthorized" }],
  ["expired token", async () => socket(`/v1/channels/${PRIVATE}/ws?token=${await token({ sub: "u", ch: [PRIVATE] }, { expiresIn: Math.floor(Date.now() / 1000) - 60 })}`), { close: 4401, code: "unauthorized" }],
  ["token signed with another secret", async () => socket(`/v1/channels/${PRIVATE}/ws?token=${await token({ sub: "u", ch: [PRIVATE] }, { secret: "guess" })}`), { close: 4401, code: "unauthorized" }],
  ["unsigned alg:none token", async () => socket(`/v1/channels/${PRIVATE}/ws?token=${b64({ alg: "none" })}.${b64({ sub: "u", ch: [PRIVATE], exp: inAnHour() })}.`), { close: 4401, code: "unauthorized" }],
  ["garbage token", () => socket(`/v1/channels/${PRIVATE}/ws?token=not-a-token`), { close: 4401, code: "unauthorized" }],
  ["token for another channel", async () => socket(`/v1/channels/${PRIVATE}/ws?token=${await token({ sub: "u", ch: ["private-elsewhere"] })}`), { close: 4403, code: "forbidden" }],
  // Socket frames
  ["malformed JSON frame", () => socket(`/v1/channels/${CH}/ws`, ["{oops"]), { code: "bad_frame" }],
  ["binary frame", () => socket(`/v1/channels/${CH}/ws`, [new Uint8Array([1, 2, 3])]), { code: "bad_frame" }],
  ["unknown frame type", () => socket(`/v1/channels/${CH}/ws`, ['{"t":"subscribe-all"}']), { frame: null }],
  ["frame over MAX_MESSAGE_BYTES", () => socket(`/v1/channels/${CH}/ws`, [JSON.stringify({ t: "pub", e: "e", d: "x".repeat(70_000) })]), { close: 1009, code: "too_large" }],
  ["socket publish without a pub grant", () => socket(`/v1/channels/${CH}/ws`, ['{"t":"pub","e":"e","d":1,"id":"nope"}']), { code: "forbidden" }],
  ["socket publish of a reserved event name", async () => socket(`/v1/channels/${CH}/ws?token=${await token({ sub: "m", ch: [CH], pub: [CH] })}`, ['{"t":"pub","e":"hibercast:append","d":1,"id":"forged"}']), { code: "bad_frame" }],
  ["flood of publish frames", async () => {
    const t = await token({ sub: "flooder", pub: [CH] });
    const flood = Array.from({ length: 60 }, (_, i) => JSON.stringify({ t: "pub", e: "flood", d: i, id: `flood-${i}` }));
    return socket(`/v1/channels/${CH}/ws?token=${t}`, flood, 5000);
  }, { close: 4429 }],
  // Cursors and history
  ["negative since", async () => http(await call(`/v1/channels/${CH}/messages?since=-1`)), { status: 400, code: "bad_request" }],
  ["since that is not a number", async () => http(await call(`/v1/channels/${CH}/messages?since=latest`)), { status: 400, code: "bad_request" }],
  ["negative since on the socket", () => socket(`/v1/channels/${CH}/ws?since=-5`), { close: 4400, code: "bad_request" }],
  ["huge history limit", async () => http(await call(`/v1/channels/${CH}/messages?limit=1000000000`)), { status: 200 }],
  ["history limit of zero", async () => http(await call(`/v1/channels/${CH}/messages?limit=0`)), { status: 400, code: "bad_request" }],
  ["since and before together", async () => http(await call(`/v1/channels/${CH}/messages?since=1&before=5`)), { status: 400, code: "bad_request" }],
  ["malformed Last-Event-ID", async () => http(await call(`/v1/channels/${CH}/sse`, { headers: { "last-event-id": "yesterday" } })), { status: 400, code: "bad_request" }],
  ["rewind over 100", () => socket(`/v1/channels/${CH}/ws?rewind=101`), { close: 4400, code: "bad_request" }],
  ["epoch=null on the socket", () => socket(`/v1/channels/${CH}/ws?since=3&epoch=null`), { close: 4400, code: "bad_request" }],
  ["epoch=undefined in history", async () => http(await call(`/v1/channels/${CH}/messages?since=3&epoch=undefined`)), { status: 400, code: "bad_request" }],
  ["purge with a token", async () => http(await call(`/v1/channels/${CH}/messages`, { method: "DELETE", headers: { authorization: `Bearer ${await token({ sub: "u", ch: ["*"], pub: ["*"] })}` } })), { status: 403, code: "forbidden" }],
  // Batch
  ["batch of 101 messages", async () => http(await call("/v1/publish", { method: "POST", headers: { authorization: "Bearer test-publish-key", "content-type": "application/json" }, body: JSON.stringify({ channels: Array.from({ length: 101 }, (_, i) => `c${i}`), event: "e", data: 1 }) })), { status: 413, code: "too_large" }],
  ["batch item over MAX_MESSAGE_BYTES in UTF-8 bytes", async () => http(await call("/v1/publish", { method: "POST", headers: { authorization: "Bearer test-publish-key", "content-type": "application/json" }, body: JSON.stringify({ messages: [{ channel: CH, event: "e", data: "€".repeat(25_000) }] }) })), { status: 413, code: "too_large" }],
  ["batch with a malformed item", async () => http(await call("/v1/publish", { method: "POST", headers: { authorization: "Bearer test-publish-key", "content-type": "application/json" }, body: JSON.stringify({ messages: [{ channel: CH, event: "e", data: 1 }, { channel: CH, event: 5, data: 1 }] }) })), { status: 400, code: "bad_request" }],
  // Routes
  ["socket route without Upgrade", async () => http(await call(`/v1/channels/${CH}/ws`)), { status: 426, code: "upgrade_required" }],
  ["wrong method", async () => http(await call(`/v1/channels/${CH}/messages`, { method: "PATCH" })), { status: 405, code: "method_not_allowed" }],
];

describe("bad-input matrix (docs/errors.md)", () => {
  beforeAll(async () => {
    await publish(APPENDS, { event: "answer", data: "text", id: "answer" });
    await publish(APPENDS, { event: "answer", data: "text", id: "answer-done" });
    await publish(APPENDS, { append: "answer-done", data: ".", done: true });
  });
  for (const [name, run, expected] of rows) {
    it(name, async () => {
      const answer = await run();
      expect(answer).toMatchObject(expected);
    });
  }

  it("leaves the rooms serving, with logs that hold exactly what was accepted", async () => {
    const history = await (await call(`/v1/channels/${CH}/messages?limit=1000`)).json<HistoryPage>();
    // Accepted: nothing from the HTTP rows; from the flood, the publishes acked before the cut-off.
    expect(history.messages.every((m) => m.e === "flood")).toBe(true);
    expect(history.messages.map((m) => m.seq)).toEqual(history.messages.map((_, i) => i + 1));
    expect(history.seq).toBe(history.messages.length);
    const next = await publish(CH, { event: "after", data: "ok" });
    expect(await next.json()).toMatchObject({ seq: history.seq + 1, duplicate: false });
    expect((await call(`/v1/channels/${PRIVATE}`, { headers: { authorization: "Bearer test-publish-key" } })).status).toBe(200);
  });
});
