// Pusher protocol 7 (`GET /app/:key`, DESIGN.md "Pusher-compatible endpoint"): a connection whose
// socket id is its cid, channels subscribed with `pusher:subscribe` and checked against the app's
// signature, presence per user (capped at 100, as on Pusher), client events on private and
// presence channels. Held by the edges of the Pusher pool, whose runtime answers pusher-js's ping.
import { errorText, log } from "../../server/log.js";
import { CHANNEL_RULE, CLOSE, isPresenceChannel, isPrivateChannel, isValidChannel, LIMITS } from "../../protocol/index.js";
import type { MemberList } from "../../rpc.js";
import { count } from "../../server/metrics.js";
import { ServiceError } from "../../server/service-error.js";
import type { ChannelEdge } from "../../edge/channel-edge.js";
import { requirePusherApp } from "../../pusher/app.js";
import { authorizePusherChannel, isEncryptedChannel, type PusherGrant } from "../../pusher/channel-auth.js";
import { cachedEvent, cacheMiss, isCacheChannel } from "../../pusher/cache.js";
import { isUserId, TERMINATE_EVENT, TERMINATED_CLOSE, userChannel, userOf, verifySignin, watchlistFrame, type SignedIn } from "../../pusher/users.js";
import * as pusher from "../../pusher/frames.js";
import { overLimit } from "../frame-size.js";
import { refuseSocket } from "../refuse.js";
import type { DialectHost } from "../host.js";
import { PRESENCE_SWEEP_MS } from "../liveness.js";
import { PublishRate } from "../rate-limit.js";
import { newState, stateOf, type SocketState } from "../sockets.js";
import { IndexedConnections } from "./connection-index.js";
import type { ChannelEvent, Dialect, Ending } from "./dialect.js";
import { Reservations } from "./reservations.js";
import { PUSHER_POOL_KEY } from "../../schema.js";

/** Pusher caps presence channels at 100 members; so do we, for Pusher clients. */
const PRESENCE_CAP = 100;
/** A Pusher presence connection silent this long is pinged by the server (pusher-js answers). */
export const PING_AFTER_MS = 60_000;

/** A channel event as pusher-js reads it; Pusher has no reset (null: nothing to send). */
export function render(event: ChannelEvent): string | null {
  switch (event.t) {
    case "msg":
      return pusher.channelEvent(event.ch, event.m);
    case "reset":
    case "closed":
      return null;
    case "count":
      // As on Pusher: not on presence channels (their member events say it).
      return isPresenceChannel(event.ch) ? null : pusher.subscriptionCount(event.ch, event.count);
    case "join":
      return pusher.memberAdded(event.ch, event.member);
    case "leave":
      return pusher.memberRemoved(event.ch, event.member);
  }
}

const ENDINGS: Record<Ending, number> = { expired: 4009, silent: pusher.PUSHER_CLOSE.pongNotReceived, full: pusher.PUSHER_CLOSE.overCapacity, tooLarge: CLOSE.tooLarge.code, flooding: CLOSE.rateLimited.code };

/** One text to one socket; a socket that cannot take it is closing, and its close handler cleans up. */
function send(ws: WebSocket, text: string): void {
  try {
    ws.send(text);
  } catch {
    // closing
  }
}

/** Ends a connection as Pusher does: `pusher:error` with the close code, then the close. */
function closeWith(ws: WebSocket, code: number, message: string): void {
  send(ws, pusher.pusherError(code, message));
  try {
    ws.close(code, message.slice(0, 120));
  } catch {
    // already closed
  }
}

export class PusherConnections extends IndexedConnections implements Dialect {
  readonly kind = "pusher";
  private readonly reservations = new Reservations();
  private readonly clientEvents = new PublishRate();

  constructor(
    private readonly host: DialectHost,
    private readonly edge: ChannelEdge,
  ) {
    super(host.sockets, "pz");
    if (host.runtime.storage.kv.get(PUSHER_POOL_KEY) === true) this.answerPings();
  }

  /** One ping/pong pair per object: an edge of the Pusher pool answers Pusher's, without waking. */
  private answerPings(): void {
    this.host.runtime.setWebSocketAutoResponse(new WebSocketRequestResponsePair(pusher.PING, pusher.PONG));
  }

  /** Accepts a Pusher connection: its socket id is its cid; channels come with `pusher:subscribe`. */
  accept(): Response {
    if (this.host.sockets.count() >= this.host.config("").maxSockets) {
      // Over capacity, as Pusher says it: 4100, reconnect after a while.
      const code = pusher.PUSHER_CLOSE.overCapacity;
      return refuseSocket(pusher.pusherError(code, "Over capacity"), code, "Over capacity");
    }
    const kv = this.host.runtime.storage.kv;
    if (kv.get(PUSHER_POOL_KEY) !== true) {
      kv.put(PUSHER_POOL_KEY, true);
      this.answerPings();
    }
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const state = newState({ cid: pusher.newSocketId(), ch: "", tr: "ws", subs: {}, pz: true });
    this.host.sockets.accept(server, state);
    send(server, pusher.established(state.cid));
    count(this.host.bindings, "", "connect");
    return new Response(null, { status: 101, webSocket: client });
  }

  deliver(event: ChannelEvent, skip: string | null): number {
    if (this.index.count(event.ch) === 0) return 0;
    if (userOf(event.ch) !== null) return this.toUser(event, skip);
    const text = render(event);
    return text === null ? 0 : this.index.sendAll(event.ch, text, skip);
  }

  /**
   * An event of a user channel: to the user's signed-in connections here (a presence-only one is
   * subscribed to be found, not to receive); a terminate ends every one of them.
   */
  private toUser(event: ChannelEvent, skip: string | null): number {
    if (event.t !== "msg") return 0;
    const sockets = this.index.of(event.ch);
    if (event.m.event === TERMINATE_EVENT) {
      for (const ws of sockets) closeWith(ws, TERMINATED_CLOSE, "connection terminated by the app");
      return sockets.length;
    }
    const text = pusher.channelEvent(event.ch, event.m);
    let sent = 0;
    for (const ws of sockets) {
      const state = stateOf(ws);
      if (state?.subs?.[event.ch]?.sub == null || state.cid === skip) continue;
      send(ws, text);
      sent++;
    }
    return sent;
  }

  override gone(ws: WebSocket, state: SocketState): void {
    super.gone(ws, state);
    this.clientEvents.forget(state.cid);
  }

  end(ws: WebSocket, _state: SocketState, why: Ending, message: string): void {
    closeWith(ws, ENDINGS[why], message);
  }

  async onFrame(ws: WebSocket, state: SocketState, message: string | ArrayBuffer): Promise<void> {
    if (typeof message !== "string") return void send(ws, pusher.pusherError(null, "binary frames are not supported; send JSON text"));
    const max = this.host.config("").maxMessageBytes;
    // Pusher names no close code for it: 1009, as hibercast's sockets close; pusher-js reports it
    // and reconnects after 1 s (4000-4099 would stop it reconnecting for good).
    if (overLimit(message, max)) return this.host.end(ws, state, "tooLarge", `frame over MAX_MESSAGE_BYTES (${max})`);
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
          return await this.subscribe(ws, state, data);
        case "pusher:unsubscribe":
          return this.unsubscribe(ws, state, data.channel);
        case "pusher:signin":
          return await this.signin(ws, state, data);
        default:
          if (frame.event.startsWith("client-")) return await this.clientEvent(ws, state, frame);
          return; // other events are ignored, as Pusher does
      }
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      // A refused subscription names its channel; the connection stays open either way.
      if (frame.event === "pusher:subscribe" && typeof data.channel === "string") return void send(ws, pusher.subscriptionError(data.channel, err.status, err.message));
      send(ws, pusher.pusherError(null, err.message));
    }
  }

  /** A pong to the server's ping: the connection is alive (read afresh: other handlers may have saved). */
  private heard(ws: WebSocket): void {
    const state = stateOf(ws);
    if (state === null) return;
    state.at = Date.now();
    this.host.sockets.save(ws, state);
  }

  /**
   * `pusher:subscribe`: checked against the app's signature, then like a multiplexed `sub` with no
   * cursor (a latest-value channel still sends its last message). A presence member joins the
   * hub's presence before the connection is added, so `subscription_succeeded` carries the
   * member list and no live event can come before it. A second subscribe to the same channel
   * changes nothing (pusher-js never sends one).
   */
  private async subscribe(ws: WebSocket, state: SocketState, data: Record<string, unknown>): Promise<void> {
    const ch = data.channel;
    const user = typeof ch === "string" ? userOf(ch) : null;
    if (typeof ch !== "string" || (!isValidChannel(ch) && user === null)) throw new ServiceError("bad_request", `pusher:subscribe needs a channel of ${CHANNEL_RULE}`);
    // A user channel is held (hidden) from sign-in on: subscribing makes it receive.
    if (user !== null && this.index.subsOf(ws)[ch] !== undefined) return await this.edge.inTurn(ch, () => this.receiveAsUser(ws, state, ch, user));
    const app = requirePusherApp(this.host.bindings);
    const config = this.host.config(ch);
    await this.reservations.hold(state.cid, ch, this.index.subsOf(ws), config.maxSubscriptions, async () => {
      const grant = user === null ? await authorizePusherChannel(app, state.cid, ch, data, config.requireAuth) : this.userGrant(ws, user);
      await this.edge.inTurn(ch, () => this.join(ws, state, ch, grant));
    }).catch((err: unknown) => {
      // Over MAX_SUBSCRIPTIONS is refused like any subscription Pusher would not allow.
      throw err instanceof ServiceError && err.code === "too_large" ? new ServiceError("forbidden", err.message) : err;
    });
  }

  private async join(ws: WebSocket, state: SocketState, ch: string, grant: PusherGrant): Promise<void> {
    if (ws.readyState !== WebSocket.READY_STATE_OPEN) return;
    const cache = isCacheChannel(ch);
    const { opening } = await this.edge.attach(ch, { cursor: null, rewind: cache ? 1 : 0 });
    const gone = () => ws.readyState !== WebSocket.READY_STATE_OPEN || this.reservations.cancelled(state.cid, ch);
    if (gone()) return void this.edge.left(ch, state.cid, false);
    let members: MemberList | undefined;
    if (grant.member !== null) {
      const { id, info } = grant.member;
      members = (await this.edge.hub(ch).presenceJoin(this.edge.edgeName, state.cid, id, info, PRESENCE_CAP)) ?? undefined;
      if (members === undefined) {
        void this.edge.left(ch, state.cid, false);
        throw new ServiceError("forbidden", `presence channel ${ch} is full (${PRESENCE_CAP} members)`);
      }
      if (gone()) return void this.edge.left(ch, state.cid, true);
    }
    // From here to the last frame nothing is awaited: no live event can come before them.
    try {
      const user = userOf(ch);
      this.index.add(ws, ch, { sub: user ?? grant.member?.id ?? null, pub: grant.clientEvents && this.host.config(ch).clientPublish, exp: null });
    } catch (err) {
      void this.edge.left(ch, state.cid, grant.member !== null);
      throw err;
    }
    send(ws, pusher.subscriptionSucceeded(ch, userOf(ch) === null ? members : undefined));
    const messages = opening.reset ? [] : opening.messages;
    if (cache) {
      const cached = cachedEvent(messages, Date.now());
      if (cached !== null) send(ws, pusher.channelEvent(ch, cached));
      else {
        send(ws, cacheMiss(ch));
        void this.edge.hub(ch).cacheMiss().catch(() => {});
      }
    } else for (const m of messages) send(ws, pusher.channelEvent(ch, m));
    if (members !== undefined) await this.host.alarms.by(Date.now() + PRESENCE_SWEEP_MS);
    if (grant.member !== null) await this.findable(ws, grant.member.id);
  }

  /**
   * `pusher:signin`: the app's signature of "socket_id::user::user_data" makes this connection
   * user `id`'s (pusher-js then subscribes to `#server-to-user-<id>`). A bad one ends the
   * connection with 4009, as Pusher does.
   */
  private async signin(ws: WebSocket, state: SocketState, data: Record<string, unknown>): Promise<void> {
    const app = requirePusherApp(this.host.bindings);
    let user: SignedIn;
    try {
      user = await verifySignin(app, state.cid, data);
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return closeWith(ws, TERMINATED_CLOSE, err.message);
    }
    const now = stateOf(ws);
    if (now === null || ws.readyState !== WebSocket.READY_STATE_OPEN) return;
    if (now.user !== undefined && now.user !== user.id) throw new ServiceError("forbidden", `this connection is signed in as ${now.user}`);
    // Signed in already: the same answer, and nothing is registered twice.
    if (now.user === user.id) return send(ws, pusher.signinSuccess(user.userData));
    now.user = user.id;
    this.host.sockets.save(ws, now);
    // Found by a terminate from now on, whether or not the client subscribes to its user channel.
    await this.findable(ws, user.id);
    send(ws, pusher.signinSuccess(user.userData));
    if (user.watchlist.length === 0) return;
    // Each watched user's hub remembers this watcher and says whether its user is online now.
    const online = await Promise.all(user.watchlist.map((w) => this.edge.hub(userChannel(w)).watch(user.id).catch(() => false)));
    const ids = user.watchlist.filter((_, i) => online[i]);
    if (ids.length > 0 && ws.readyState === WebSocket.READY_STATE_OPEN) send(ws, watchlistFrame("online", ids));
  }

  /**
   * The user channel of a signed-in connection, which holds it hidden since sign-in: from now on
   * it receives the user's events, and its user counts as online (watchlists).
   */
  private async receiveAsUser(ws: WebSocket, state: SocketState, ch: string, user: string): Promise<void> {
    this.userGrant(ws, user);
    const entry = this.index.subsOf(ws)[ch];
    if (entry === undefined) return;
    if (entry.sub === null) {
      await this.edge.hub(ch).presenceJoin(this.edge.edgeName, state.cid, user, null, null);
      if (ws.readyState !== WebSocket.READY_STATE_OPEN) return;
      this.index.add(ws, ch, { sub: user, pub: false, exp: null });
    }
    send(ws, pusher.subscriptionSucceeded(ch));
  }

  /** A user channel is open to its own signed-in connections only. */
  private userGrant(ws: WebSocket, user: string): PusherGrant {
    if (stateOf(ws)?.user !== user) throw new ServiceError("forbidden", `#server-to-user-${user} is for the connections signed in as ${user} (pusher:signin)`);
    // Its one presence member is the user: online while any connection of it is signed in (watchlists).
    return { member: { id: user, info: null }, clientEvents: false };
  }

  /**
   * A presence member's connection, also where terminating its user finds it: subscribed to the
   * user channel without receiving its events (those are for signed-in connections).
   */
  private async findable(ws: WebSocket, id: string): Promise<void> {
    const ch = userChannel(id);
    const state = stateOf(ws);
    if (!isUserId(id) || state === null || this.index.subsOf(ws)[ch] !== undefined) return;
    // Never fails the sign-in or subscription it follows: a connection not findable (its state is
    // full, its user's hub did not answer) is said in the log and still served.
    await this.edge
      .inTurn(ch, async () => {
        await this.edge.attach(ch, { cursor: null, rewind: 0 });
        if (ws.readyState !== WebSocket.READY_STATE_OPEN || this.index.subsOf(ws)[ch] !== undefined) return void this.edge.left(ch, state.cid, false);
        try {
          this.index.add(ws, ch, { sub: null, pub: false, exp: null });
        } catch (err) {
          void this.edge.left(ch, state.cid, false);
          throw err;
        }
      })
      .catch((err: unknown) => log("error", { where: "user channel", channel: ch, cid: state.cid, error: errorText(err) }));
  }

  /** `pusher:unsubscribe`: no answer, as on Pusher; one that overtakes its subscribe wins. */
  private unsubscribe(ws: WebSocket, state: SocketState, ch: unknown): void {
    if (typeof ch !== "string") return;
    const entry = this.index.subsOf(ws)[ch];
    if (entry === undefined) return void this.reservations.cancel(state.cid, ch);
    if (userOf(ch) !== null) {
      // The user channel stays held (a terminate still finds the connection); it only stops receiving.
      if (entry.sub === null) return;
      this.index.add(ws, ch, { sub: null, pub: false, exp: null });
      return void this.edge.inTurn(ch, () => this.edge.hub(ch).presenceLeave(state.cid)).catch(() => {});
    }
    const member = isPresenceChannel(ch);
    this.index.remove(ws, ch);
    void this.edge.left(ch, state.cid, member);
  }

  /**
   * A client event: only on private and presence channels the connection is subscribed to, at
   * most the channel's clientPubPerS (10) a second, never echoed to its sender. It is a channel
   * message like any other: logged with a seq, seen by hibercast subscribers.
   */
  private async clientEvent(ws: WebSocket, state: SocketState, frame: pusher.PusherClientFrame): Promise<void> {
    const ch = frame.channel;
    if (ch === undefined) throw new ServiceError("bad_request", "Client event rejected - a client event names its channel");
    const sub = this.index.subsOf(ws)[ch];
    if (sub === undefined) throw new ServiceError("forbidden", `Client event rejected - not subscribed to ${ch}`);
    if (!isPrivateChannel(ch)) throw new ServiceError("forbidden", "Client event rejected - only supported on private and presence channels");
    if (isEncryptedChannel(ch)) throw new ServiceError("forbidden", "Client event rejected - not supported on encrypted channels");
    if (!requirePusherApp(this.host.bindings).clientEvents) throw new ServiceError("forbidden", "Client event rejected - client events are off for this app (PUSHER_CLIENT_EVENTS=true turns them on)");
    if (!sub.pub) throw new ServiceError("forbidden", `Client event rejected - client events are off for ${ch} (clientPublish)`);
    if (frame.event.length > LIMITS.eventName) throw new ServiceError("bad_request", `Client event rejected - event name over ${LIMITS.eventName} characters`);
    const perS = this.host.config(ch).clientPubPerS;
    if (this.clientEvents.take(state.cid, perS) !== "ok") return void send(ws, pusher.pusherError(pusher.CLIENT_EVENT_RATE, `Client event rejected - more than ${perS} per second`));
    const input = { event: frame.event, data: pusher.storedData(frame.data), id: crypto.randomUUID() };
    await this.host.publishFor(ch, input, { sender: sub.sub, exclude: state.cid, by: "client", scope: sub.sub === null ? `c:${state.cid}` : `u:${sub.sub}` });
  }

  /** Presence connections silent past PING_AFTER_MS get a server ping (pusher-js answers pong). */
  ping(ws: WebSocket): void {
    send(ws, pusher.pusherPing());
  }
}
