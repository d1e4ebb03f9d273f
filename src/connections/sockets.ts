// The room's sockets: the one module that owns the tag scheme and the attachment shape, so the
// rest of the room asks for "the sockets of user u" or "this socket's state" and never spells a
// tag. State lives in the runtime (tags + attachments), so it survives hibernation.
import { isPresenceChannel } from "../protocol/channels.js";
import { LATE_EXPIRY_KEY } from "../schema.js";

/** How a socket's frames leave the room: as JSON text, or pre-formatted for the SSE relay. */
export type Transport = "ws" | "sse";

/**
 * How a socket takes the frames of a burst: `ws` one by one, `wb` in `batch` frames (opted in
 * with `?batch=1`), `sse` as several events in one write. Each is a tag, so delivery asks the
 * runtime for one group at a time.
 */
export type Group = "ws" | "wb" | "sse";

/**
 * The tag of connections that name their channels in their frames: hibercast's multiplexed
 * connections (`GET /v1/ws`, "mx") and Pusher connections (`GET /app/:key`, "pz"). Their
 * channels are in the attachment.
 */
export type ConnectionTag = "mx" | "pz";

/** The socket protocol a socket speaks (connections/dialects/ has one file for each). */
export type Kind = "channel" | "mux" | "pusher";

/** Per-socket state, kept in the socket's attachment (≤ 16 KiB: this channel's grants only). */
export interface SocketState {
  cid: string;
  ch: string;
  tr: Transport;
  sub: string | null;
  pub: boolean;
  /** Token expiry, seconds since the epoch. */
  exp: number | null;
  /** Presence info, serialized JSON. */
  info: string | null;
  /** Accepted at (ms): the liveness baseline until the first auto-responded ping. */
  at: number;
  /** A multiplexed connection holding no subscription: since when (ms); absent while it holds one. */
  idle?: number;
  /** The edge's own name, on sockets an edge holds (it leaves its hub's list by this name). */
  edge?: string;
  /** Takes `batch` frames (`?batch=1`). */
  b?: true;
  /** A Pusher protocol connection (its frames are Pusher's; `cid` is its socket_id). */
  pz?: true;
  /** The user a Pusher connection signed in as (`pusher:signin`). */
  user?: string;
  /**
   * A multiplexed connection's subscriptions, by channel (then `ch` is ""). `sub`, `pub` and
   * `exp` here are per channel: a per-sub token may differ from the connection's.
   */
  subs?: Record<string, MuxSub>;
  /** A multiplexed connection's own token claims, for subscribing without a per-sub token. */
  claims?: { sub?: string; ch: string[]; pub: string[]; exp: number; info?: unknown } | null;
  /**
   * The epoch this socket was welcomed with, kept only while the channel has no stored epoch:
   * after hibernation the room takes it back, so the first publish stores what clients hold.
   */
  ep?: string;
}

// The tags: one per connection id, one per transport, and presence and expiry markers.
const cidTag = (cid: string) => `c:${cid}`;
const userTag = (sub: string) => `u:${sub}`;
const PRESENCE_TAG = "p";
const EXPIRES_TAG = "x";

/** One channel of a multiplexed connection. */
export interface MuxSub {
  sub: string | null;
  pub: boolean;
  exp: number | null;
}

export function newCid(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 16);
}

export const stateOf = (ws: WebSocket) => ws.deserializeAttachment() as SocketState | null;

export const kindOf = (state: SocketState): Kind => (state.pz ? "pusher" : state.subs !== undefined ? "mux" : "channel");

const groupOf = (state: SocketState): Group | ConnectionTag => (state.pz ? "pz" : state.subs !== undefined ? "mx" : state.tr === "sse" ? "sse" : state.b ? "wb" : "ws");

/** A new socket's state: the one place its shape is spelled (kinds add their own fields). */
export function newState(fields: Pick<SocketState, "ch" | "tr"> & Partial<SocketState>): SocketState {
  return { cid: newCid(), sub: null, pub: false, exp: null, info: null, at: Date.now(), ...fields };
}

/**
 * The room's view of its sockets. The count of open sockets is taken once per wake and then kept
 * by accept and close, so accepting a socket never walks the room (DESIGN.md "Connect cost").
 */
export class Sockets {
  /** undefined: not counted since this wake (or since sockets may have gone unreported). */
  private counted: number | undefined;
  /** Sockets already taken off the count (a close and an error may both report one). */
  private readonly uncounted = new WeakSet<WebSocket>();

  constructor(private readonly ctx: DurableObjectState) {}

  count(): number {
    return (this.counted ??= this.ctx.getWebSockets().length);
  }

  /** Counts afresh on the next need: sockets the room closed itself may never report a close. */
  recount(): void {
    this.counted = undefined;
  }

  /** Hands a socket to the runtime with its tags and state; it now survives hibernation. */
  accept(ws: WebSocket, state: SocketState): void {
    const total = this.count();
    const tags = [cidTag(state.cid), groupOf(state)];
    if (this.isMember(state)) tags.push(PRESENCE_TAG, userTag(state.sub!));
    if (state.exp !== null) tags.push(EXPIRES_TAG);
    // The state first: one past the runtime's attachment cap throws here, before the runtime
    // holds a socket with no state to go with it.
    ws.serializeAttachment(state);
    this.ctx.acceptWebSocket(ws, tags);
    this.counted = total + 1;
  }

  /**
   * Call when a socket goes (its close or error, or the server's own close); answers false when
   * it was already reported, so its cleanup runs once.
   */
  gone(ws: WebSocket, cid?: string): boolean {
    if (this.uncounted.has(ws)) return false;
    this.uncounted.add(ws);
    if (cid !== undefined) this.unlist(cid);
    if (this.counted !== undefined) this.counted = Math.max(0, this.counted - 1);
    return true;
  }

  save(ws: WebSocket, state: SocketState): void {
    ws.serializeAttachment(state);
  }

  /** Whether this socket counts as a presence member (a presence channel and a `sub`). */
  isMember(state: SocketState): boolean {
    return isPresenceChannel(state.ch) && state.sub !== null;
  }

  byCid(cid: string): WebSocket | null {
    return this.ctx.getWebSockets(cidTag(cid))[0] ?? null;
  }

  ofUser(sub: string): WebSocket[] {
    return this.ctx.getWebSockets(userTag(sub));
  }

  members(): WebSocket[] {
    return this.ctx.getWebSockets(PRESENCE_TAG);
  }

  /** Sockets whose grant expires: tagged at accept, or granted later by an `auth` frame. */
  expiring(): WebSocket[] {
    const late = Object.keys(this.ctx.storage.kv.get<Record<string, true>>(LATE_EXPIRY_KEY) ?? {});
    return [...this.ctx.getWebSockets(EXPIRES_TAG), ...late.map((cid) => this.byCid(cid)).filter((ws): ws is WebSocket => ws !== null)];
  }

  /**
   * A socket accepted without a token got one (an `auth` frame): tags cannot change after
   * accept, so it is listed in storage, and its grant dies with that token like any other.
   */
  expiresLater(ws: WebSocket, cid: string): void {
    if (this.ctx.getTags(ws).includes(EXPIRES_TAG)) return;
    const late = this.ctx.storage.kv.get<Record<string, true>>(LATE_EXPIRY_KEY) ?? {};
    if (late[cid]) return;
    late[cid] = true;
    this.ctx.storage.kv.put(LATE_EXPIRY_KEY, late);
  }

  /** A socket went: it leaves the late-expiry list, if it was on it. */
  private unlist(cid: string): void {
    const late = this.ctx.storage.kv.get<Record<string, true>>(LATE_EXPIRY_KEY);
    if (late?.[cid] === undefined) return;
    delete late[cid];
    if (Object.keys(late).length === 0) this.ctx.storage.kv.delete(LATE_EXPIRY_KEY);
    else this.ctx.storage.kv.put(LATE_EXPIRY_KEY, late);
  }

  countOf(transport: Transport): number {
    return transport === "sse" ? this.group("sse").length : this.group("ws").length + this.group("wb").length;
  }

  /** The sockets that take frames one way (see Group). */
  group(group: Group): WebSocket[] {
    return this.ctx.getWebSockets(group);
  }

  /** Connections of one kind (multiplexed or Pusher). */
  connections(tag: ConnectionTag): WebSocket[] {
    return this.ctx.getWebSockets(tag);
  }

  /** Every socket: only for work done once per wake, never on the accept path. */
  all(): WebSocket[] {
    return this.ctx.getWebSockets();
  }
}
