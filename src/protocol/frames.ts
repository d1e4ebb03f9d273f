// The frames of the wire protocol (docs/protocol.md), server to client and client to server.
// The server builds what it sends from these types and the client reads with them, so the two
// sides cannot drift apart. Receivers ignore unknown fields and types.
import type { ErrorCode } from "./errors.js";

// ---- server to client --------------------------------------------------------------------

/** First frame of a single-channel socket. */
export interface WelcomeFrame {
  t: "welcome";
  v: 1;
  ch: string;
  cid: string;
  /** The channel's last seq. */
  seq: number;
  /** The epoch the channel's messages carry; named before the first publish too. */
  epoch: string;
}
/** First frame of a multiplexed connection (`GET /v1/ws`): no channel yet. */
export interface ConnectionWelcomeFrame {
  t: "welcome";
  v: 2;
  cid: string;
}

export interface MsgFrame<E extends string = string, D = unknown> {
  t: "msg";
  ch: string;
  seq: number;
  id: string;
  e: E;
  d: D;
  ts: number;
  /** The publishing client's `sub`, when a client with a token published it. */
  u?: string;
  /**
   * A message that grows (appends), as a rewind, `latest` or history without a cursor gives it:
   * `d` is its whole text so far and `v` the seq of its last append.
   */
  v?: number;
  /** The message was ended by an append with `done`: it grows no more. */
  done?: true;
}
/**
 * A fragment appended to message `ref` (whose id is `id`): its text so far plus `d`. Consecutive
 * appends to one message sent together may come as one frame (`d` joined, `seq` the last one's).
 */
export interface AppendFrame {
  t: "append";
  ch: string;
  seq: number;
  /** The seq of the message this grows. */
  ref: number;
  /** The message's id. */
  id: string;
  d: string;
  /** The message's event name. */
  e: string;
  ts: number;
  u?: string;
  /** The message ends here. */
  done?: true;
}
/** The resume point cannot be served (or the channel was purged): refetch; live after `seq`. */
export interface ResetFrame {
  t: "reset";
  ch?: string;
  seq: number;
  epoch: string;
}
export interface AckFrame {
  t: "ack";
  ch?: string;
  id: string;
  seq: number;
  duplicate: boolean;
  /** An append's ack: the seq of the message it grew. */
  ref?: number;
}
export interface ErrFrame {
  t: "err";
  ch?: string;
  code: ErrorCode;
  message: string;
  /** The `pub` this answers. */
  id?: string;
  /**
   * Set when the server is closing the connection right after this frame, with this close
   * code. Clients act on it at once instead of waiting for the close handshake to finish.
   */
  close?: number;
}
/** A presence member: one per `sub`, however many sockets it has open. */
export interface Member<I = unknown> {
  id: string;
  info: I;
}
export interface MembersFrame {
  t: "members";
  ch?: string;
  members: Member[];
  /** All members; `members` lists at most PRESENCE_MAX_MEMBERS of them. */
  count: number;
}
export interface JoinFrame {
  t: "join";
  ch?: string;
  member: Member;
}
export interface LeaveFrame {
  t: "leave";
  ch?: string;
  member: Member;
}
/** Frames that piled up during one flush, each complete and in order (opt-in: `?batch=1`). */
export interface BatchFrame {
  t: "batch";
  f: ServerFrame[];
}
/** Multiplexed connections: a `sub` was accepted; the channel's replay or reset follows. */
export interface SubscribedFrame {
  t: "subscribed";
  ch: string;
  seq: number;
  epoch: string;
}
/** Multiplexed connections: a subscription ended (`code` and `message` when the server ended it). */
export interface UnsubscribedFrame {
  t: "unsubscribed";
  ch: string;
  code?: ErrorCode;
  message?: string;
}
/**
 * A long replay goes out a page at a time: this ends a page (`seq`: the last one sent). The
 * client answers `{"t":"more"}` once it has read the page, and the next page follows; live
 * messages wait for this socket until the replay is done. A page not asked past in
 * REPLAY_ACK_MS ends the connection (4503: resume from the cursor reached).
 */
export interface MoreFrame {
  t: "more";
  /** Multiplexed connections: the channel whose replay this is. */
  ch?: string;
  seq: number;
}
/** The channel is a Durable Stream that was closed: nothing follows `seq`. */
export interface ClosedFrame {
  t: "closed";
  ch?: string;
  seq: number;
}
export type ServerFrame =
  | WelcomeFrame
  | ClosedFrame
  | MoreFrame
  | ConnectionWelcomeFrame
  | MsgFrame
  | AppendFrame
  | ResetFrame
  | AckFrame
  | ErrFrame
  | MembersFrame
  | JoinFrame
  | LeaveFrame
  | BatchFrame
  | SubscribedFrame
  | UnsubscribedFrame;

// ---- client to server --------------------------------------------------------------------

/**
 * Publish over the socket (needs a `pub` grant); `ch` on multiplexed connections. With `append`
 * (the id of a message this publisher made, whose data is a string) it grows that message by
 * `d` (a string) instead, and `done` ends it; `e` is then not needed.
 */
export interface PubFrame {
  t: "pub";
  e?: string;
  d: unknown;
  id?: string;
  ch?: string;
  append?: string;
  done?: boolean;
}
/** Replaces the connection's token (same channel grant, same `sub`). */
export interface AuthFrame {
  t: "auth";
  token: string;
}
export interface SubFrame {
  t: "sub";
  ch: string;
  since?: number;
  epoch?: string;
  rewind?: number;
  token?: string;
}
export interface UnsubFrame {
  t: "unsub";
  ch: string;
}
/** Read a replay page: send the next one (`ch` on multiplexed connections). */
export interface MoreRequestFrame {
  t: "more";
  ch?: string;
}
export type ClientFrame = PubFrame | AuthFrame | SubFrame | UnsubFrame | MoreRequestFrame;

// ---- HTTP --------------------------------------------------------------------------------

/** Answer of an HTTP publish (and of a `pub`'s ack, without `delivered`). */
export interface PublishResult {
  seq: number;
  id: string;
  delivered: number;
  duplicate: boolean;
  /** An append's answer: the seq of the message it grew. */
  ref?: number;
}
