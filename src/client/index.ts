// hibercast/client: subscribe to a channel over WebSocket, in browsers and Node, with exact
// resume across reconnects. No server code in here.
import { Subscription, type EventMap, type SubscribeOptions } from "./subscription.js";

export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
export { Connection, type Ack, type ConnectionOptions, type LifecycleEvents, type State, type WebSocketConstructor, type WebSocketLike } from "./connection.js";
export { Emitter } from "./emitter.js";
export { HibercastError, type ClientErrorCode } from "./errors.js";
export { connect, MultiplexedConnection, type ChannelOptions, type ConnectOptions } from "./multiplexed.js";
export { type StateChange, type StateReason, type SubscriptionState } from "./state.js";
export { Subscription, type EventMap, type Link, type Message, type PresenceEvents, type PubFields, type SubscribeOptions, type SubscriptionEvents } from "./subscription.js";
export type * from "../protocol/frames.js";
export type { Cursor } from "../protocol/cursor.js";
export type { ErrorBody, ErrorCode } from "../protocol/errors.js";

/** Subscribes to a channel; see `SubscribeOptions`. */
export function subscribe<Events extends EventMap = EventMap>(options: SubscribeOptions): Subscription<Events> {
  return new Subscription<Events>(options);
}
