import { checkChannelGrant, mayPublish, needsToken, verifyToken } from "./auth.js";
import type { Env } from "./config.js";
import { log } from "./log.js";
import { count } from "./metrics.js";
import { CLOSE, isValidChannel, LIMITS, CHANNEL_RULE, ServiceError, type Member, type Cursor, type ParsedClientFrame, type PublishInput, type PublishResult, type SubRequest } from "./protocol/index.js";
import { requirePusherApp } from "./pusher/app.js";
import { authorizePusherChannel, isPrivate, PusherRefusal, type PusherGrant } from "./pusher/channel-auth.js";
import * as pusher from "./pusher/frames.js";
import type { RoomObject } from "./room-object.js";
import { readConnect, rewindOf, type ConnectRequest, type Start } from "./room/connect.js";
import { hubStub, type Push, type Pushed } from "./room/edges.js";
import { msgOut, out } from "./room/outgoing.js";
import type { LoggedMessage, Replay } from "./room/replay-log.js";
import { overLimit, SocketHost, type Opening } from "./room/socket-host.js";
import { Multiplexed } from "./room/mux.js";
import { PRESENCE_SWEEP_MS, PRESENCE_TIMEOUT_MS } from "./room/presence.js";
import { dialectOf, isPresenceChannel, newCid, stateOf, type MuxSub, type SocketState } from "./room/sockets.js";
import { PublishRate } from "./room/rate-limit.js";
import { ChannelTail } from "./room/tail.js";

/** Frames an edge keeps per channel to serve resumes without asking the hub. */
const TAIL_FRAMES = 512;

/** Where an edge is in a channel, kept in its storage: survives eviction and restarts. */
interface Position {
  seq: number;
  epoch: string;
}
const positionKey = (channel: string) => `position:${channel}`;

/** Set on an edge of the Pusher pool: its runtime answers Pusher's ping instead of hibercast's. */
const PUSHER_POOL_KEY = "pusher-pool";
/** Pusher caps presence channels at 100 members; so do we, for Pusher clients. */
const PUSHER_PRESENCE_CAP = 100;
/** A Pusher presence connection silent this long is pinged by the server (pusher-js answers). */
const PUSHER_PING_AFTER_MS = 60_000;

/**
 * An edge of a sharded channel: it holds sockets and delivers what the channel's hub (its
 * RoomObject) pushes, each seq to each socket exactly once and in order. Its lifecycle: accept
 * (attach to the hub, or serve from the tail), take the hub's pushes (drop what it has, fetch
 * gaps from the hub's log), forward sockets' publishes to the hub, and leave the hub's list when
 * its last socket goes.
 *
 * Work on a channel is done one step at a time (a promise chain per channel): a push that
 * arrives while a socket is being attached, or while a gap is being fetched, waits its turn, so
 * frames reach sockets in seq order and a new socket's replay is never overtaken.
 */
export class EdgeObject extends SocketHost {
  private readonly tails = new Map<string, ChannelTail>();
  private readonly mux = new Multiplexed(this.sockets, "mx");
  private readonly pusher = new Multiplexed(this.sockets, "pz");
  private readonly clientEvents = new PublishRate();
  /** Channels each connection is being subscribed to right now (not in its attachment yet). */
  private readonly subscribing = new Map<string, Set<string>>();
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    if (ctx.storage.kv.get(PUSHER_POOL_KEY) === true) this.answerPusherPings();
  }

  /** One ping/pong pair per object: an edge of the Pusher pool answers Pusher's, without waking. */
  private answerPusherPings(): void {
    this.ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(pusher.PING, pusher.PONG));
  }

  /** The index of a connection's dialect: hibercast's multiplexed connections or Pusher's. */
  private indexOf(state: SocketState): Multiplexed {
    return dialectOf(state) === "pz" ? this.pusher : this.mux;
  }

  protected alarmJobs() {
    return {
      expiry: (now: number) => this.closeExpired(now),
      subscriptions: (now: number) => this.endExpired(now),
      presence: (now: number) => this.sweepSilent(now),
    };
  }

  /**
   * Closes connections on presence channels that stopped pinging, so a vanished client does not
   * stay a member (their close makes them leave). pusher-js pings only when it hears nothing, so
   * a quiet Pusher connection is pinged first. Answers when to look again.
   */
  private sweepSilent(now: number): number | null {
    let members = 0;
    for (const ws of [...this.sockets.connections("mx"), ...this.sockets.connections("pz")]) {
      const state = stateOf(ws);
      if (state === null || !Object.keys(state.subs ?? {}).some(isPresenceChannel)) continue;
      members++;
      const silent = now - Math.max(this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0, state.at);
      if (state.pz && silent > PUSHER_PING_AFTER_MS && silent <= PRESENCE_TIMEOUT_MS) send(ws, pusher.pusherPing());
      if (silent <= PRESENCE_TIMEOUT_MS) continue;
      if (state.pz) closeWith(ws, pusher.PUSHER_CLOSE.pongNotReceived, "Pong reply not received");
      else this.delivery.close(ws, state.tr, CLOSE.noPing, "no ping received");
      void this.afterClose(state);
      this.forget(ws);
    }
    return members > 0 ? now + PRESENCE_SWEEP_MS : null;
  }

  private hub(channel: string): DurableObjectStub<RoomObject> {
    return hubStub(this.env, channel);
  }

  /** Runs `step` after every earlier step for this channel. */
  private serial<T>(channel: string, step: () => Promise<T>): Promise<T> {
    const next = (this.chains.get(channel) ?? Promise.resolve()).then(step, step);
    this.chains.set(channel, next.catch(() => {}));
    return next;
  }

  /** The channel's tail: in memory, or rebuilt (empty) from the stored position after eviction. */
  private tailOf(channel: string): ChannelTail | null {
    let tail = this.tails.get(channel) ?? null;
    if (tail === null) {
      const at = this.ctx.storage.kv.get<Position>(positionKey(channel));
      if (at === undefined) return null;
      tail = new ChannelTail(at.epoch, at.seq, TAIL_FRAMES);
      this.tails.set(channel, tail);
    }
    return tail;
  }

  private remember(channel: string, tail: ChannelTail): void {
    this.ctx.storage.kv.put<Position>(positionKey(channel), { seq: tail.lastSeq, epoch: tail.epoch });
  }

  // ---- accept ------------------------------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const connect = readConnect(request);
    if (connect === null || connect.edge === undefined) return new Response("not found", { status: 404 });
    if (connect.mux?.pusher) return this.acceptPusher(connect.edge);
    if (connect.mux !== undefined) return this.acceptConnection(connect, connect.edge);
    return this.serial(connect.channel, () => this.accept(connect, connect.edge!));
  }

  private async accept(connect: ConnectRequest, name: string): Promise<Response> {
    const { channel } = connect;
    if (this.sockets.count() >= this.config(channel).maxSockets) return this.refuseFull(connect);
    const { tail, opening } = await this.attach(channel, name, connect.start);
    const { client, state } = this.open(connect, { seq: tail.lastSeq, epoch: tail.epoch }, opening, { edge: name });
    count(this.env, channel, "connect");
    await this.watchExpiry(state);
    return new Response(null, { status: 101, webSocket: client });
  }

  /**
   * Gets the channel ready for a new subscriber: its tail when that covers the subscriber, else
   * the hub answers (and lists this edge), and the edge first catches up what it missed. Runs
   * inside the channel's serial steps; the caller sends the opening with no await after this.
   */
  private async attach(channel: string, name: string, start: Start): Promise<{ tail: ChannelTail; opening: Opening }> {
    let tail = this.tailOf(channel);
    const opening = tail === null ? null : this.fromTail(tail, start, this.config(channel).latest);
    if (tail !== null && opening !== null) return { tail, opening };
    const cursor: Cursor | null = tail === null ? null : { seq: tail.lastSeq, epoch: tail.epoch };
    const attached = await this.hub(channel).attachEdge(channel, name, start, cursor);
    if (tail === null) {
      tail = new ChannelTail(attached.epoch, attached.seq, TAIL_FRAMES);
      this.tails.set(channel, tail);
    } else if (attached.catchUp !== null) {
      this.catchUp(channel, tail, attached.catchUp, attached.seq, attached.epoch);
    }
    this.remember(channel, tail);
    return { tail, opening: attached.opening };
  }

  /** A new socket's opening served from the tail, or null when the tail cannot serve it exactly. */
  private fromTail(tail: ChannelTail, start: Start, latest: boolean): Opening | null {
    const now = Date.now();
    if (start.cursor !== null) {
      const replay = tail.since(start.cursor, now);
      return replay.reset ? null : { reset: false, messages: replay.messages };
    }
    const rewind = rewindOf(start, latest);
    return tail.holdsLast(rewind) ? { reset: false, messages: tail.last(rewind, now) } : null;
  }

  // ---- pushes from the hub -----------------------------------------------------------------

  /** The hub's push: the next messages, or a reset after a purge. Answers the seq now delivered. */
  async receive(channel: string, name: string, push: Push): Promise<number> {
    return this.serial(channel, async () => {
      const tail = this.tailOf(channel);
      if (tail === null) return 0; // no sockets here: the hub drops us from its list on detach
      if ("reset" in push) {
        this.reset(channel, tail, push.reset, push.epoch);
      } else if ("presence" in push) {
        const { t, member, except } = push.presence;
        const skip = except === null ? null : this.sockets.byCid(except);
        this.mux.delivery(channel).toAll(out({ t, ch: channel, member }), skip);
        if (this.pusher.count(channel) > 0) this.pusher.sendAll(channel, (t === "join" ? pusher.memberAdded : pusher.memberRemoved)(channel, member), except);
      } else {
        await this.apply(channel, name, tail, push.epoch, push.messages);
      }
      this.remember(channel, tail);
      return tail.lastSeq;
    });
  }

  /** The hub's alarm after a failed push: catch up from its log. */
  async sync(channel: string, name: string): Promise<void> {
    await this.serial(channel, async () => {
      const tail = this.tailOf(channel);
      if (tail === null) return;
      const { seq, epoch, replay } = await this.hub(channel).replayFor(channel, { seq: tail.lastSeq, epoch: tail.epoch });
      this.catchUp(channel, tail, replay, seq, epoch);
      this.remember(channel, tail);
      log("sync", { channel, edge: name, seq: tail.lastSeq });
    });
  }

  /** Delivers messages in seq order: drops what was delivered, fetches a gap from the hub first. */
  private async apply(channel: string, name: string, tail: ChannelTail, epoch: string, messages: Pushed[]): Promise<void> {
    for (const m of messages) {
      if (epoch !== tail.epoch) {
        // A purge this edge did not hear of: reset, and live continues with this message.
        this.reset(channel, tail, m.seq - 1, epoch);
      }
      if (m.seq <= tail.lastSeq) continue;
      if (m.seq > tail.lastSeq + 1) {
        const repaired = await this.hub(channel).replayFor(channel, { seq: tail.lastSeq, epoch: tail.epoch });
        this.catchUp(channel, tail, repaired.replay, m.seq - 1, epoch, m.seq - 1);
        // Whatever the hub could not serve is a reset, never a silent gap.
        if (tail.lastSeq < m.seq - 1) this.reset(channel, tail, m.seq - 1, epoch);
        log("gap", { channel, edge: name, to: m.seq - 1, reset: repaired.replay.reset });
        if (m.seq <= tail.lastSeq) continue;
      }
      this.deliver(channel, tail, m, m.skip ?? null);
    }
  }

  /**
   * Brings the tail to the hub's head from a replay: its messages are delivered (up to `upTo`),
   * or when the log cannot serve the edge's cursor, sockets get `reset` at `seq`.
   */
  private catchUp(channel: string, tail: ChannelTail, replay: Replay, seq: number, epoch: string, upTo = Infinity): void {
    if (replay.reset) return this.reset(channel, tail, Math.min(seq, upTo), epoch);
    for (const m of replay.messages) if (m.seq === tail.lastSeq + 1 && m.seq <= upTo) this.deliver(channel, tail, m);
  }

  /** One message to every socket of the channel here, in each one's dialect, but connection `skip`. */
  private deliver(channel: string, tail: ChannelTail, m: LoggedMessage, skip: string | null = null): void {
    tail.push(m);
    const frame = msgOut(channel, m, tail.epoch);
    const skipWs = skip === null ? null : this.sockets.byCid(skip);
    let delivered = this.delivery.toAll(frame, skipWs) + this.mux.delivery(channel).toAll(frame, skipWs);
    if (this.pusher.count(channel) > 0) delivered += this.pusher.sendAll(channel, pusher.channelEvent(channel, m), skip);
    count(this.env, channel, "delivered", delivered);
  }

  private reset(channel: string, tail: ChannelTail, seq: number, epoch: string): void {
    tail.restart(seq, epoch);
    this.delivery.toAll(out({ t: "reset", seq, epoch }));
    this.mux.delivery(channel).toAll(out({ t: "reset", ch: channel, seq, epoch }));
  }

  // ---- sockets' publishes, counts, leaving ---------------------------------------------------

  /** A socket's `pub` is recorded by the hub; the ack is sent from here when it answers. */
  protected async publishFor(channel: string, sender: string | null, input: PublishInput): Promise<PublishResult> {
    return this.hub(channel).publishFromEdge(channel, input, sender);
  }

  /** This edge's sockets of a channel, by transport (the hub sums its edges for stats). */
  async counts(channel: string): Promise<{ ws: number; sse: number }> {
    return { ws: this.sockets.countOf("ws") + this.mux.count(channel) + this.pusher.count(channel), sse: this.sockets.countOf("sse") };
  }

  /** When the last socket of a channel goes, the edge leaves its hub's list and forgets the channel. */
  protected override async afterClose(state: SocketState): Promise<void> {
    const name = state.edge;
    if (name === undefined) return;
    const channels = state.subs === undefined ? [state.ch] : Object.keys(state.subs);
    const leaving = channels.filter(isPresenceChannel).map((ch) => this.serial(ch, () => this.hub(ch).presenceLeave(ch, state.cid)));
    await Promise.all([...leaving, ...channels.map((ch) => this.leaveIfIdle(ch, name))]);
  }

  private leaveIfIdle(channel: string, name: string): Promise<void> {
    return this.serial(channel, async () => {
      const singles = this.sockets.countOf("ws") + this.sockets.countOf("sse");
      // tailOf, not the in-memory map: an edge woken from eviction must leave its hub's list too.
      if (singles > 0 || this.mux.count(channel) > 0 || this.pusher.count(channel) > 0 || this.tailOf(channel) === null) return;
      await this.hub(channel).detachEdge(name);
      this.tails.delete(channel);
      this.mux.forget(channel);
      this.pusher.forget(channel);
      this.ctx.storage.kv.delete(positionKey(channel));
    });
  }

  protected override gone(ws: WebSocket, state: SocketState): void {
    if (state.subs !== undefined) this.indexOf(state).drop(state);
    if (state.pz) this.clientEvents.forget(state.cid);
  }

  // ---- multiplexed connections (GET /v1/ws) --------------------------------------------------

  /** Accepts a connection with no channel yet: welcome v2; channels come with `sub` frames. */
  private async acceptConnection(connect: ConnectRequest, name: string): Promise<Response> {
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const claims = connect.mux!.claims;
    const state: SocketState = { cid: newCid(), ch: "", tr: "ws", sub: claims?.sub ?? null, pub: false, exp: null, info: null, at: Date.now(), b: true, subs: {}, claims, edge: name };
    this.sockets.accept(server, state);
    this.delivery.to(server, state, out({ t: "welcome", v: 2, cid: state.cid }));
    count(this.env, "", "connect");
    return new Response(null, { status: 101, webSocket: client });
  }

  protected override async onMuxFrame(ws: WebSocket, state: SocketState, frame: ParsedClientFrame): Promise<void> {
    const ch = frame.t === "sub" ? frame.sub.ch : frame.t === "unsub" ? frame.ch : frame.t === "pub" ? frame.ch : null;
    try {
      switch (frame.t) {
        case "sub":
          return await this.subscribe(ws, state, frame.sub);
        case "unsub":
          return this.unsubscribe(ws, state, frame.ch, null);
        case "pub": {
          if (frame.ch === null) throw new ServiceError("bad_frame", 'a multiplexed connection names the channel of a pub: "ch"', frame.input.id);
          const sub = this.mux.subsOf(ws)[frame.ch];
          if (sub === undefined) throw new ServiceError("forbidden", `not subscribed to ${frame.ch}`, frame.input.id);
          return await this.pubFromSocket(ws, state, frame.ch, { pub: sub.pub, sub: sub.sub ?? state.sub }, frame.input);
        }
        case "auth":
          throw new ServiceError("bad_frame", 'a multiplexed connection sends a fresh token with "sub" (per channel)');
        default:
          return; // unknown types are ignored: newer clients may send them
      }
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      const frameOut = ch === null ? err.toFrame() : { ...err.toFrame(), ch };
      this.mux.delivery(ch ?? "").to(ws, state, out(frameOut));
    }
  }

  /** `sub`: authorized per channel (a per-sub token, else the connection's), then like a socket of its own. */
  private async subscribe(ws: WebSocket, state: SocketState, req: SubRequest): Promise<void> {
    if (!(await this.reserving(ws, state, req.ch, () => this.subscribeNow(ws, state, req)))) throw new ServiceError("bad_request", `already subscribed to ${req.ch}`);
  }

  /**
   * Runs a connection's subscribe to `ch` while holding its place: subscriptions still being set
   * up count too (several subscribe frames may arrive at once). Answers false, doing nothing, when
   * the connection is subscribed to `ch` already or on its way; refuses one over MAX_SUBSCRIPTIONS.
   */
  private async reserving(ws: WebSocket, state: SocketState, ch: string, subscribe: () => Promise<void>): Promise<boolean> {
    const pending = this.subscribing.get(state.cid) ?? new Set<string>();
    const subs = this.indexOf(state).subsOf(ws);
    if (subs[ch] !== undefined || pending.has(ch)) return false;
    const max = this.config(ch).maxSubscriptions;
    if (Object.keys(subs).length + pending.size >= max) throw new ServiceError("too_large", `at most ${max} channels per connection (MAX_SUBSCRIPTIONS)`);
    pending.add(ch);
    this.subscribing.set(state.cid, pending);
    try {
      await subscribe();
      return true;
    } finally {
      pending.delete(ch);
      if (pending.size === 0) this.subscribing.delete(state.cid);
    }
  }

  private async subscribeNow(ws: WebSocket, state: SocketState, req: SubRequest): Promise<void> {
    const { ch } = req;
    const claims = req.token !== null ? await verifyToken(this.env, req.token) : (state.claims ?? null);
    if (claims === null && needsToken(this.env, ch)) throw new ServiceError("unauthorized", `channel ${ch} needs a token: send one with the sub, or connect with one`);
    if (claims !== null) checkChannelGrant(this.env, ch, claims);
    const member = isPresenceChannel(ch);
    if (member && claims?.sub === undefined) throw new ServiceError("forbidden", "presence channels need a token with sub");
    const sub: MuxSub = { sub: claims?.sub ?? null, pub: claims !== null && mayPublish(this.env, claims, ch), exp: claims?.exp ?? null };
    const start: Start = { cursor: req.cursor, rewind: req.rewind };
    await this.serial(ch, async () => {
      if (state.subs === undefined || ws.readyState !== WebSocket.READY_STATE_OPEN) return;
      const { tail, opening } = await this.attach(ch, state.edge!, start);
      // From here to the last replayed frame nothing is awaited: no live frame can overtake.
      const delivery = this.mux.delivery(ch);
      delivery.flush();
      this.mux.add(ws, ch, sub);
      delivery.to(ws, state, out({ t: "subscribed", ch, seq: tail.lastSeq, epoch: tail.epoch }));
      if (opening.reset) delivery.to(ws, state, out({ t: "reset", ch, seq: tail.lastSeq, epoch: tail.epoch }));
      else for (const m of opening.messages) delivery.to(ws, state, msgOut(ch, m, tail.epoch));
      if (member) {
        // Still inside this channel's steps: others' joins and leaves queue behind the list.
        const info = claims!.info === undefined ? null : JSON.stringify(claims!.info);
        const list = (await this.hub(ch).presenceJoin(ch, state.edge!, state.cid, claims!.sub!, info)) as { members: Member[]; count: number } | null;
        delivery.to(ws, state, out({ t: "members", ch, ...list! }));
      }
    });
    if (sub.exp !== null) await this.alarms.by(sub.exp * 1000);
    if (member) await this.alarms.by(Date.now() + PRESENCE_SWEEP_MS);
  }

  /** `unsub`, or a subscription the server ends (`code` and `message` say why). */
  private unsubscribe(ws: WebSocket, state: SocketState, ch: string, why: ServiceError | null): void {
    if (this.mux.subsOf(ws)[ch] === undefined) {
      if (why === null) throw new ServiceError("bad_request", `not subscribed to ${ch}`);
      return;
    }
    const delivery = this.mux.delivery(ch);
    delivery.flush();
    this.mux.remove(ws, ch);
    delivery.to(ws, state, out(why === null ? { t: "unsubscribed", ch } : { t: "unsubscribed", ch, code: why.code, message: why.message }));
    this.left(state, ch);
  }

  /** After a connection left a channel: it leaves the channel's presence, and the edge maybe the hub's list. */
  private left(state: SocketState, ch: string): void {
    if (isPresenceChannel(ch)) void this.serial(ch, () => this.hub(ch).presenceLeave(ch, state.cid));
    if (state.edge !== undefined) void this.leaveIfIdle(ch, state.edge);
  }

  /** Ends the subscriptions whose token expired; answers the next expiry. */
  private endExpired(now: number): number | null {
    const { due, next } = this.mux.expired(now);
    for (const [ws, state, ch] of due) this.unsubscribe(ws, state, ch, new ServiceError("unauthorized", "token expired"));
    return next;
  }

  // ---- Pusher connections (GET /app/:key) -----------------------------------------------------

  /** Accepts a Pusher connection: its socket id is its cid; channels come with `pusher:subscribe`. */
  private acceptPusher(name: string): Response {
    if (this.ctx.storage.kv.get(PUSHER_POOL_KEY) !== true) {
      this.ctx.storage.kv.put(PUSHER_POOL_KEY, true);
      this.answerPusherPings();
    }
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const state: SocketState = { cid: pusher.newSocketId(), ch: "", tr: "ws", sub: null, pub: false, exp: null, info: null, at: Date.now(), subs: {}, pz: true, edge: name };
    this.sockets.accept(server, state);
    send(server, pusher.established(state.cid));
    count(this.env, "", "connect");
    return new Response(null, { status: 101, webSocket: client });
  }

  protected override async onPusherFrame(ws: WebSocket, state: SocketState, message: string | ArrayBuffer): Promise<void> {
    if (typeof message !== "string") return void send(ws, pusher.pusherError(null, "binary frames are not supported; send JSON text"));
    if (overLimit(message, this.config("").maxMessageBytes)) return void send(ws, pusher.pusherError(null, `frame over MAX_MESSAGE_BYTES (${this.config("").maxMessageBytes})`));
    const frame = pusher.parsePusherFrame(message);
    if (frame === null) return void send(ws, pusher.pusherError(null, 'frames must be JSON objects {"event", "data"}'));
    const data = (typeof frame.data === "object" && frame.data !== null ? frame.data : {}) as Record<string, unknown>;
    try {
      switch (frame.event) {
        case "pusher:ping":
          return void send(ws, pusher.PONG);
        case "pusher:pong":
          return this.heard(ws);
        case "pusher:subscribe":
          return await this.pusherSubscribe(ws, state, data);
        case "pusher:unsubscribe":
          return this.pusherUnsubscribe(ws, state, data.channel);
        case "pusher:signin":
          throw new ServiceError("bad_request", "user sign-in (pusher:signin) is not supported by this server");
        default:
          if (frame.event.startsWith("client-")) return await this.clientEvent(ws, state, frame);
          return; // other events are ignored, as Pusher does
      }
    } catch (err) {
      if (err instanceof PusherRefusal && typeof data.channel === "string") return void send(ws, pusher.subscriptionError(data.channel, err.status, err.message));
      if (err instanceof ServiceError || err instanceof PusherRefusal) return void send(ws, pusher.pusherError(null, err.message));
      throw err;
    }
  }

  /** A pong to the server's ping: the connection is alive (read afresh: other handlers may have saved). */
  private heard(ws: WebSocket): void {
    const state = stateOf(ws);
    if (state === null) return;
    state.at = Date.now();
    this.sockets.save(ws, state);
  }

  /**
   * `pusher:subscribe`: checked against the app's signature, then like a multiplexed `sub` with no
   * cursor (a latest-value channel still sends its last message). A presence member joins the
   * hub's presence before the connection is added, so `subscription_succeeded` carries the
   * member list and no live event can come before it.
   */
  private async pusherSubscribe(ws: WebSocket, state: SocketState, data: Record<string, unknown>): Promise<void> {
    const ch = data.channel;
    if (typeof ch !== "string" || !isValidChannel(ch)) throw new ServiceError("bad_request", `pusher:subscribe needs a channel of ${CHANNEL_RULE}`);
    const app = requirePusherApp(this.env);
    const config = this.config(ch);
    // A second subscribe to the same channel changes nothing (pusher-js never sends one).
    try {
      await this.reserving(ws, state, ch, async () => {
        const grant = await authorizePusherChannel(app, state.cid, ch, data, config.requireAuth);
        await this.serial(ch, () => this.pusherJoin(ws, state, ch, grant));
      });
    } catch (err) {
      if (err instanceof ServiceError && err.code === "too_large") throw new PusherRefusal(403, err.message);
      throw err;
    }
  }

  private async pusherJoin(ws: WebSocket, state: SocketState, ch: string, grant: PusherGrant): Promise<void> {
    if (ws.readyState !== WebSocket.READY_STATE_OPEN) return;
    const { opening } = await this.attach(ch, state.edge!, { cursor: null, rewind: 0 });
    let members: { members: Member[]; count: number } | undefined;
    if (grant.member !== null) {
      const { id, info } = grant.member;
      members = ((await this.hub(ch).presenceJoin(ch, state.edge!, state.cid, id, info, PUSHER_PRESENCE_CAP)) as { members: Member[]; count: number } | null) ?? undefined;
      if (members === undefined) {
        if (state.edge !== undefined) void this.leaveIfIdle(ch, state.edge);
        throw new PusherRefusal(403, `presence channel ${ch} is full (${PUSHER_PRESENCE_CAP} members)`);
      }
    }
    // From here to the last frame nothing is awaited: no live event can come before them.
    this.pusher.add(ws, ch, { sub: grant.member?.id ?? null, pub: grant.clientEvents && this.config(ch).clientPublish, exp: null });
    send(ws, pusher.subscriptionSucceeded(ch, members));
    if (!opening.reset) for (const m of opening.messages) send(ws, pusher.channelEvent(ch, m));
    if (members !== undefined) await this.alarms.by(Date.now() + PRESENCE_SWEEP_MS);
  }

  /** `pusher:unsubscribe`: no answer, as on Pusher. */
  private pusherUnsubscribe(ws: WebSocket, state: SocketState, ch: unknown): void {
    if (typeof ch !== "string" || this.pusher.subsOf(ws)[ch] === undefined) return;
    this.pusher.remove(ws, ch);
    this.left(state, ch);
  }

  /**
   * A client event: only on private and presence channels the connection is subscribed to, at
   * most the channel's clientPubPerS (10) a second, never echoed to its sender. It is a channel
   * message like any other: logged with a seq, seen by hibercast subscribers.
   */
  private async clientEvent(ws: WebSocket, state: SocketState, frame: pusher.PusherClientFrame): Promise<void> {
    const ch = frame.channel;
    if (ch === undefined) throw new ServiceError("bad_request", "Client event rejected - a client event names its channel");
    const sub = this.pusher.subsOf(ws)[ch];
    if (sub === undefined) throw new ServiceError("forbidden", `Client event rejected - not subscribed to ${ch}`);
    if (!isPrivate(ch)) throw new ServiceError("forbidden", "Client event rejected - only supported on private and presence channels");
    if (!sub.pub) throw new ServiceError("forbidden", `Client event rejected - client events are off for ${ch} (clientPublish)`);
    if (frame.event.length > LIMITS.eventName) throw new ServiceError("bad_request", `Client event rejected - event name over ${LIMITS.eventName} characters`);
    const perS = this.config(ch).clientPubPerS;
    if (this.clientEvents.take(state.cid, perS) !== "ok") return void send(ws, pusher.pusherError(pusher.CLIENT_EVENT_RATE, `Client event rejected - more than ${perS} per second`));
    const input: PublishInput = { event: frame.event, data: pusher.storedData(frame.data), id: crypto.randomUUID() };
    await this.hub(ch).publishFromEdge(ch, input, sub.sub, state.cid);
  }
}

/** One text to one socket; a socket that cannot take it is closing, and its close handler cleans up. */
function send(ws: WebSocket, text: string): void {
  try {
    ws.send(text);
  } catch {
    // closing
  }
}

function closeWith(ws: WebSocket, code: number, reason: string): void {
  send(ws, pusher.pusherError(code, reason));
  try {
    ws.close(code, reason);
  } catch {
    // already closed
  }
}
