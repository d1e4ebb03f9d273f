// The state of one subscription, apart from the state of the socket it rides on: a multiplexed
// connection can be open while one of its channels was refused. Modelled on centrifuge-js.
import type { HibercastError } from "./errors.js";

/**
 * `subscribing`: waiting for the server to accept it (first time, or again after a drop);
 * `subscribed`: messages flow; `unsubscribed`: over for good, nothing brings it back by itself.
 */
export type SubscriptionState = "subscribing" | "subscribed" | "unsubscribed";

/** Why a subscription went to `subscribing` or `unsubscribed`. */
export type StateReason =
  /** → subscribing: the connection dropped; it subscribes again from its cursor when back. */
  | "connection_lost"
  /** → unsubscribed: the app called `close()` on it or on its connection. */
  | "client_closed"
  /** → unsubscribed: the server refused the subscribe or a re-subscribe (`error` says why). */
  | "refused"
  /** → unsubscribed: the server ended a subscription it had accepted (its token expired). */
  | "server_ended"
  /** → unsubscribed: the connection closed for good on an error (`error` says which). */
  | "connection_failed";

/** The `state` event: emitted on every change, never for a repeat of the same state. */
export interface StateChange {
  newState: SubscriptionState;
  oldState: SubscriptionState;
  /** Set on a change to `subscribing` or `unsubscribed`. */
  reason?: StateReason;
  /** What went wrong, when it ended on an error. */
  error?: HibercastError;
}

/** The changes allowed: `unsubscribed` is final, and a state never follows itself. */
const NEXT: Record<SubscriptionState, readonly SubscriptionState[]> = {
  subscribing: ["subscribed", "unsubscribed"],
  subscribed: ["subscribing", "unsubscribed"],
  unsubscribed: [],
};

export function canMove(from: SubscriptionState, to: SubscriptionState): boolean {
  return NEXT[from].includes(to);
}
