// What every channel hook does: watch a channel of the shared connection for as long as the
// component is mounted, and read one view of it. Watching is `useSyncExternalStore`'s subscribe,
// so React starts and stops it (twice under StrictMode), never a render.
import { useCallback, useInsertionEffect, useRef, useSyncExternalStore } from "react";
import type { ChannelOptions } from "../client/multiplexed.js";
import type { Message } from "../client/subscription.js";
import type { ChannelStore } from "./channel-store.js";
import { useSharedConnection } from "./context.js";

export interface WatchOptions extends ChannelOptions {
  /** How many of the latest messages the store must keep for this hook (0: none). */
  keep: number;
  onMessage?: (message: Message) => void;
}

/**
 * Watches `channel` and answers `view(store)` (or `initial` before the store exists). `view`
 * must answer the same object until what it shows changes, and must not change identity per render.
 */
export function useChannelView<T>(hook: string, channel: string, options: WatchOptions, view: (store: ChannelStore) => T, initial: T): T {
  const shared = useSharedConnection(hook);
  const { keep, onMessage, rewind, token } = options;
  const since = options.since;
  const sinceSeq = since?.seq;
  const sinceEpoch = since?.epoch;
  // The latest handler, so a new function each render neither resubscribes nor goes stale.
  const handler = useRef(onMessage);
  useInsertionEffect(() => {
    handler.current = onMessage;
  });
  const handles = onMessage !== undefined;
  const subscribe = useCallback(
    (onChange: () => void) => {
      const start: ChannelOptions = {
        ...(sinceSeq === undefined ? {} : { since: { seq: sinceSeq, epoch: sinceEpoch ?? null } }),
        ...(rewind === undefined ? {} : { rewind }),
        ...(token === undefined ? {} : { token }),
      };
      return shared.watch(channel, start, { keep, onChange, ...(handles ? { onMessage: (m: Message) => handler.current?.(m) } : {}) });
    },
    [shared, channel, sinceSeq, sinceEpoch, rewind, token, keep, handles],
  );
  const read = useCallback(() => {
    const store = shared.peek(channel);
    return store === undefined ? initial : view(store);
  }, [shared, channel, view, initial]);
  return useSyncExternalStore(subscribe, read, read);
}
