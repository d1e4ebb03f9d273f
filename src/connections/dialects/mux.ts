// `GET /v1/ws` (DESIGN.md "Edges → Multiplexed connections"): one socket with no channel, many
// channels subscribed with `sub` frames, every frame about a channel naming it. Held by the
// edges of the connection pool; each channel is attached through the edge's ChannelEdge.
import { CLOSE, isPresenceChannel, LIMITS, type ServerFrame } from "../../protocol/index.js";
import type { MemberList } from "../../rpc.js";
import { checkChannelGrant, mayPublish, needsToken, verifyToken, type Claims } from "../../server/auth.js";
import { parseClientFrame, type SubRequest } from "../../server/input.js";
import { count } from "../../server/metrics.js";
import { ServiceError } from "../../server/service-error.js";
import type { ChannelEdge } from "../../edge/channel-edge.js";
import type { ConnectRequest } from "../connect.js";
import { overLimit } from "../frame-size.js";
import type { DialectHost } from "../host.js";
import { PRESENCE_SWEEP_MS } from "../liveness.js";
import { msgOut, out, type Out } from "../outgoing.js";
import { ReplayPages } from "../replay-pages.js";
import { newState, type MuxSub, type SocketState } from "../sockets.js";
import { IndexedConnections } from "./connection-index.js";
import type { ChannelEvent, Dialect, Ending } from "./dialect.js";
import { Reservations } from "./reservations.js";

export function render(event: ChannelEvent): Out | null {
  switch (event.t) {
    case "msg":
      return msgOut(event.ch, event.m, event.epoch);
    case "reset":
      return out({ t: "reset", ch: event.ch, seq: event.seq, epoch: event.epoch });
    case "join":
    case "leave":
      return out({ t: event.t, ch: event.ch, member: event.member });
    case "closed":
      return out({ t: "closed", ch: event.ch, seq: event.seq });
    case "count":
      return null;
  }
}

const ENDINGS: Record<Ending, (typeof CLOSE)[keyof typeof CLOSE]> = { expired: CLOSE.unauthorized, silent: CLOSE.noPing, full: CLOSE.unavailable, tooLarge: CLOSE.tooLarge, flooding: CLOSE.rateLimited };

/** A connection that holds no subscription this long is closed (4408): idle sockets cost a pool its room. */
export const IDLE_MS = 5 * 60_000;

export class MuxConnections extends IndexedConnections implements Dialect {
  readonly kind = "mux";
  private readonly reservations = new Reservations();
  /** Long replays, page by page, per channel of a connection, as it reads them. */
  private readonly pages: ReplayPages;

  constructor(
    private readonly host: DialectHost,
    private readonly edge: ChannelEdge,
  ) {
    super(host.sockets, "mx");
    this.pages = new ReplayPages({
      inTurn: (ch, step) => host.replays.inTurn(ch, step),
      page: (ch, after, epoch) => host.replays.page(ch, after, epoch),
      delivery: (ch) => this.index.delivery(ch),
      socketOf: (ch, cid) => this.index.byCid(ch, cid),
      frames: {
        msg: (ch, m, epoch) => msgOut(ch, m, epoch),
        more: (ch, seq) => out({ t: "more", ch, seq }),
        reset: (ch, seq, epoch) => out({ t: "reset", ch, seq, epoch }),
      },
      endSlow: (ws, state) => host.end(ws, state, "full", `replay page not read within ${LIMITS.replayAckMs / 1000} s; resume from the last seq received`),
    });
  }

  /**
   * Accepts a connection with no channel yet: welcome v2; channels come with `sub` frames. An
   * edge at MAX_SOCKETS refuses it (4503), as a channel's room does.
   */
  async accept(connect: ConnectRequest): Promise<Response> {
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    if (this.host.sockets.count() >= this.host.config("").maxSockets) {
      server.accept();
      this.host.delivery.close(server, "ws", CLOSE.unavailable, "this connection edge is full, retry later");
      return new Response(null, { status: 101, webSocket: client });
    }
    const claims = connect.mux!.claims;
    const now = Date.now();
    const state = newState({ ch: "", tr: "ws", sub: claims?.sub ?? null, b: true, subs: {}, claims, idle: now });
    this.host.sockets.accept(server, state);
    this.index.idleSince(state.cid, now);
    this.host.delivery.to(server, state, out({ t: "welcome", v: 2, cid: state.cid }));
    count(this.host.bindings, "", "connect");
    await this.host.alarms.by(now + IDLE_MS);
    return new Response(null, { status: 101, webSocket: client });
  }

  deliver(event: ChannelEvent, skip: string | null): number {
    if (this.index.count(event.ch) === 0) return 0;
    if (event.t === "reset") this.pages.dropChannel(event.ch); // live after the reset: replays end
    const frame = render(event);
    return frame === null ? 0 : this.index.delivery(event.ch).toAll(frame, this.index.byCid(event.ch, skip));
  }

  end(ws: WebSocket, state: SocketState, why: Ending, message: string): void {
    this.host.delivery.close(ws, state.tr, ENDINGS[why], message);
  }

  /** An error about channel `ch` (or the connection) as this connection's `err` frame. */
  private refuse(ws: WebSocket, state: SocketState, err: ServiceError, ch: string | null): void {
    const frame = ch === null ? err.toFrame() : { ...err.toFrame(), ch };
    // Sent straight to the socket: a refusal makes no per-channel state.
    this.host.delivery.to(ws, state, out(frame));
  }

  async onFrame(ws: WebSocket, state: SocketState, message: string | ArrayBuffer): Promise<void> {
    const max = this.host.config("").maxMessageBytes;
    if (typeof message !== "string") return this.refuse(ws, state, new ServiceError("bad_frame", "binary frames are not supported; send JSON text"), null);
    if (overLimit(message, max)) return this.host.end(ws, state, "tooLarge", `frame over MAX_MESSAGE_BYTES (${max})`);
    let ch: string | null = null;
    try {
      const frame = parseClientFrame(message);
      ch = frame.t === "sub" ? frame.sub.ch : frame.t === "unsub" || frame.t === "pub" || frame.t === "more" ? frame.ch : null;
      switch (frame.t) {
        case "sub":
          return await this.subscribe(ws, state, frame.sub);
        case "unsub":
          return this.unsubscribe(ws, state, frame.ch, null);
        case "pub": {
          if (frame.ch === null) throw new ServiceError("bad_frame", 'a multiplexed connection names the channel of a pub: "ch"', frame.input.id);
          const sub = this.index.subsOf(ws)[frame.ch];
          if (sub === undefined) throw new ServiceError("forbidden", `not subscribed to ${frame.ch}`, frame.input.id);
          const result = await this.host.publishFromSocket(ws, state, frame.ch, { pub: sub.pub, sub: sub.sub ?? state.sub, exp: sub.exp }, frame.input);
          if (result !== null) this.host.delivery.to(ws, state, out({ t: "ack", ch: frame.ch, id: result.id, seq: result.seq, duplicate: result.duplicate, ...(result.ref === undefined ? {} : { ref: result.ref }) } satisfies ServerFrame));
          return;
        }
        case "auth":
          throw new ServiceError("bad_frame", 'a multiplexed connection sends a fresh token with "sub" (per channel)');
        case "more":
          if (frame.ch === null) throw new ServiceError("bad_frame", 'a multiplexed connection names the channel of a more: "ch"');
          return await this.pages.more(state, frame.ch);
        default:
          return; // unknown types are ignored: newer clients may send them
      }
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      this.refuse(ws, state, err, ch);
    }
  }

  /** `sub`: authorized per channel (a per-sub token, else the connection's), then like a socket of its own. */
  private async subscribe(ws: WebSocket, state: SocketState, req: SubRequest): Promise<void> {
    const max = this.host.config(req.ch).maxSubscriptions;
    if (!(await this.reservations.hold(state.cid, req.ch, this.index.subsOf(ws), max, () => this.subscribeNow(ws, state, req)))) {
      throw new ServiceError("bad_request", `already subscribed to ${req.ch}`);
    }
  }

  /** The claims a `sub` is granted by: its own token, else the connection's while that is unexpired. */
  private async claimsFor(state: SocketState, req: SubRequest): Promise<Claims | null> {
    if (req.token !== null) return verifyToken(this.host.bindings, req.token);
    const claims = state.claims ?? null;
    if (claims !== null && claims.exp * 1000 <= Date.now()) throw new ServiceError("unauthorized", "the connection's token expired: send a fresh one with the sub");
    return claims as Claims | null;
  }

  private async subscribeNow(ws: WebSocket, state: SocketState, req: SubRequest): Promise<void> {
    const { ch } = req;
    const env = this.host.bindings;
    const claims = await this.claimsFor(state, req);
    if (claims === null && needsToken(env, ch)) throw new ServiceError("unauthorized", `channel ${ch} needs a token: send one with the sub, or connect with one`);
    if (claims !== null) checkChannelGrant(env, ch, claims);
    const member = isPresenceChannel(ch);
    if (member && claims?.sub === undefined) throw new ServiceError("forbidden", "presence channels need a token with sub");
    const sub: MuxSub = { sub: claims?.sub ?? null, pub: claims !== null && mayPublish(env, claims, ch), exp: claims?.exp ?? null };
    let joined = false;
    await this.edge.inTurn(ch, async () => {
      if (ws.readyState !== WebSocket.READY_STATE_OPEN) return;
      const { head, opening } = await this.edge.attach(ch, { cursor: req.cursor, rewind: req.rewind });
      // An unsubscribe (or a close) that came while attaching wins: nothing is added.
      if (this.reservations.cancelled(state.cid, ch) || ws.readyState !== WebSocket.READY_STATE_OPEN) return;
      // From here to the last replayed frame nothing is awaited: no live frame can overtake.
      // What is pending for the channel goes first: this socket's replay is not in it.
      const delivery = this.index.delivery(ch);
      delivery.flush();
      try {
        this.index.add(ws, ch, sub);
      } catch (err) {
        // Refused: the attach is undone (the edge leaves the hub's list if nobody else is here).
        void this.edge.left(ch, state.cid, false);
        throw err;
      }
      delivery.to(ws, state, out({ t: "subscribed", ch, seq: head.seq, epoch: head.epoch }));
      if (opening.reset) delivery.to(ws, state, out({ t: "reset", ch, seq: head.seq, epoch: head.epoch }));
      else for (const m of opening.messages) delivery.to(ws, state, msgOut(ch, m, head.epoch));
      if (!opening.reset && opening.more) this.pages.begin(ws, state, ch, opening.messages.at(-1)!.seq, head.epoch);
      if (member) {
        // Still inside this channel's turn: others' joins and leaves queue behind the list.
        const info = claims!.info === undefined ? null : JSON.stringify(claims!.info);
        const list = (await this.edge.hub(ch).presenceJoin(this.edge.edgeName, state.cid, claims!.sub!, info, null)) as unknown as MemberList;
        joined = true;
        // Closed while joining: its close saw no member yet, so it leaves here.
        if (ws.readyState !== WebSocket.READY_STATE_OPEN || this.index.subsOf(ws)[ch] === undefined) return void this.edge.left(ch, state.cid, true);
        delivery.to(ws, state, out({ t: "members", ch, ...list }));
      }
    });
    if (this.index.subsOf(ws)[ch] === undefined && !joined) void this.edge.left(ch, state.cid, false);
    if (sub.exp !== null) await this.host.alarms.by(sub.exp * 1000);
    if (member) await this.host.alarms.by(Date.now() + PRESENCE_SWEEP_MS);
  }

  /** `unsub`, or a subscription the server ends (`why` says why). */
  private unsubscribe(ws: WebSocket, state: SocketState, ch: string, why: ServiceError | null): void {
    if (this.index.subsOf(ws)[ch] === undefined) {
      // Overtaking its own sub: that sub undoes itself, and the client hears it is unsubscribed.
      if (why === null && this.reservations.cancel(state.cid, ch)) return void this.host.delivery.to(ws, state, out({ t: "unsubscribed", ch }));
      if (why === null) throw new ServiceError("bad_request", `not subscribed to ${ch}`);
      return;
    }
    const delivery = this.index.delivery(ch);
    delivery.flush();
    this.pages.drop(state.cid, ch);
    this.index.remove(ws, ch);
    delivery.to(ws, state, out(why === null ? { t: "unsubscribed", ch } : { t: "unsubscribed", ch, code: why.code, message: why.message }));
    void this.edge.left(ch, state.cid, isPresenceChannel(ch));
  }

  override gone(ws: WebSocket, state: SocketState): void {
    this.pages.dropConnection(state.cid);
    super.gone(ws, state);
  }

  override dropChannel(channel: string): void {
    this.pages.dropChannel(channel);
    super.dropChannel(channel);
  }

  /** The alarm's job: connections idle (no subscription) past IDLE_MS; answers when to look again. */
  idleOnes(now: number): { due: [WebSocket, SocketState][]; next: number | null } {
    const { due, next } = this.index.idleBefore(now - IDLE_MS);
    return { due, next: next === null ? null : next + IDLE_MS };
  }

  /** The alarm's job: ends the subscriptions whose token expired; answers the next expiry. */
  endExpired(now: number): number | null {
    const { due, next } = this.index.expired(now);
    for (const [ws, state, ch] of due) this.unsubscribe(ws, state, ch, new ServiceError("unauthorized", "token expired"));
    return next;
  }
}
