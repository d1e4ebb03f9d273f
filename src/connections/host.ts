// What a dialect may ask of the object that holds its sockets (a hub or an edge): the object's
// sockets and delivery, its alarm, its settings, a client publish (recorded by the hub, or
// forwarded to it by an edge), and the one way a socket is let go.
import type { Env } from "../env.js";
import type { PublishInput, PublishOptions } from "../rpc.js";
import type { PublishResult } from "../protocol/index.js";
import type { ChannelConfig } from "../settings/config.js";
import type { Alarm } from "./alarms.js";
import type { Delivery } from "./delivery.js";
import type { Ending } from "./dialects/dialect.js";
import type { LogReader } from "./replay-pages.js";
import type { Sockets, SocketState } from "./sockets.js";

export interface DialectHost {
  readonly bindings: Env;
  readonly runtime: DurableObjectState;
  readonly sockets: Sockets;
  /** The object's delivery to its single-channel sockets. */
  readonly delivery: Delivery;
  readonly alarms: Alarm;
  config(channel: string): ChannelConfig;
  /** A client's publish: checked against its grant and rate, published, answered with the result. */
  publishFromSocket(ws: WebSocket, state: SocketState, channel: string, grant: { sub: string | null; pub: boolean; exp: number | null }, input: PublishInput): Promise<PublishResult | null>;
  /** Publishes for a client (the hub records it; an edge forwards it to the channel's hub). */
  publishFor(channel: string, input: PublishInput, options: PublishOptions): Promise<PublishResult>;
  /** Cleans up after a socket that is going (the one close path); answers its state. Never throws. */
  forget(ws: WebSocket): SocketState | null;
  /** After a socket went: what the object does then (an edge may leave its hub's list). */
  afterClose(state: SocketState): Promise<void>;
  /** Where a replay's later pages come from: the hub's log, or an edge's tail and its hub. */
  readonly replays: LogReader;
  /** Ends a socket for the server's own reason, in its dialect, along the one close path. */
  end(ws: WebSocket, state: SocketState, why: Ending, message: string): void;
}
