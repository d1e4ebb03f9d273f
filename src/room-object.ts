import { DurableObject } from "cloudflare:workers";
import { checkChannelGrant, mayPublish, verifyToken } from "./auth.js";
import { configFor, optionsInForce, type ChannelConfig, type Env } from "./config.js";
import { log, LogBudget } from "./log.js";
import { count } from "./metrics.js";
import { CLOSE, parseClientFrame, PROTOCOL_VERSION, ServiceError, type PublishInput, type PublishResult } from "./protocol/index.js";
import { Alarm } from "./room/alarms.js";
import { readConnect, type Start } from "./room/connect.js";
import { Delivery } from "./room/delivery.js";
import { historyBody, type HistoryQuery } from "./room/history.js";
import { msgOut, out, type Out } from "./room/outgoing.js";
import { Presence } from "./room/presence.js";
import { PublishRate } from "./room/rate-limit.js";
import { ReplayLog, type LoggedMessage, type Retention } from "./room/replay-log.js";
import { isPresenceChannel, newCid, Sockets, stateOf, type SocketState, type Transport } from "./room/sockets.js";

export interface RoomStats {
  channel: string;
  subscribers: number;
  transports: Record<Transport, number>;
  presence: number | null;
  publishes: number;
  /** The options in force for this channel (global vars, and the CHANNEL_OPTIONS rule that matched). */
  options: ReturnType<typeof optionsInForce>;
  seq: number;
  epoch: string;
  log: { count: number; oldestSeq: number | null };
}

/** Presence sockets that sent no `ping` for this long are swept (clients ping every ~25 s). */
export const PRESENCE_TIMEOUT_MS = 90_000;
const PRESENCE_SWEEP_MS = 30_000;

const retentionOf = (c: ChannelConfig): Retention => ({
  maxMessages: c.logMaxMessages,
  maxAgeS: c.logMaxAgeS,
  dedupeWindowS: c.dedupeWindowS,
});

const encoder = new TextEncoder();
/** Whether a text frame's UTF-8 size is over `max`, encoding it only when the bounds cannot tell. */
function overLimit(s: string, max: number): boolean {
  // A UTF-16 unit takes 1 to 3 UTF-8 bytes: most frames are decided without encoding.
  if (s.length > max) return true;
  if (s.length * 3 <= max) return false;
  return encoder.encode(s).byteLength > max;
}

/**
 * One room per channel: the channel's hub (log, seq, epoch, dedupe, presence) and the edge for
 * its own sockets. Reads top to bottom as its lifecycle: accept a socket (welcome, then replay),
 * take its messages, close it, publish (record, then deliver), answer reads, and run the alarm's
 * jobs (retention, token expiry, presence liveness).
 *
 * Nothing that must survive hibernation lives in memory: sockets and their state are held by
 * the runtime (tags + attachments), the log by SQLite; fields here are caches rebuilt on wake.
 */
export class RoomObject extends DurableObject<Env> {
  private readonly log: ReplayLog;
  private readonly sockets: Sockets;
  private readonly presence: Presence;
  private readonly delivery: Delivery;
  private readonly alarm_: Alarm;
  private readonly pubRate = new PublishRate();
  /** The channel whose options the log's retention follows (a room serves one channel). */
  private retentionChannel = "";
  /** Connect lines in full up to 20 a second; a storm of connects is summed up in one line. */
  private readonly connectLog = new LogBudget("connect", 20, ["channel"]);

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.log = new ReplayLog(ctx.storage.sql, retentionOf(configFor(env, "")));
    this.config(this.log.channelName);
    this.sockets = new Sockets(ctx);
    this.presence = new Presence(this.sockets);
    this.delivery = new Delivery(this.sockets);
    this.alarm_ = new Alarm(ctx.storage, {
      trim: (now) => this.log.trim(now),
      expiry: (now) => this.closeExpired(now),
      presence: (now) => this.sweepPresence(now),
    });
    // Heartbeats are answered by the runtime without waking the room.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    if (!this.log.hasStoredEpoch) this.recallEpoch();
  }

  /** The channel's settings; the first call with the channel's name also sets the log's retention. */
  private config(channel: string): ChannelConfig {
    const config = configFor(this.env, channel);
    if (channel !== "" && this.retentionChannel !== channel) {
      this.retentionChannel = channel;
      this.log.retention = retentionOf(config);
    }
    return config;
  }

  /**
   * A room without a stored epoch that wakes with sockets still connected takes back the epoch
   * they were welcomed with (from any one of them: all sockets accepted before the first
   * publish carry it), so the first publish stores what those clients already hold.
   */
  private recallEpoch(): void {
    for (const ws of this.sockets.all()) {
      const ep = stateOf(ws)?.ep;
      if (ep !== undefined) return this.log.adoptEpoch(ep);
    }
  }

  // ---- accept ------------------------------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const connect = readConnect(request);
    if (connect === null) return new Response("not found", { status: 404 });
    const { channel, identity, start, transport, batch } = connect;
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];

    if (this.sockets.count() >= this.config(channel).maxSockets) {
      server.accept();
      this.delivery.close(server, transport, CLOSE.unavailable, "room is full, retry later");
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
    if (batch) state.b = true;
    if (!this.log.hasStoredEpoch) state.ep = this.log.epoch;
    // What is pending goes out first, so this socket's replay cannot also come in a later batch.
    this.delivery.flush();
    this.sockets.accept(server, state);
    // No await from here to the last replayed frame: a publish cannot slip between the
    // replay and the live stream, so a resume has no gap and no duplicate.
    const replay = this.sendStart(server, state, start);
    const member = this.sockets.isMember(state);
    if (member) this.announceJoin(server, state);
    this.connectLog.log({ channel, cid: state.cid, transport, sub: state.sub, since: start.cursor?.seq, ...replay, sockets: this.sockets.count() });
    count(this.env, channel, "connect");

    if (state.exp !== null) await this.alarm_.by(state.exp * 1000);
    if (member) await this.alarm_.by(Date.now() + PRESENCE_SWEEP_MS);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Welcome, then the replay or a reset; answers what was sent, for the connect log line. */
  private sendStart(ws: WebSocket, state: SocketState, start: Start): { replayed: number; reset: boolean } {
    const now = Date.now();
    const replayLog = this.log;
    const send = (frame: Out) => this.delivery.to(ws, state, frame);
    send(out({ t: "welcome", v: PROTOCOL_VERSION, ch: state.ch, cid: state.cid, seq: replayLog.lastSeq, epoch: replayLog.epoch }));
    // A latest-value channel gives a new subscriber the last message, as rewind=1 would.
    const rewind = this.config(state.ch).latest ? Math.max(1, start.rewind) : start.rewind;
    let messages = rewind > 0 ? replayLog.last(rewind, now) : [];
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
    this.delivery.to(ws, state, out({ t: "members", ...list }));
    // Beyond PRESENCE_MAX_MEMBERS, counts only: no join/leave storm to every socket.
    if (joined !== null && list.count <= max) this.delivery.toAll(out({ t: "join", member: joined }), ws);
  }

  // ---- message -----------------------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const state = stateOf(ws);
    if (state === null) return;
    const config = this.config(state.ch);
    if (typeof message !== "string") {
      this.delivery.to(ws, state, out(new ServiceError("bad_frame", "binary frames are not supported; send JSON text").toFrame()));
      return;
    }
    if (overLimit(message, config.maxMessageBytes)) {
      this.delivery.close(ws, state.tr, CLOSE.tooLarge, `frame over MAX_MESSAGE_BYTES (${config.maxMessageBytes})`);
      return;
    }
    try {
      const frame = parseClientFrame(message);
      switch (frame.t) {
        case "pub":
          return await this.publishFromSocket(ws, state, config, frame.input);
        case "auth":
          return await this.reauthenticate(ws, state, frame.token);
        default:
          return; // unknown types are ignored: newer clients may send them
      }
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      this.delivery.to(ws, state, out(err.toFrame()));
    }
  }

  private async publishFromSocket(ws: WebSocket, state: SocketState, config: ChannelConfig, input: PublishInput): Promise<void> {
    if (!state.pub) throw new ServiceError("forbidden", "this connection may not publish here", input.id);
    const verdict = this.pubRate.take(state.cid, config.clientPubPerS);
    // Over the limit: refused with an err; a client that keeps going is cut off.
    if (verdict === "cut") return this.delivery.close(ws, state.tr, CLOSE.rateLimited, "publish rate limit exceeded");
    if (verdict === "refuse") throw new ServiceError("rate_limited", `at most ${config.clientPubPerS} publishes per second`, input.id);
    const result = this.publishNow(state.ch, input, state.sub, null);
    this.delivery.to(ws, state, out({ t: "ack", id: result.id, seq: result.seq, duplicate: result.duplicate }));
    await this.alarm_.ifNone("trim");
  }

  private async reauthenticate(ws: WebSocket, state: SocketState, token: string): Promise<void> {
    const claims = await verifyToken(this.env, token);
    checkChannelGrant(this.env, state.ch, claims);
    if (claims.sub !== undefined && state.sub !== null && claims.sub !== state.sub) {
      throw new ServiceError("forbidden", "a fresh token must be for the same sub");
    }
    state.exp = claims.exp;
    state.pub = mayPublish(this.env, claims, state.ch);
    this.sockets.save(ws, state);
    await this.alarm_.by(claims.exp * 1000);
  }

  // ---- close -------------------------------------------------------------------------------

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.sockets.gone(ws);
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
    this.sockets.gone(ws);
    this.forget(ws);
  }

  /** Cleans up after a socket that is going; never throws (a close handler must not). */
  private forget(ws: WebSocket): SocketState | null {
    try {
      const state = stateOf(ws);
      if (state === null) return null;
      this.pubRate.forget(state.cid);
      if (isPresenceChannel(state.ch)) {
        const left = this.presence.leave(ws, state);
        if (left !== null && this.presence.count() < this.config(state.ch).presenceMaxMembers) {
          this.delivery.toAll(out({ t: "leave", member: left }), ws);
        }
      }
      return state;
    } catch (err) {
      log("error", { where: "close cleanup", error: String(err) });
      return null;
    }
  }

  // ---- publish: record, then deliver ---------------------------------------------------------

  /** Publish from the Worker (HTTP). The input is already validated there. */
  async publish(channel: string, input: PublishInput, sender: string | null, exclude: string | null): Promise<PublishResult> {
    this.config(channel);
    const skip = exclude === null ? null : this.sockets.byCid(exclude);
    const result = this.publishNow(channel, input, sender, skip);
    await this.alarm_.ifNone("trim");
    return result;
  }

  /** Several messages to this channel, in order (batch publish: one room call per channel). */
  async publishMany(channel: string, inputs: PublishInput[], sender: string | null): Promise<PublishResult[]> {
    this.config(channel);
    const results = inputs.map((input) => this.publishNow(channel, input, sender, null));
    await this.alarm_.ifNone("trim");
    return results;
  }

  /**
   * Record, then deliver, with no await between: no subscriber can be accepted between the log
   * write and the send (it would get the message twice or not at all). The runtime's output
   * gate holds both the sends and the answer until the row is durable.
   */
  private publishNow(channel: string, input: PublishInput, sender: string | null, exclude: WebSocket | null): PublishResult {
    const recorded = this.log.record(channel, input, sender, Date.now());
    if (recorded.duplicate) {
      log("publish", { channel, seq: recorded.seq, duplicate: true });
      return { seq: recorded.seq, id: input.id, delivered: 0, duplicate: true };
    }
    const m = recorded.message;
    const delivered = this.deliverMessage(channel, m, exclude);
    log("publish", { channel, seq: m.seq, delivered, bytes: m.data.length, sub: sender });
    return { seq: m.seq, id: m.id, delivered, duplicate: false };
  }

  /** Delivers a recorded message to this room's own sockets; answers how many took it. */
  private deliverMessage(channel: string, m: LoggedMessage, exclude: WebSocket | null): number {
    const delivered = this.delivery.toAll(msgOut(channel, m, this.log.epoch), exclude);
    count(this.env, channel, "publish");
    count(this.env, channel, "delivered", delivered);
    return delivered;
  }

  /** Empties the log and starts a new epoch; every connected client gets `reset`. */
  async purge(): Promise<{ seq: number; epoch: string }> {
    this.log.purge(Date.now());
    const reset = this.delivery.toAll(out({ t: "reset", seq: this.log.lastSeq, epoch: this.log.epoch }));
    log("purge", { channel: this.log.channelName, seq: this.log.lastSeq, reset });
    return { seq: this.log.lastSeq, epoch: this.log.epoch };
  }

  // ---- reads -------------------------------------------------------------------------------

  async history(channel: string, query: HistoryQuery): Promise<string> {
    this.config(channel);
    return historyBody(this.log, channel, query, Date.now());
  }

  async members(channel: string): Promise<{ members: unknown[]; count: number }> {
    return this.presence.list(this.config(channel).presenceMaxMembers);
  }

  async stats(channel: string): Promise<RoomStats> {
    const ws = this.sockets.countOf("ws");
    const sse = this.sockets.countOf("sse");
    return {
      channel,
      subscribers: ws + sse,
      transports: { ws, sse },
      presence: isPresenceChannel(channel) ? this.presence.count() : null,
      publishes: this.log.lastSeq,
      seq: this.log.lastSeq,
      epoch: this.log.epoch,
      log: this.log.stats(Date.now()),
      options: optionsInForce(this.config(channel)),
    };
  }

  // ---- alarm: retention, token expiry, presence liveness ------------------------------------

  override async alarm(): Promise<void> {
    // Sockets the room closed itself may never report a close: count afresh on the next connect.
    this.sockets.recount();
    await this.alarm_.fire();
  }

  /** Closes sockets whose token expired (4401); answers the next expiry, if any. */
  private closeExpired(now: number): number | null {
    let next: number | null = null;
    for (const ws of this.sockets.expiring()) {
      const state = stateOf(ws);
      if (state?.exp == null) continue;
      const at = state.exp * 1000;
      if (at > now) {
        next = next === null ? at : Math.min(next, at);
        continue;
      }
      this.forget(ws);
      this.delivery.close(ws, state.tr, CLOSE.unauthorized, "token expired");
      log("expired", { channel: state.ch, cid: state.cid, sub: state.sub });
    }
    return next;
  }

  /**
   * Closes presence sockets that stopped pinging, so a vanished client does not stay a member.
   * Answers when to look again while presence sockets remain.
   */
  private sweepPresence(now: number): number | null {
    const sockets = this.sockets.members();
    for (const ws of sockets) {
      const state = stateOf(ws);
      if (state === null) continue;
      const lastSeen = Math.max(this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0, state.at);
      if (now - lastSeen <= PRESENCE_TIMEOUT_MS) continue;
      this.forget(ws);
      this.delivery.close(ws, state.tr, CLOSE.noPing, "no ping received");
      log("swept", { channel: state.ch, cid: state.cid, sub: state.sub, silentMs: now - lastSeen });
    }
    return sockets.length > 0 ? now + PRESENCE_SWEEP_MS : null;
  }
}
