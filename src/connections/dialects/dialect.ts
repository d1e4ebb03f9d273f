// One interface for every socket protocol an object speaks: the single-channel socket (and the
// SSE relay's socket), `/v1/ws` multiplexed connections and Pusher connections. An object fans a
// channel's events out by asking each of its dialects to deliver them; each dialect renders an
// event in its own frames with one exhaustive switch, so a new kind of event cannot be missed by
// one of them (the compiler points at every render).
import type { Member } from "../../protocol/index.js";
import type { LoggedMessage } from "../../rpc.js";
import type { Kind, SocketState } from "../sockets.js";

/** What a channel tells its subscribers. */
export type ChannelEvent =
  | { t: "msg"; ch: string; epoch: string; m: LoggedMessage }
  | { t: "reset"; ch: string; seq: number; epoch: string }
  | { t: "join" | "leave"; ch: string; member: Member }
  /** The channel is a Durable Stream that was closed: it takes no more messages after `seq`. */
  | { t: "closed"; ch: string; seq: number }
  /** How many subscribers the channel has now, every kind on every edge (debounced; Pusher clients are told). */
  | { t: "count"; ch: string; count: number };

/** Why the server ends a connection, each dialect saying it with its own close code. */
export type Ending = "expired" | "silent" | "full" | "tooLarge" | "flooding";

export interface Dialect {
  readonly kind: Kind;
  /** Delivers an event to this dialect's subscribers of `event.ch` here, but connection `skip`; answers how many. */
  deliver(event: ChannelEvent, skip: string | null): number;
  /** This dialect's subscribers of a channel here. */
  count(channel: string): number;
  /** A frame from one of its sockets (already known to be this dialect's). */
  onFrame(ws: WebSocket, state: SocketState, message: string | ArrayBuffer): Promise<void>;
  /** The channels a socket of this dialect is subscribed to. */
  channelsOf(state: SocketState): string[];
  /** Its socket is going: drop what this dialect keeps of it. Must not throw. */
  gone(ws: WebSocket, state: SocketState): void;
  /** Ends a connection, saying why in this dialect's frames and close codes. */
  end(ws: WebSocket, state: SocketState, why: Ending, message: string): void;
}
