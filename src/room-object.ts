import { DurableObject } from "cloudflare:workers";
import { checkChannelGrant, grants, verifyToken, type Identity } from "./auth";
import { configFor, type ChannelConfig, type Env } from "./config";
import type { HistoryQuery, Start } from "./cursor";
import { ApiError } from "./errors";
import { broadcast, sendTo, type Transport } from "./fanout";
import { log, LogBudget } from "./log";
import { count } from "./metrics";
import { Presence, PRESENCE_TAG, userTag } from "./presence";
import {
  closingFrame,
  errFrame,
  InvalidInput,
  msgFrame,
  msgOut,
  out,
  parseClientFrame,
  PROTOCOL_VERSION,
  type ErrorCode,
  type Out,
  type PublishInput,
  type PublishResult,
} from "./protocol";
import { ReplayLog, type Retention } from "./replay-log";

/** How the Worker asks the room to take a socket. Only the Worker can reach the room. */
export interface ConnectRequest {
  channel: string;
  identity: Identity;
  start: Start;
  transport: Transport;
}

const CONNECT_HEADER = "x-hibercast-connect";

/** Builds the internal upgrade request; the client's own headers never reach the room. */
export function connectRequest(connect: ConnectRequest): Request {
  return new Request("https://room.internal/connect", {
    headers: { Upgrade: "websocket", [CONNECT_HEADER]: JSON.stringify(connect) },
  });
}

/** Per-socket state, kept in the socket's attachment so it survives hibernation. */
interface SocketState {
  cid: string;
  ch: string;
  tr: Transport;
  sub: string | null;
  pub: boolean;
  exp: number | null;
  info: string | null;
  /** Accepted at (ms): the liveness baseline until the first auto-responded ping. */
  at: number;
  /**
   * The epoch this socket was welcomed with, kept only while the channel has no stored epoch:
   * after hibernation the room takes it back, so the first publish stores what clients hold.
   */
  ep?: string;
}

export interface RoomStats {
  channel: string;
  subscribers: number;
  transports: Record<Transport, number>;
  presence: number | null;
  publishes: number;
  seq: number;
  epoch: string;
  log: { count: number; oldestSeq: number | null };
}

/** Close codes the room uses (4000 + the HTTP status a refusal would have had). */
const CLOSE_TOO_BIG = 1009;
const CLOSE_EXPIRED = 4401;
const CLOSE_TIMEOUT = 4408;
const CLOSE_RATE_LIMITED = 4429;
const CLOSE_FULL = 4503;

/** Presence sockets that sent no `ping` for this long are swept (clients ping every ~25 s). */
export const PRESENCE_TIMEOUT_MS = 90_000;
const PRESENCE_SWEEP_MS = 30_000;
/** Tag of sockets whose token expires. */
const EXPIRES_TAG = "x";

const retentionOf = (c: ChannelConfig): Retention => ({
  maxMessages: c.logMaxMessages,
  maxAgeS: c.logMaxAgeS,
  dedupeWindowS: c.dedupeWindowS,
});

const isPresence = (channel: string) => channel.startsWith("presence-");

function newCid(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 16);
}

const encoder = new TextEncoder();
/** Whether a text frame's UTF-8 size is over `max`, encoding it only when the bounds cannot tell. */
function overLimit(s: string, max: number): boolean {
  // A UTF-16 unit takes 1 to 3 UTF-8 bytes: most frames are decided without encoding.
  if (s.length > max) return true;
  if (s.length * 3 <= max) return false;
  return encoder.encode(s).byteLength > max;
}

const stateOf = (ws: WebSocket) => ws.deserializeAttachment() as SocketState | null;

/**
 * Ends a connection: an err frame that names the close code, then the close. The frame lets a
 * client act at once, whether or not the close handshake completes promptly.
 */
function closeWith(ws: WebSocket, transport: Transport, close: number, code: ErrorCode, message: string): void {
  sendTo(ws, transport, out(closingFrame(code, message, close)));
  try {
    ws.close(close, message.slice(0, 120));
  } catch {
    // already closed
  }
}

/**
 * One room per channel. Reads top to bottom as its lifecycle: accept a socket (welcome, then
 * replay), take its messages, close it, publish to everyone, answer reads, and keep the log
 * trimmed and the sockets' tokens fresh in the alarm.
 *
 * Nothing that must survive hibernation lives in memory: sockets and their state are held by
 * the runtime (tags + attachments), the log by SQLite; fields here are caches rebuilt on wake.
 */
export class RoomObject extends DurableObject<Env> {
  private readonly log: ReplayLog;
  private readonly presence: Presence;
  /** Pending alarm time: undefined until read from storage once per wake. */
  private alarmAt: number | null | undefined;
  /** Publishes per socket in the current second; losing this on hibernation is harmless. */
  private readonly pubRate = new Map<string, { window: number; count: number }>();
  /**
   * Open sockets, counted once per wake and then kept by accept and close, so accepting a
   * socket never walks the room (DESIGN.md "Connect cost"). undefined: not counted yet.
   */
  private sockets: number | undefined;
  /** Connect lines in full up to 20 a second; a storm of connects is summed up in one line. */
  private readonly connectLog: LogBudget;
  /** Sockets already taken off the count (a close and an error may both report one). */
  private readonly uncounted = new WeakSet<WebSocket>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.log = new ReplayLog(ctx.storage.sql, retentionOf(configFor(env, "")));
    this.log.retention = retentionOf(this.config(this.log.channelName));
    this.presence = new Presence(ctx);
    this.connectLog = new LogBudget("connect", 20, ["channel"]);
    // Heartbeats are answered by the runtime without waking the room.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    if (!this.log.hasStoredEpoch) this.recallEpoch();
  }

  /**
   * A room without a stored epoch that wakes with sockets still connected takes back the epoch
   * they were welcomed with (from any one of them: all sockets accepted before the first
   * publish carry it), so the first publish stores what those clients already hold.
   */
  private recallEpoch(): void {
    for (const ws of this.ctx.getWebSockets()) {
      const ep = stateOf(ws)?.ep;
      if (ep !== undefined) return this.log.adoptEpoch(ep);
    }
  }

  private countSockets(): number {
    return (this.sockets ??= this.ctx.getWebSockets().length);
  }

  private uncount(ws: WebSocket): void {
    if (this.sockets === undefined || this.uncounted.has(ws)) return;
    this.uncounted.add(ws);
    this.sockets = Math.max(0, this.sockets - 1);
  }

  private config(channel: string): ChannelConfig {
    return configFor(this.env, channel);
  }

  // ---- accept ------------------------------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const raw = request.headers.get(CONNECT_HEADER);
    if (raw === null || request.headers.get("upgrade") !== "websocket") {
      return new Response("not found", { status: 404 });
    }
    const { channel, identity, start, transport } = JSON.parse(raw) as ConnectRequest;
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];

    const sockets = this.countSockets();
    if (sockets >= this.config(channel).maxSockets) {
      server.accept();
      closeWith(server, transport, CLOSE_FULL, "unavailable", "room is full, retry later");
      return new Response(null, { status: 101, webSocket: client });
    }

    const state: SocketState = {
      cid: newCid(),
      ch: channel,
      tr: transport,
      sub: identity.sub,
      pub: identity.canPublish,
      exp: identity.exp,
      info: identity.info,
      at: Date.now(),
    };
    if (!this.log.hasStoredEpoch) state.ep = this.log.epoch;
    const presence = isPresence(channel) && state.sub !== null;
    const tags = [`c:${state.cid}`, transport];
    if (presence) tags.push(PRESENCE_TAG, userTag(state.sub!));
    if (state.exp !== null) tags.push(EXPIRES_TAG);
    this.ctx.acceptWebSocket(server, tags);
    server.serializeAttachment(state);
    this.sockets = sockets + 1;
    // No await from here to the last replayed frame: a publish cannot slip between the
    // replay and the live stream, so a resume has no gap and no duplicate.
    const replay = this.sendStart(server, state, start);
    if (presence) this.announceJoin(server, state);
    this.connectLog.log({ channel, cid: state.cid, transport, sub: state.sub, since: start.cursor?.since, ...replay, sockets: sockets + 1 });
    count(this.env, channel, "connect");

    if (state.exp !== null) await this.scheduleAt(state.exp * 1000);
    if (presence) await this.scheduleAt(Date.now() + PRESENCE_SWEEP_MS);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Welcome, then the replay or a reset; answers what was sent, for the connect log line. */
  private sendStart(ws: WebSocket, state: SocketState, start: Start): { replayed: number; reset: boolean } {
    const now = Date.now();
    const replayLog = this.log;
    const send = (frame: Out) => sendTo(ws, state.tr, frame);
    send(out({ t: "welcome", v: PROTOCOL_VERSION, ch: state.ch, cid: state.cid, seq: replayLog.lastSeq, epoch: replayLog.epoch }));
    let messages = start.rewind > 0 ? replayLog.last(start.rewind, now) : [];
    if (start.cursor !== null) {
      const replay = replayLog.since(start.cursor, now);
      if (replay.reset) {
        send(out({ t: "reset", seq: replayLog.lastSeq, epoch: replayLog.epoch }));
        return { replayed: 0, reset: true };
      }
      messages = replay.messages;
    }
    for (const m of messages) send(msgOut(state.ch, m, replayLog.epoch));
    return { replayed: messages.length, reset: false };
  }

  private announceJoin(ws: WebSocket, state: SocketState): void {
    const max = this.config(state.ch).presenceMaxMembers;
    const joined = this.presence.join(ws, state);
    const list = this.presence.list(max);
    sendTo(ws, state.tr, out({ t: "members", ...list }));
    // Beyond PRESENCE_MAX_MEMBERS, counts only: no join/leave storm to every socket.
    if (joined !== null && list.count <= max) broadcast(this.ctx, out({ t: "join", member: joined }), ws);
  }

  // ---- message -----------------------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const state = stateOf(ws);
    if (state === null) return;
    const config = this.config(state.ch);
    const reply = (frame: Out) => sendTo(ws, state.tr, frame);
    if (typeof message !== "string") {
      reply(out(errFrame("bad_frame", "binary frames are not supported; send JSON text")));
      return;
    }
    if (overLimit(message, config.maxMessageBytes)) {
      closeWith(ws, state.tr, CLOSE_TOO_BIG, "too_large", `frame over MAX_MESSAGE_BYTES (${config.maxMessageBytes})`);
      return;
    }
    let parsed;
    try {
      parsed = parseClientFrame(message);
    } catch (err) {
      if (!(err instanceof InvalidInput)) throw err;
      reply(out(errFrame("bad_frame", err.message, err.id)));
      return;
    }
    switch (parsed.t) {
      case "pub":
        return this.publishFromSocket(ws, state, config, parsed.input);
      case "auth":
        return this.reauthenticate(ws, state, parsed.token);
      default:
        return; // unknown types are ignored: newer clients may send them
    }
  }

  private async publishFromSocket(ws: WebSocket, state: SocketState, config: ChannelConfig, input: PublishInput): Promise<void> {
    const reply = (frame: Out) => sendTo(ws, state.tr, frame);
    if (!state.pub) {
      reply(out(errFrame("forbidden", "this connection may not publish here", input.id)));
      return;
    }
    const second = Math.floor(Date.now() / 1000);
    const rate = this.pubRate.get(state.cid);
    if (rate === undefined || rate.window !== second) {
      this.pubRate.set(state.cid, { window: second, count: 1 });
    } else if (++rate.count > config.clientPubPerS) {
      // Over the limit: refused with an err; a client that keeps going is cut off.
      if (rate.count > 2 * config.clientPubPerS) closeWith(ws, state.tr, CLOSE_RATE_LIMITED, "rate_limited", "publish rate limit exceeded");
      else reply(out(errFrame("rate_limited", `at most ${config.clientPubPerS} publishes per second`, input.id)));
      return;
    }
    const result = this.publishNow(state.ch, input, state.sub, null);
    reply(out({ t: "ack", id: result.id, seq: result.seq, duplicate: result.duplicate }));
    await this.scheduleTrim();
  }

  private async reauthenticate(ws: WebSocket, state: SocketState, token: string): Promise<void> {
    try {
      const claims = await verifyToken(this.env, token);
      checkChannelGrant(this.env, state.ch, claims);
      if (claims.sub !== undefined && state.sub !== null && claims.sub !== state.sub) {
        throw new ApiError("forbidden", "a fresh token must be for the same sub");
      }
      state.exp = claims.exp;
      state.pub = grants(claims.pub, state.ch);
      ws.serializeAttachment(state);
      await this.scheduleAt(claims.exp * 1000);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      sendTo(ws, state.tr, out(errFrame(err.code, err.message)));
    }
  }

  // ---- close -------------------------------------------------------------------------------

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.uncount(ws);
    const state = this.forget(ws);
    if (state) log("close", { channel: state.ch, cid: state.cid, transport: state.tr, code, ms: Date.now() - state.at });
    try {
      // Reserved codes (1005, 1006, ...) cannot be sent back; echo only what may be sent.
      ws.close(code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000, reason);
    } catch {
      // already closed
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.uncount(ws);
    this.forget(ws);
  }

  /** Cleans up after a socket that is going; never throws (a close handler must not). */
  private forget(ws: WebSocket): SocketState | null {
    try {
      const state = stateOf(ws);
      if (state === null) return null;
      this.pubRate.delete(state.cid);
      if (isPresence(state.ch)) {
        const left = this.presence.leave(ws, state);
        if (left !== null && this.presence.count() < this.config(state.ch).presenceMaxMembers) {
          broadcast(this.ctx, out({ t: "leave", member: left }), ws);
        }
      }
      return state;
    } catch (err) {
      log("error", { where: "close cleanup", error: String(err) });
      return null;
    }
  }

  // ---- publish -----------------------------------------------------------------------------

  /** Publish from the Worker (HTTP). The input is already validated there. */
  async publish(channel: string, input: PublishInput, sender: string | null, exclude: string | null): Promise<PublishResult> {
    const skip = exclude === null ? null : (this.ctx.getWebSockets(`c:${exclude}`)[0] ?? null);
    const result = this.publishNow(channel, input, sender, skip);
    await this.scheduleTrim();
    return result;
  }

  /** Several messages to this channel, in order (batch publish: one room call per channel). */
  async publishMany(channel: string, inputs: PublishInput[], sender: string | null): Promise<PublishResult[]> {
    const results = inputs.map((input) => this.publishNow(channel, input, sender, null));
    await this.scheduleTrim();
    return results;
  }

  /**
   * Dedupe, append, fan out: synchronous, so no subscriber can be accepted between the log
   * write and the send (it would get the message twice or not at all). The runtime's output
   * gate holds both the sends and the answer until the row is durable.
   */
  private publishNow(channel: string, input: PublishInput, sender: string | null, exclude: WebSocket | null): PublishResult {
    const now = Date.now();
    const seen = this.log.findId(input.id, now);
    if (seen !== null) {
      log("publish", { channel, seq: seen, duplicate: true });
      return { seq: seen, id: input.id, delivered: 0, duplicate: true };
    }
    const m = this.log.append(channel, input, sender, now);
    const delivered = broadcast(this.ctx, msgOut(channel, m, this.log.epoch), exclude);
    log("publish", { channel, seq: m.seq, delivered, bytes: m.data.length, sub: sender });
    count(this.env, channel, "publish");
    count(this.env, channel, "delivered", delivered);
    return { seq: m.seq, id: m.id, delivered, duplicate: false };
  }

  /** Empties the log and starts a new epoch; every connected client gets `reset`. */
  async purge(): Promise<{ seq: number; epoch: string }> {
    this.log.purge(Date.now());
    const reset = broadcast(this.ctx, out({ t: "reset", seq: this.log.lastSeq, epoch: this.log.epoch }));
    log("purge", { channel: this.log.channelName, seq: this.log.lastSeq, reset });
    return { seq: this.log.lastSeq, epoch: this.log.epoch };
  }

  // ---- reads -------------------------------------------------------------------------------

  /** History as the JSON body of the answer: frames are spliced in as stored, never re-parsed. */
  async history(channel: string, query: HistoryQuery): Promise<string> {
    const now = Date.now();
    const replayLog = this.log;
    let messages;
    let reset = false;
    if (query.cursor !== null) {
      const replay = replayLog.since(query.cursor, now, query.limit);
      reset = replay.reset;
      messages = replay.reset ? [] : replay.messages;
    } else if (query.before !== null) {
      messages = replayLog.before(query.before, query.limit, now);
    } else {
      messages = replayLog.last(query.limit, now);
    }
    const frames = messages.map((m) => msgFrame(channel, m)).join(",");
    return `{"messages":[${frames}],"seq":${replayLog.lastSeq},"epoch":${JSON.stringify(replayLog.epoch)},"reset":${reset}}`;
  }

  async members(channel: string): Promise<{ members: unknown[]; count: number }> {
    return this.presence.list(this.config(channel).presenceMaxMembers);
  }

  async stats(channel: string): Promise<RoomStats> {
    const ws = this.ctx.getWebSockets("ws").length;
    const sse = this.ctx.getWebSockets("sse").length;
    return {
      channel,
      subscribers: ws + sse,
      transports: { ws, sse },
      presence: isPresence(channel) ? this.presence.count() : null,
      publishes: this.log.lastSeq,
      seq: this.log.lastSeq,
      epoch: this.log.epoch,
      log: this.log.stats(Date.now()),
    };
  }

  // ---- alarm: retention, token expiry, presence liveness ------------------------------------

  /** Makes sure the alarm fires by `at`; storage is read once per wake, written only to move it earlier. */
  private async scheduleAt(at: number): Promise<void> {
    this.alarmAt ??= await this.ctx.storage.getAlarm();
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    await this.ctx.storage.setAlarm(at);
  }

  /** After a publish: set the trim alarm only when none is pending. */
  private async scheduleTrim(): Promise<void> {
    this.alarmAt ??= await this.ctx.storage.getAlarm();
    if (this.alarmAt !== null) return;
    const next = this.log.trim(Date.now());
    if (next !== null) await this.scheduleAt(next);
  }

  override async alarm(): Promise<void> {
    this.alarmAt = null;
    // Sockets the room closed itself may never report a close: count afresh on the next connect.
    this.sockets = undefined;
    const now = Date.now();
    const due = [this.log.trim(now), this.closeExpired(now), this.sweepPresence(now)].filter((t): t is number => t !== null);
    if (due.length > 0) await this.scheduleAt(Math.max(Math.min(...due), now + 1000));
  }

  /** Closes sockets whose token expired (4401); answers the next expiry, if any. */
  private closeExpired(now: number): number | null {
    let next: number | null = null;
    for (const ws of this.ctx.getWebSockets(EXPIRES_TAG)) {
      const state = stateOf(ws);
      if (state?.exp == null) continue;
      const at = state.exp * 1000;
      if (at > now) {
        next = next === null ? at : Math.min(next, at);
        continue;
      }
      this.forget(ws);
      closeWith(ws, state.tr, CLOSE_EXPIRED, "unauthorized", "token expired");
      log("expired", { channel: state.ch, cid: state.cid, sub: state.sub });
    }
    return next;
  }

  /**
   * Closes presence sockets that stopped pinging, so a vanished client does not stay a member.
   * Answers when to look again while presence sockets remain.
   */
  private sweepPresence(now: number): number | null {
    const sockets = this.ctx.getWebSockets(PRESENCE_TAG);
    for (const ws of sockets) {
      const state = stateOf(ws);
      if (state === null) continue;
      const lastSeen = Math.max(this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0, state.at);
      if (now - lastSeen <= PRESENCE_TIMEOUT_MS) continue;
      this.forget(ws);
      closeWith(ws, state.tr, CLOSE_TIMEOUT, "unavailable", "no ping received");
      log("swept", { channel: state.ch, cid: state.cid, sub: state.sub, silentMs: now - lastSeen });
    }
    return sockets.length > 0 ? now + PRESENCE_SWEEP_MS : null;
  }
}
