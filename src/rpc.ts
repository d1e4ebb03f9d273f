// The contract between the objects: what a hub, an edge and the directory answer over RPC, the
// types those calls carry, the bindings typed by them, and the one place stubs are made. It
// imports no object class (so nothing below the objects depends on them) and no module above
// protocol/ and settings/: every side of a call reads the same types from here.
import type { ChannelOptions } from "./settings/channel-options.js";
import type { Cursor, HttpErrorCode, Member, PublishResult } from "./protocol/index.js";
import { LIMITS } from "./protocol/limits.js";

/** What a publisher sends, after validation. */
export interface PublishInput {
  event: string;
  /** Serialized JSON of the message's data. */
  data: string;
  id: string;
  /** An append (DESIGN v1.3 "Appends"): grows message `to` (an id in the publisher's own id space) by `data`, a JSON string; `done` ends it. */
  append?: { to: string; done: boolean };
}

/** Who publishes, and how: the one set of options of the hub's one publish entry point. */
export interface PublishOptions {
  /** The publisher's token `sub` (null: the publish key, or an anonymous token). */
  sender: string | null;
  /** A connection (cid or Pusher socket_id) that must not get this message. */
  exclude: string | null;
  /**
   * Where it came from: `origin` (the publish key or a token over HTTP, or Pusher's HTTP API) or
   * `client` (a socket `pub` or a Pusher client event: told to webhooks as `client_event`).
   */
  by: "origin" | "client";
  /**
   * The publisher's id space for idempotency ids: "" for the publish key (and Pusher's HTTP API),
   * `u:<sub>` for a token's user, `t:<digest>` for an anonymous token, `c:<cid>` for an anonymous
   * socket (absent: ""). A client can never make an origin's id a duplicate; a retry by the same
   * publisher is one.
   */
  scope?: string;
}

/** A publish the hub refused (errors do not keep their class across RPC, so it answers this). */
export interface Refused {
  refused: { code: HttpErrorCode; message: string };
}

export type PublishAnswer = PublishResult | Refused;

/** A message as the log stores it and pushes carry it; `data` stays serialized JSON. */
export interface LoggedMessage {
  seq: number;
  id: string;
  event: string;
  data: string;
  ts: number;
  sender: string | null;
  /** A connection (cid or Pusher socket_id) this message is not delivered to, kept in the log so gap repair and catch-up skip it too. */
  skip?: string;
  /** An append: the seq of the message it grows (`of`: that message's id); `data` is the fragment, a JSON string. */
  ref?: number;
  of?: string;
  /** An append that ended its message, or (compacted) a message so ended. */
  done?: true;
  /** Compacted (rewind, latest, history without a cursor): `data` is the whole text so far, `v` the seq of its last append. */
  v?: number;
}

/** A Durable Streams request, as the Worker parsed and checked it (src/streams/http.ts). */
export interface StreamRequest {
  op: "create" | "append" | "read" | "head" | "delete";
  /** As sent (create: absent means application/octet-stream). */
  contentType: string | null;
  ttl?: number | null;
  expiresAt?: string | null;
  /** `Stream-Closed: true`. */
  closed: boolean;
  streamSeq: string | null;
  producer: { id: string; epoch: number; seq: number } | null;
  body: Uint8Array | null;
  /** Reads: `-1`, `now` or an offset; null when absent. */
  offset: string | null;
  ifNoneMatch: string | null;
  /** A long-poll: how long to wait for something after `offset` (0: answer now). */
  waitMs: number;
  /** Writes: the publisher's scope ("" for the publish key): producers and Stream-Seq are per publisher, token writes rate limited. */
  scope?: string;
  /** Create a fork of stream `source` at `offset` (default: its tail), `sub` items or bytes into the next append. */
  fork?: { source: string; offset: string | null; sub: number };
}

/** What a fork asks of its source when it is made: what it inherits (or why it cannot). */
export type ForkAnswer =
  | { ok: false; status: number; message: string }
  | { ok: true; contentType: string; pos: number; ttl: number | null; expiresAt: string | null; prefix: string | null };

/** The hub's answer to a Durable Streams request: the Worker adds CORS and security headers. */
export interface StreamReply {
  status: number;
  headers: Record<string, string>;
  body?: string | Uint8Array;
  /** Reads: how many messages the body holds. */
  count?: number;
  /** Reads: the log seq of position 0 (position n is seq base + n), for live readers on a socket. */
  base?: number;
}

/** What a cursor gets: the messages after it, or a reset when the log cannot serve it. */
export type Replay = { reset: false; messages: LoggedMessage[] } | { reset: true };

/**
 * What a new socket is sent after its welcome: the missed messages, or a reset. `more`: the
 * messages are the replay's first page; the rest follows page by page as the client asks.
 */
export type Opening = { reset: true } | { reset: false; messages: LoggedMessage[]; more?: true };

/** Where a new subscription starts: after a cursor (resume), the last N messages, or live. */
export interface Start {
  cursor: Cursor | null;
  rewind: number;
}

/** History: `?since=&epoch=` oldest first, `?before=` newest first, or the last `limit`. */
export interface HistoryQuery {
  cursor: Cursor | null;
  before: number | null;
  limit: number;
}

/** A presence list: at most the channel's cap of members, and how many there are in all. */
export interface MemberList {
  members: Member[];
  count: number;
}

/** A message as pushed to edges (its `skip` names a connection not to deliver it to). */
export type Pushed = LoggedMessage;

/** What a hub sends an edge: the next messages, a reset after a purge, or a presence change. */
export type Push =
  | { epoch: string; messages: Pushed[] }
  | { epoch: string; reset: number }
  | { epoch: string; presence: { t: "join" | "leave"; member: Member; except: string | null } }
  | { epoch: string; count: number };

/** What an edge gets when it attaches: the channel's head, its new socket's opening, and what it missed. */
export interface Attached {
  seq: number;
  epoch: string;
  opening: Opening;
  /** Messages after the edge's own cursor, for its other sockets (null: it had none). */
  catchUp: Replay | null;
}

export interface RoomStats {
  channel: string;
  subscribers: number;
  transports: Record<"ws" | "sse", number>;
  presence: number | null;
  publishes: number;
  seq: number;
  epoch: string;
  log: { count: number; oldestSeq: number | null };
  /** The options in force for this channel (global vars, and the CHANNEL_OPTIONS rule that matched). */
  options: ChannelOptions & { rule: string | null };
  /** Sharded channels: the edges that hold its sockets (summed into subscribers). */
  edges?: number;
  /** With webhooks on: events waiting in the outbox, and those dropped past WEBHOOK_MAX_PENDING since the hub woke. */
  webhooks?: { pending: number; dropped: number };
  /** The channel is a Durable Stream (with `closed` once it is closed). */
  stream?: { contentType: string; closed: boolean };
}

/** A channel's hub (RoomObject, named by its channel: no call names the channel again). */
export interface HubRpc extends Rpc.DurableObjectBranded {
  /** Takes a socket (the Worker's connect request, see connections/connect.ts). */
  fetch(request: Request): Promise<Response>;
  publish(input: PublishInput, options: PublishOptions): Promise<PublishAnswer>;
  /** Several messages in order (batch publish: one hub call per channel). */
  publishMany(inputs: PublishInput[], options: PublishOptions): Promise<PublishAnswer[]>;
  purge(): Promise<{ seq: number; epoch: string }>;
  history(query: HistoryQuery): Promise<string>;
  members(): Promise<MemberList>;
  stats(): Promise<RoomStats>;
  /** An edge takes a socket of this channel; `edge` is the caller's name. */
  attachEdge(edge: string, start: Start, edgeCursor: Cursor | null): Promise<Attached>;
  detachEdge(edge: string): Promise<void>;
  /**
   * Messages after an edge's cursor (gap repair, catching up after a failed push), one page at a
   * time (REPAIR_PAGE messages, about 1 MiB at most): the edge asks again from where it got to.
   */
  replayFor(cursor: Cursor): Promise<{ seq: number; epoch: string; replay: Replay }>;
  /** A Durable Streams request on this channel's stream (a long-poll waits up to `waitMs`). */
  streamCall(req: StreamRequest): Promise<StreamReply>;
  /** A fork of this stream is being made: what it inherits (this stream then stays readable for it). */
  streamFork(fork: string, contentType: string | null, offset: string | null, sub: number): Promise<ForkAnswer>;
  /** A fork reads what it inherits: this stream's data of positions (from, to]. */
  streamRows(from: number, to: number): Promise<string[]>;
  /** A fork of this stream went. */
  streamUnref(fork: string): Promise<void>;
  /** Whether this stream still lives (its source asks). */
  streamAlive(): Promise<boolean>;
  /** A connection on an edge joins presence; null when a new member would go over `cap`. */
  presenceJoin(edge: string, cid: string, sub: string, info: string | null, cap: number | null): Promise<MemberList | null>;
  presenceLeave(cid: string): Promise<void>;
  /** A Pusher client found this cache channel empty: the `cache_miss` webhook (at most one per channel per CACHE_MISS_EVERY_MS). */
  cacheMiss(): Promise<void>;
  /** A user channel's hub: user `watcher` watches this user (kept for its online/offline events); answers whether this user is online. */
  watch(watcher: string): Promise<boolean>;
  /** An edge's subscribers of this channel changed: the hub counts again soon (subscription_count). */
  subscriptionsChanged(): Promise<void>;
}

/** An edge: a sharded channel's (`channel#k`) or a connection pool's (`#conn/…`, `#pusher/…`). */
export interface EdgeRpc extends Rpc.DurableObjectBranded {
  fetch(request: Request): Promise<Response>;
  /** The hub of `channel` pushes; answers the seq now delivered. */
  receive(channel: string, push: Push): Promise<number>;
  /** The hub's alarm after a failed push: catch up from its log. */
  sync(channel: string): Promise<void>;
  /** This edge's sockets of a channel, by transport (the hub sums its edges for stats). */
  counts(channel: string): Promise<{ ws: number; sse: number }>;
  /**
   * The hub's reconciliation: whether this edge still holds subscribers of `channel`, and which of
   * `cids` (connections the hub lists as presence members here) are still connected to it. An
   * edge behind `head` (the hub's last seq, or another epoch: a purge's reset it missed) catches
   * up from the log: a push the hub lost, on a channel that went quiet, reaches the sockets
   * within a reconciliation.
   */
  holds(channel: string, cids: string[], head?: { seq: number; epoch: string }): Promise<{ holds: boolean; live: string[] }>;
}

/** What an edge's `receive` answers for a channel it holds no subscriber of: the hub drops it. */
export const NOT_HERE = -1;

/** Messages in one page of an edge's repair or catch-up, and their bytes, at most (one RPC each). */
export const REPAIR_PAGE = { messages: LIMITS.replayPageFrames, bytes: LIMITS.replayPageBytes } as const;

/**
 * Cuts messages read from a log to one page (LIMITS.replayPageFrames messages, about
 * LIMITS.replayPageBytes: at least one message, so a reader always moves on); answers whether
 * it cut any. Read one message more than a page to learn whether there is more.
 */
export function cutToPage(messages: LoggedMessage[]): boolean {
  let cut = false;
  if (messages.length > LIMITS.replayPageFrames) {
    messages.length = LIMITS.replayPageFrames;
    cut = true;
  }
  let bytes = 0;
  const fit = messages.findIndex((m, i) => (bytes += m.data.length) > LIMITS.replayPageBytes && i > 0);
  if (fit <= 0) return cut;
  messages.length = fit;
  return true;
}

/** How often a hub checks its edges and its members on them (DESIGN v1.3: within a minute). */
export const RECONCILE_MS = 60_000;

/** The occupied channels, for Pusher's channel list. */
export interface DirectoryRpc extends Rpc.DurableObjectBranded {
  set(channel: string, occupied: boolean): Promise<void>;
  list(prefix: string): Promise<string[]>;
}

/** The object bindings (see wrangler.toml), typed by what the objects answer. */
export interface Bindings {
  ROOMS: DurableObjectNamespace<HubRpc>;
  /** Edges of sharded channels and the connection pools (DESIGN.md "Edges"). */
  EDGES: DurableObjectNamespace<EdgeRpc>;
  DIRECTORY: DurableObjectNamespace<DirectoryRpc>;
}

// ---- names and stubs: the only place objects are looked up ---------------------------------

/**
 * Whether a hub's channel is the server's own (a Pusher user's `#server-to-user-<id>`): `#` is
 * in no channel name a route takes, and no app sees these (no webhooks, channel list or counts).
 */
export const isInternalChannel = (channel: string) => channel.startsWith("#");

/** Ids by name, per namespace: an id is a hash of its name, worth making once per isolate (bounded). */
const ids = new WeakMap<object, Map<string, DurableObjectId>>();
const MAX_IDS = 4096;

export function idOf(ns: { idFromName(name: string): DurableObjectId }, name: string): DurableObjectId {
  let byName = ids.get(ns);
  if (byName === undefined) ids.set(ns, (byName = new Map()));
  let id = byName.get(name);
  if (id === undefined) {
    if (byName.size >= MAX_IDS) byName.clear();
    byName.set(name, (id = ns.idFromName(name)));
  }
  return id;
}

/** A channel's hub: its RoomObject, named by the channel. */
export const hubStub = (env: Bindings, channel: string) => env.ROOMS.get(idOf(env.ROOMS, channel));

/**
 * The edges of a sharded channel are named by channel and index: `channel#k`. Connection pools
 * are named from `#`, which no channel name can hold, so no channel's edges are a pool's.
 */
export const edgeName = (channel: string, k: number) => `${channel}#${k}`;
export const poolEdgeName = (pool: "conn" | "pusher", k: number, region?: string) => (region === undefined ? `#${pool}/${k}` : `#${pool}/${region}/${k}`);

/** The channel whose shard an edge is, or null for a connection pool's edge. */
export function shardChannel(edge: string): string | null {
  if (edge.startsWith("#")) return null;
  const at = edge.lastIndexOf("#");
  return at > 0 ? edge.slice(0, at) : null;
}

export const edgeStub = (env: Bindings, name: string, locationHint?: DurableObjectLocationHint) =>
  env.EDGES.get(idOf(env.EDGES, name), locationHint === undefined ? undefined : { locationHint });

export const DIRECTORY_NAME = "directory";
export const directoryStub = (env: Bindings) => env.DIRECTORY.get(idOf(env.DIRECTORY, DIRECTORY_NAME));

/**
 * An object's own name, from the runtime (`ctx.id.name`: set for objects reached by name, in
 * requests, RPCs and alarms alike), or where an old alarm lacks it, the name it stored itself.
 */
export function ownName(ctx: DurableObjectState, stored: () => string | null = () => null): string | null {
  return ctx.id.name ?? stored();
}
