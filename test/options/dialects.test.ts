// Every socket dialect runs the one contract of dialect.case.ts: a hub's channel socket, a
// sharded channel's socket on its edges (rule "wide-*": shards 4), `/v1/ws` and Pusher's
// protocol 7 (this project has PUSHER_* set). Each case only says how its client talks.
import type { ServerFrame } from "../../src/protocol";
import { hmacHex } from "../../src/pusher/signature";
import { channelName, TestSocket, token, type Frame } from "../helpers";
import { dialectContract, type DialectCase, type Opened, type Seen } from "./dialect.case";

/** A hibercast frame (batches unpacked) as the contract reads it. */
function seenOf(f: Frame): Seen[] {
  if (f.t === "batch") return (f as Extract<ServerFrame, { t: "batch" }>).f.flatMap(seenOf);
  if (f.t === "msg") return [{ t: "msg", seq: f.seq, event: f.e, data: f.d }];
  if (f.t === "append") return [{ t: "append", id: f.id, text: f.d, done: f.done === true }];
  if (f.t === "reset") return [{ t: "reset" }];
  if (f.t === "join" || f.t === "leave") return [{ t: f.t, id: f.member.id }];
  return [{ t: "other" }];
}

/** A client over a TestSocket, reading each frame with `read`. */
function client(s: TestSocket, cid: string, read: (f: Frame) => Seen[]): Opened {
  const buffered: Seen[] = [];
  return {
    cid,
    async next(ms = 2000) {
      while (buffered.length === 0) buffered.push(...read(await s.next(ms)));
      return buffered.shift()!;
    },
    async settle(ms = 100) {
      return [...buffered.splice(0), ...(await s.settle(ms)).flatMap(read)];
    },
    close: () => s.close(),
  };
}

const grant = (ch: string, sub?: string) => token({ ...(sub ? { sub } : {}), ch: [ch] });
const needsGrant = (ch: string) => ch.startsWith("private-") || ch.startsWith("presence-");

function channelSocket(prefix: string, presence: boolean): () => DialectCase {
  return () => ({
    channel: (kind) => channelName(kind === "public" ? `${prefix}dc` : `${kind}-${prefix}dc`),
    async open(ch, sub) {
      const query = needsGrant(ch) ? `?batch=1&token=${await grant(ch, sub)}` : "?batch=1";
      const [s, welcome] = await TestSocket.subscribe(ch, query);
      return client(s, welcome.cid, seenOf);
    },
    async refused(ch) {
      const s = await TestSocket.open(`/v1/channels/${ch}/ws`);
      const err = await s.expect("err");
      await s.closed;
      return { code: err.code, staysOpen: false };
    },
    has: { reset: true, presence },
  });
}

const mux = (): DialectCase => ({
  channel: (kind) => channelName(kind === "public" ? "dc" : `${kind}-dc`),
  async open(ch, sub) {
    const s = await TestSocket.open("/v1/ws");
    const welcome = await s.expect("welcome");
    s.send({ t: "sub", ch, ...(needsGrant(ch) ? { token: await grant(ch, sub) } : {}) });
    await s.expect("subscribed");
    return client(s, welcome.cid, seenOf);
  },
  async refused(ch) {
    const s = await TestSocket.open("/v1/ws");
    await s.expect("welcome");
    s.send({ t: "sub", ch });
    const err = await s.expect("err");
    const staysOpen = (await Promise.race([s.closed.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 150))])) as boolean;
    s.close();
    return { code: err.code, staysOpen };
  },
  has: { reset: true, presence: true },
});

type PusherFrame = { event: string; channel?: string; data: string };
const STATUS_CODE: Record<number, string> = { 400: "bad_request", 401: "unauthorized", 403: "forbidden" };

function pusherSeen(f: Frame): Seen[] {
  const p = f as unknown as PusherFrame;
  if (typeof p.event !== "string") return [{ t: "other" }];
  if (p.event === "pusher_internal:member_added") return [{ t: "join", id: String(JSON.parse(p.data).user_id) }];
  if (p.event === "pusher_internal:member_removed") return [{ t: "leave", id: String(JSON.parse(p.data).user_id) }];
  if (p.event === "hibercast:append") {
    const a = JSON.parse(p.data) as { id: string; d: string; done?: true };
    return [{ t: "append", id: a.id, text: a.d, done: a.done === true }];
  }
  if (p.event.startsWith("pusher")) return [{ t: "other" }];
  let data: unknown = p.data;
  try {
    data = JSON.parse(p.data);
  } catch {
    // a string message
  }
  return [{ t: "msg", seq: null, event: p.event, data }];
}

async function pusherOpen(): Promise<[TestSocket, string]> {
  const s = await TestSocket.open("/app/test-pusher-key?protocol=7");
  const established = (await s.next()) as unknown as PusherFrame;
  return [s, (JSON.parse(established.data) as { socket_id: string }).socket_id];
}

const pusher = (): DialectCase => ({
  channel: (kind) => channelName(kind === "public" ? "dc" : `${kind}-dc`),
  async open(ch, sub) {
    const [s, socketId] = await pusherOpen();
    const channelData = ch.startsWith("presence-") ? JSON.stringify({ user_id: sub }) : undefined;
    const signed = channelData === undefined ? `${socketId}:${ch}` : `${socketId}:${ch}:${channelData}`;
    const auth = needsGrant(ch) ? `test-pusher-key:${await hmacHex("test-pusher-secret", signed)}` : undefined;
    s.send({ event: "pusher:subscribe", data: { channel: ch, ...(auth ? { auth } : {}), ...(channelData ? { channel_data: channelData } : {}) } });
    const ok = (await s.next()) as unknown as PusherFrame;
    if (ok.event !== "pusher_internal:subscription_succeeded") throw new Error(`subscribe failed: ${JSON.stringify(ok)}`);
    return client(s, socketId, pusherSeen);
  },
  async refused(ch) {
    const [s] = await pusherOpen();
    s.send({ event: "pusher:subscribe", data: { channel: ch } });
    const refusal = (await s.next()) as unknown as PusherFrame;
    const staysOpen = (await Promise.race([s.closed.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 150))])) as boolean;
    s.close();
    return { code: refusal.event === "pusher:subscription_error" ? STATUS_CODE[JSON.parse(refusal.data).status as number]! : refusal.event, staysOpen };
  },
  has: { reset: false, presence: true },
});

dialectContract("channel socket on its hub", channelSocket("", true));
dialectContract("channel socket on a sharded channel's edges", channelSocket("wide-", false));
dialectContract("/v1/ws multiplexed connection", mux);
dialectContract("Pusher protocol 7", pusher);
