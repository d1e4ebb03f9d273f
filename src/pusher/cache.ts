// Pusher's cache channels (`cache-`, `private-cache-`, `presence-cache-`,
// `private-encrypted-cache-`; DESIGN v1.3): a subscriber gets the channel's last event right
// after `subscription_succeeded` when it is at most 30 minutes old, else `pusher:cache_miss`
// (and the app a `cache_miss` webhook). The last event is the log's last message: nothing else
// is kept for it.
import type { LoggedMessage } from "../rpc.js";

/** How long a cache channel's last event is given to new subscribers, as on Pusher. */
export const CACHE_TTL_MS = 30 * 60_000;
/** At most one `cache_miss` webhook per channel this often, however many subscribe to it empty. */
export const CACHE_MISS_EVERY_MS = 10_000;

const PREFIXES = ["cache-", "private-cache-", "presence-cache-", "private-encrypted-cache-"];

export const isCacheChannel = (channel: string) => PREFIXES.some((p) => channel.startsWith(p));

/** The cached event among a subscriber's opening (its last message), if still fresh. */
export function cachedEvent(opening: LoggedMessage[], now: number): LoggedMessage | null {
  const last = opening.at(-1);
  return last !== undefined && last.ts >= now - CACHE_TTL_MS ? last : null;
}

/** `pusher:cache_miss`, as Pusher sends it: the channel, no data. */
export const cacheMiss = (channel: string) => JSON.stringify({ event: "pusher:cache_miss", channel });
