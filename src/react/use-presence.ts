// usePresence: who is on a presence channel, kept current by join and leave.
import type { Member } from "../protocol/frames.js";
import { INITIAL_PRESENCE, type ChannelStatus, type ChannelStore, type PresenceView } from "./channel-store.js";
import type { UseChannelOptions } from "./use-channel.js";
import { useChannelView } from "./watch.js";

export interface PresenceResult<Info = unknown> extends ChannelStatus {
  /** The members listed (at most `PRESENCE_MAX_MEMBERS`), one per user however many tabs. */
  members: readonly Member<Info>[];
  /** All members, also beyond those listed. */
  count: number;
}

const presenceOf = (store: ChannelStore): PresenceView => store.presence;

/** Joins presence channel `channel` (`presence-*`; the token needs a `sub`) and lists its members. */
export function usePresence<Info = unknown>(channel: string, options: Omit<UseChannelOptions, "limit"> = {}): PresenceResult<Info> {
  const view = useChannelView("usePresence", channel, { ...options, keep: 0 }, presenceOf, INITIAL_PRESENCE);
  return view as PresenceResult<Info>;
}
