// What every object that holds sockets does with them, whether it is a channel's room (the hub,
// and the edge of its own sockets) or an edge of a sharded channel: accept with a welcome and a
// replay, take the sockets' frames, let them go, and sweep expired tokens. Each object says how
// a socket's `pub` is published and what happens when a socket goes.
import { DurableObject } from "cloudflare:workers";
import { checkChannelGrant, mayPublish, verifyToken } from "../auth.js";
import { configFor, type ChannelConfig, type Env } from "../config.js";
import { log, LogBudget } from "../log.js";
import { CLOSE, parseClientFrame, PROTOCOL_VERSION, ServiceError, type ParsedClientFrame, type PublishInput, type PublishResult } from "../protocol/index.js";
import { Alarm, type AlarmJob } from "./alarms.js";
import type { ConnectRequest } from "./connect.js";
import { Delivery } from "./delivery.js";
import { msgOut, out, type Out } from "./outgoing.js";
import { PublishRate } from "./rate-limit.js";
import type { LoggedMessage } from "./replay-log.js";
import { newCid, Sockets, stateOf, type SocketState } from "./sockets.js";

const encoder = new TextEncoder();
/** Whether a text frame's UTF-8 size is over `max`, encoding it only when the bounds cannot tell. */
export function overLimit(s: string, max: number): boolean {
  // A UTF-16 unit takes 1 to 3 UTF-8 bytes: most frames are decided without encoding.
  if (s.length > max) return true;
  if (s.length * 3 <= max) return false;
  return encoder.encode(s).byteLength > max;
}

/** What a new socket is sent after its welcome: the missed messages, or a reset. */
export type Opening = { reset: true } | { reset: false; messages: LoggedMessage[] };

export abstract class SocketHost extends DurableObject<Env> {
  protected readonly sockets: Sockets;
  protected readonly delivery: Delivery;
  private readonly pubRate = new PublishRate();
  /** Connect lines in full up to 20 a second; a storm of connects is summed up in one line. */
  private readonly connectLog = new LogBudget("connect", 20, ["channel"]);
  private alarm_: Alarm | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sockets = new Sockets(ctx);
    this.delivery = new Delivery(this.sockets);
    // Heartbeats are answered by the runtime without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  protected config(channel: string): ChannelConfig {
    return configFor(this.env, channel);
  }

  /** The jobs of this object's one alarm. */
  protected abstract alarmJobs(): Record<string, AlarmJob>;

  protected get alarms(): Alarm {
    return (this.alarm_ ??= new Alarm(this.ctx.storage, this.alarmJobs()));
  }

  override async alarm(): Promise<void> {
    // Sockets closed by this object may never report a close: count afresh on the next connect.
    this.sockets.recount();
    await this.alarms.fire();
  }

  // ---- accept ------------------------------------------------------------------------------

  /** A room at MAX_SOCKETS: accepted only to be told so (4503) and closed. */
  protected refuseFull({ transport }: ConnectRequest): Response {
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    server.accept();
    this.delivery.close(server, transport, CLOSE.unavailable, "room is full, retry later");
    return new Response(null, { status: 101, webSocket: client });
  }

  /**
   * Accepts a socket and sends its welcome, then its replay or a reset. Synchronous from accept
   * to the last replayed frame: nothing can slip between the replay and the live stream, so a
   * resume has no gap and no duplicate. What is pending goes out first, so this socket's
   * replay cannot also come in a later batch.
   */
  protected open(connect: ConnectRequest, welcome: { seq: number; epoch: string }, opening: Opening, extra: Partial<SocketState> = {}): { server: WebSocket; client: WebSocket; state: SocketState } {
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const { channel, identity, transport, batch } = connect;
    const state: SocketState = { cid: newCid(), ch: channel, tr: transport, sub: identity.sub, pub: identity.canPublish, exp: identity.exp, info: identity.info, at: Date.now(), ...extra };
    if (batch) state.b = true;
    this.delivery.flush();
    this.sockets.accept(server, state);
    const send = (frame: Out) => this.delivery.to(server, state, frame);
    send(out({ t: "welcome", v: PROTOCOL_VERSION, ch: channel, cid: state.cid, seq: welcome.seq, epoch: welcome.epoch }));
    if (opening.reset) send(out({ t: "reset", seq: welcome.seq, epoch: welcome.epoch }));
    else for (const m of opening.messages) send(msgOut(channel, m, welcome.epoch));
    const replay = opening.reset ? { replayed: 0, reset: true } : { replayed: opening.messages.length, reset: false };
    this.connectLog.log({ channel, cid: state.cid, transport, sub: state.sub, since: connect.start.cursor?.seq, ...replay, sockets: this.sockets.count() });
    return { server, client, state };
  }

  /** After accepting: wake for this socket's token expiry. */
  protected async watchExpiry(state: SocketState): Promise<void> {
    if (state.exp !== null) await this.alarms.by(state.exp * 1000);
  }

  // ---- message -----------------------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const state = stateOf(ws);
    if (state === null) return;
    // Pusher connections speak Pusher's protocol, errors included.
    if (state.pz) return this.onPusherFrame(ws, state, message);
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
      // A multiplexed connection names a channel in its frames.
      if (state.subs !== undefined) return await this.onMuxFrame(ws, state, frame);
      switch (frame.t) {
        case "pub":
          if (frame.ch !== null && frame.ch !== state.ch) throw new ServiceError("bad_frame", `this socket is subscribed to ${state.ch}, not ${frame.ch}`, frame.input.id);
          return await this.pubFromSocket(ws, state, state.ch, state, frame.input);
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

  /** A frame of a Pusher connection (only edges hold them). */
  protected async onPusherFrame(_ws: WebSocket, _state: SocketState, _message: string | ArrayBuffer): Promise<void> {}

  /** A frame of a multiplexed connection (only edges hold them). */
  protected async onMuxFrame(_ws: WebSocket, _state: SocketState, _frame: ParsedClientFrame): Promise<void> {
    throw new ServiceError("bad_frame", "not a multiplexed connection");
  }

  /** Publishes a socket's message: recorded here (a room) or by the channel's hub (an edge). */
  protected abstract publishFor(channel: string, sender: string | null, input: PublishInput): Promise<PublishResult>;

  /**
   * A socket's `pub` to `channel` (its own, or one a multiplexed connection names): checked
   * against its grant for that channel (who it is, whether it may publish) and the rate limit,
   * published, and acked (with `ch` on a multiplexed one).
   */
  protected async pubFromSocket(ws: WebSocket, state: SocketState, channel: string, grant: { sub: string | null; pub: boolean }, input: PublishInput): Promise<void> {
    if (!grant.pub) throw new ServiceError("forbidden", "this connection may not publish here", input.id);
    const perS = this.config(channel).clientPubPerS;
    const verdict = this.pubRate.take(state.cid, perS);
    // Over the limit: refused with an err; a client that keeps going is cut off.
    if (verdict === "cut") return this.delivery.close(ws, state.tr, CLOSE.rateLimited, "publish rate limit exceeded");
    if (verdict === "refuse") throw new ServiceError("rate_limited", `at most ${perS} publishes per second`, input.id);
    const result = await this.publishFor(channel, grant.sub, input);
    const ack = out(state.subs === undefined ? { t: "ack", id: result.id, seq: result.seq, duplicate: result.duplicate } : { t: "ack", ch: channel, id: result.id, seq: result.seq, duplicate: result.duplicate });
    this.delivery.to(ws, state, ack);
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
    await this.alarms.by(claims.exp * 1000);
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
    if (state) await this.afterClose(state);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.sockets.gone(ws);
    const state = this.forget(ws);
    if (state) await this.afterClose(state);
  }

  /** What this object does when a socket goes (presence leave, for instance). Must not throw. */
  protected gone(_ws: WebSocket, _state: SocketState): void {}

  /** After a socket's close was handled (an edge may leave its hub's list). */
  protected async afterClose(_state: SocketState): Promise<void> {}

  /** Cleans up after a socket that is going; never throws (a close handler must not). */
  protected forget(ws: WebSocket): SocketState | null {
    try {
      const state = stateOf(ws);
      if (state === null) return null;
      this.pubRate.forget(state.cid);
      this.gone(ws, state);
      return state;
    } catch (err) {
      log("error", { where: "close cleanup", error: String(err) });
      return null;
    }
  }

  // ---- alarm jobs ------------------------------------------------------------------------------

  /** Closes sockets whose token expired (4401); answers the next expiry, if any. */
  protected closeExpired(now: number): number | null {
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
}
