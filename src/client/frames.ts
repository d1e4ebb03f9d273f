// The wire protocol as clients see it (DESIGN.md "Frames"). The server's protocol module uses
// these same types, so client and server cannot drift apart.

export type ErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "too_large"
  | "unsupported_media_type"
  | "upgrade_required"
  | "rate_limited"
  | "internal"
  | "unavailable"
  | "bad_frame";

export interface WelcomeFrame {
  t: "welcome";
  v: number;
  ch: string;
  cid: string;
  seq: number;
  /** The epoch the channel's messages carry; named before the first publish too. */
  epoch: string;
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
}
export interface ResetFrame {
  t: "reset";
  seq: number;
  epoch: string;
}
export interface AckFrame {
  t: "ack";
  id: string;
  seq: number;
  duplicate: boolean;
}
export interface ErrFrame {
  t: "err";
  code: ErrorCode;
  message: string;
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
  members: Member[];
  /** All members; `members` lists at most PRESENCE_MAX_MEMBERS of them. */
  count: number;
}
export interface JoinFrame {
  t: "join";
  member: Member;
}
export interface LeaveFrame {
  t: "leave";
  member: Member;
}
export type ServerFrame = WelcomeFrame | MsgFrame | ResetFrame | AckFrame | ErrFrame | MembersFrame | JoinFrame | LeaveFrame;

/** Answer of an HTTP publish. */
export interface PublishResult {
  seq: number;
  id: string;
  delivered: number;
  duplicate: boolean;
}

/** The JSON error body of every HTTP error. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

/** A position in a channel: everything up to `seq` of `epoch` has been seen. */
export interface Cursor {
  seq: number;
  epoch: string | null;
}
