// useChannel: a channel's latest messages (typed by an event map), its state, and publish.
import { useCallback, useMemo } from "react";
import type { Ack } from "../client/connection.js";
import { HibercastError } from "../client/errors.js";
import type { ChannelOptions } from "../client/multiplexed.js";
import type { EventMap, Message } from "../client/subscription.js";
import { INITIAL_STATUS, type ChannelStatus, type ChannelStore, type ChannelView } from "./channel-store.js";
import { useSharedConnection } from "./context.js";
import { useChannelView } from "./watch.js";

/** A message of one of the channel's events, typed by the map: narrow it by `e`. */
export type ChannelMessage<Events extends EventMap = EventMap> = { [K in keyof Events & string]: Message<K, Events[K]> }[keyof Events & string];

export interface UseChannelOptions extends ChannelOptions {
  /** How many of the latest messages `messages` holds. Default 100 (0 with a callback). */
  limit?: number;
}

export interface ChannelResult<Events extends EventMap = EventMap> extends ChannelStatus {
  /** The latest messages, oldest first; a growing message once, in its place, with its whole text so far. */
  messages: readonly ChannelMessage<Events>[];
  /** Publishes over the shared socket (the token needs a `pub` grant); resolves with the `ack`. */
  publish<K extends keyof Events & string>(event: K, data: Events[K], options?: { id?: string }): Promise<Ack>;
  /** Grows message `messageId` (string data, published by this token) by `text`; `done` ends it. */
  append(messageId: string, text: string, options?: { id?: string; done?: boolean }): Promise<Ack>;
}

const DEFAULT_LIMIT = 100;

const withMessages = (store: ChannelStore): ChannelView => store.channel;
const statusOnly = (store: ChannelStore): ChannelView => store.status;

/**
 * Subscribes to `channel` while the component is mounted (one subscription per channel,
 * however many components use it). With `onMessage`, every message (and every growth of one)
 * is handed to it and no list is kept unless `limit` asks for one.
 */
export function useChannel<Events extends EventMap = EventMap>(channel: string, options?: UseChannelOptions): ChannelResult<Events>;
export function useChannel<Events extends EventMap = EventMap>(channel: string, onMessage: (message: ChannelMessage<Events>) => void, options?: UseChannelOptions): ChannelResult<Events>;
export function useChannel<Events extends EventMap = EventMap>(
  channel: string,
  second?: UseChannelOptions | ((message: ChannelMessage<Events>) => void),
  third?: UseChannelOptions,
): ChannelResult<Events> {
  const onMessage = typeof second === "function" ? second : undefined;
  const options = (typeof second === "function" ? third : second) ?? {};
  const limit = Math.max(0, options.limit ?? (onMessage ? 0 : DEFAULT_LIMIT));
  const shared = useSharedConnection("useChannel");
  const view = useChannelView(
    "useChannel",
    channel,
    { ...options, keep: limit, ...(onMessage ? { onMessage: onMessage as (m: Message) => void } : {}) },
    limit > 0 ? withMessages : statusOnly,
    INITIAL_STATUS,
  );
  // The store keeps as many as its most demanding watcher reads; this one shows its own limit.
  const messages = useMemo(() => (limit === 0 || view.messages.length <= limit ? view.messages : view.messages.slice(-limit)), [view.messages, limit]) as readonly ChannelMessage<Events>[];
  const subscription = useCallback(() => {
    const store = shared.peek(channel);
    if (store === undefined) throw new HibercastError("closed", `not subscribed to ${channel}`);
    return store.subscription;
  }, [shared, channel]);
  const publish = useCallback(
    <K extends keyof Events & string>(event: K, data: Events[K], opts?: { id?: string }) => {
      try {
        return subscription().publish(event, data, opts);
      } catch (err) {
        return Promise.reject(err);
      }
    },
    [subscription],
  );
  const append = useCallback(
    (messageId: string, text: string, opts?: { id?: string; done?: boolean }) => {
      try {
        return subscription().append(messageId, text, opts);
      } catch (err) {
        return Promise.reject(err);
      }
    },
    [subscription],
  );
  return { state: view.state, error: view.error, reset: view.reset, messages, publish, append };
}
