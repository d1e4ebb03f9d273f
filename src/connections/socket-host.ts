// What every object that holds sockets does with them, a channel's hub and an edge alike:
// take each socket's frames to its dialect, let sockets go along one close path, publish for
// clients under one rate limit, sweep expired tokens, and run one alarm of named jobs. Which
// dialects an object speaks, and what it does when a socket goes, are the object's.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import type { PublishResult } from "../protocol/index.js";
import type { PublishInput, PublishOptions } from "../rpc.js";
import { errorText, log } from "../server/log.js";
import { ServiceError } from "../server/service-error.js";
import { configFor, type ChannelConfig } from "../settings/config.js";
import { Alarm, type AlarmJob } from "./alarms.js";
import { Delivery } from "./delivery.js";
import type { ChannelEvent, Dialect, Ending } from "./dialects/dialect.js";
import type { DialectHost } from "./host.js";
import { PublishRate } from "./rate-limit.js";
import type { LogReader } from "./replay-pages.js";
import { kindOf, Sockets, stateOf, type Kind, type SocketState } from "./sockets.js";

export abstract class SocketHost extends DurableObject<Env> implements DialectHost {
  readonly sockets: Sockets;
  readonly delivery: Delivery;
  private readonly pubRate = new PublishRate();
  private alarm_: Alarm | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.runtime = ctx;
    this.bindings = env;
    this.sockets = new Sockets(ctx);
    this.delivery = new Delivery(this.sockets);
    // Heartbeats are answered by the runtime without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  /** The runtime's ctx and the env, as this object's dialects read them. */
  readonly runtime: DurableObjectState;
  readonly bindings: Env;

  config(channel: string): ChannelConfig {
    return configFor(this.env, channel);
  }

  /** Where the later pages of a long replay come from (the hub's log, an edge's tail and hub). */
  abstract readonly replays: LogReader;

  /** The dialects this object speaks, by kind. */
  protected abstract readonly dialects: Partial<Record<Kind, Dialect>>;

  /** The jobs of this object's one alarm. */
  protected abstract alarmJobs(): Record<string, AlarmJob>;

  get alarms(): Alarm {
    return (this.alarm_ ??= new Alarm(this.ctx.storage, this.alarmJobs()));
  }

  override async alarm(): Promise<void> {
    // Sockets closed by this object may never report a close: count afresh on the next connect.
    this.sockets.recount();
    await this.alarms.fire();
  }

  protected dialectOf(state: SocketState): Dialect | null {
    return this.dialects[kindOf(state)] ?? null;
  }

  /** One event of a channel to every socket here that is subscribed to it, in each one's dialect. */
  protected fanOut(event: ChannelEvent, skip: string | null): number {
    let delivered = 0;
    for (const dialect of Object.values(this.dialects)) delivered += dialect.deliver(event, skip);
    return delivered;
  }

  /** This object's subscribers of a channel, over every dialect. */
  protected subscribersOf(channel: string): number {
    let n = 0;
    for (const dialect of Object.values(this.dialects)) n += dialect.count(channel);
    return n;
  }

  // ---- message -----------------------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const state = stateOf(ws);
    if (state === null) return;
    await this.dialectOf(state)?.onFrame(ws, state, message);
  }

  /** Publishes for a client (the hub records; an edge forwards to the hub, which answers). */
  abstract publishFor(channel: string, input: PublishInput, options: PublishOptions): Promise<PublishResult>;

  /**
   * A socket's `pub` to `channel` (its own, or one a connection names): checked against its
   * grant for that channel (who it is, whether it may publish) and the rate limit, then
   * published. Answers the result, or null when the socket was cut off for flooding.
   */
  async publishFromSocket(ws: WebSocket, state: SocketState, channel: string, grant: { sub: string | null; pub: boolean; exp: number | null }, input: PublishInput): Promise<PublishResult | null> {
    // Frames still queued behind a close (the server's own, or a cut) publish nothing.
    if (ws.readyState !== WebSocket.READY_STATE_OPEN) return null;
    if (!grant.pub) throw new ServiceError("forbidden", "this connection may not publish here", input.id);
    // A grant dies with its token, not with the sweep that closes what it opened.
    if (grant.exp !== null && grant.exp * 1000 <= Date.now()) throw new ServiceError("unauthorized", "token expired: send a fresh one", input.id);
    const perS = this.config(channel).clientPubPerS;
    const verdict = this.pubRate.take(state.cid, perS);
    // Over the limit: refused with an err; a client that keeps going is cut off.
    if (verdict === "cut") {
      this.end(ws, state, "flooding", "publish rate limit exceeded");
      return null;
    }
    if (verdict === "refuse") throw new ServiceError("rate_limited", `at most ${perS} publishes per second`, input.id);
    // A client's ids are its own: its user's, or this connection's when it has no user.
    try {
      return await this.publishFor(channel, input, { sender: grant.sub, exclude: null, by: "client", scope: grant.sub === null ? `c:${state.cid}` : `u:${grant.sub}` });
    } catch (err) {
      // The hub's refusal (not found, conflict, too large...) names the pub it answers.
      if (err instanceof ServiceError && err.id === undefined) throw new ServiceError(err.code, err.message, input.id);
      throw err;
    }
  }

  // ---- close: one path for every socket ----------------------------------------------------

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
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
    const state = this.forget(ws);
    if (state) await this.afterClose(state);
  }

  /**
   * Cleans up after a socket that is going, once however often it is reported (a close and an
   * error, or the server's own close): off the count, out of the rate limit, out of its dialect,
   * then the object's own `gone`. Never throws (a close handler must not).
   */
  forget(ws: WebSocket): SocketState | null {
    try {
      const state = stateOf(ws);
      if (state === null || !this.sockets.gone(ws, state.cid)) return null;
      this.pubRate.forget(state.cid);
      this.dialectOf(state)?.gone(ws, state);
      this.gone(ws, state);
      return state;
    } catch (err) {
      log("error", { where: "close cleanup", error: errorText(err) });
      return null;
    }
  }

  /** Ends a socket for the server's own reason, in its dialect, along the same close path. */
  end(ws: WebSocket, state: SocketState, why: Ending, message: string): void {
    if (this.forget(ws) === null) return;
    this.dialectOf(state)?.end(ws, state, why, message);
    void this.afterClose(state);
  }

  /** What this object does when a socket goes (presence leave, for instance). Must not throw. */
  protected gone(_ws: WebSocket, _state: SocketState): void {}

  /** After a socket's close was handled (an edge may leave its hub's list). */
  async afterClose(_state: SocketState): Promise<void> {}

  // ---- alarm jobs --------------------------------------------------------------------------

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
      this.end(ws, state, "expired", "token expired");
      log("expired", { channel: state.ch, cid: state.cid, sub: state.sub });
    }
    return next;
  }
}
