// The contract between the Worker and a room for taking a socket: the Worker authenticates and
// parses, then hands the room what it decided in one internal header the client cannot set.
import type { Claims, Identity } from "../server/auth.js";
import type { Start } from "../rpc.js";

export type { Start };
import type { Transport } from "./sockets.js";


/** How many messages a new subscriber is first sent: its rewind, and at least 1 on a latest-value channel. */
export function rewindOf(start: Start, latest: boolean): number {
  return latest ? Math.max(1, start.rewind) : start.rewind;
}

export interface ConnectRequest {
  channel: string;
  identity: Identity;
  start: Start;
  transport: Transport;
  /** The socket takes `batch` frames (`?batch=1`). */
  batch: boolean;
  /**
   * A connection with no channel yet: multiplexed (`GET /v1/ws`, with the connection token's
   * claims, if any) or Pusher's (`GET /app/:key`).
   */
  mux?: { claims: Claims | null; pusher?: true };
}

const CONNECT_HEADER = "x-hibercast-connect";

/** Builds the internal upgrade request; the client's own headers never reach the room. */
export function connectRequest(connect: ConnectRequest): Request {
  return new Request("https://room.internal/connect", {
    headers: { Upgrade: "websocket", [CONNECT_HEADER]: JSON.stringify(connect) },
  });
}

/** The connect request a room was sent, or null for anything else. */
export function readConnect(request: Request): ConnectRequest | null {
  const raw = request.headers.get(CONNECT_HEADER);
  if (raw === null || request.headers.get("upgrade") !== "websocket") return null;
  return JSON.parse(raw) as ConnectRequest;
}
