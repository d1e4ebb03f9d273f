// Pusher's users (DESIGN v1.3 "Pusher: users, cache and encrypted channels"): a connection signs
// in as a user with the app's signature of "socket_id::user::user_data", and then receives the
// events the app sends to that user (`sendToUser`: an event on `#server-to-user-<id>`). That user
// channel is a channel like any other, logged and exact; its name starts with `#`, which no public
// route takes, so only the user's own signed-in connections can subscribe to it. Terminating a
// user's connections is an event on the same channel, which only the server can send.
import { LIMITS } from "../protocol/index.js";
import { ServiceError } from "../server/service-error.js";
import type { PusherApp } from "./app.js";
import { verifyHmacHex } from "./signature.js";

export const USER_CHANNEL_PREFIX = "#server-to-user-";
/** The event that ends every connection of a user (a reserved name: no client can send it). */
export const TERMINATE_EVENT = "hibercast:terminate";
/** Pusher's close code for a connection the app ended (and for a refused sign-in). */
export const TERMINATED_CLOSE = 4009;

/** User ids as the `pusher` SDK allows them. */
const USER_ID = /^[A-Za-z0-9_\-=@,.;]+$/;

export const isUserId = (id: string) => id.length >= 1 && id.length <= LIMITS.id && USER_ID.test(id);
export const userChannel = (id: string) => `${USER_CHANNEL_PREFIX}${id}`;

/** The user a `#server-to-user-<id>` channel is of, or null for any other name. */
export function userOf(channel: string): string | null {
  if (!channel.startsWith(USER_CHANNEL_PREFIX)) return null;
  const id = channel.slice(USER_CHANNEL_PREFIX.length);
  return isUserId(id) ? id : null;
}

/** A signed-in user: its id, the user_data it signed in with (sent back as it came), whom it watches. */
export interface SignedIn {
  id: string;
  userData: string;
  watchlist: string[];
}

/** Ids one user may watch, as on Pusher. */
export const WATCHLIST_MAX = 100;
/** Watchers one user's hub remembers (the oldest go first); each sign-in renews its place. */
export const WATCHERS_MAX = 1000;
export const WATCHLIST_EVENT = "pusher_internal:watchlist_events";

/** A watchlist event's data: `{"events":[{"name":"online"|"offline","user_ids":[…]}]}`. */
export const watchlistData = (name: "online" | "offline", ids: string[]) => JSON.stringify({ events: [{ name, user_ids: ids }] });

/** The same, as a frame of its own on the connection (no channel), as Pusher sends it after sign-in. */
export const watchlistFrame = (name: "online" | "offline", ids: string[]) => JSON.stringify({ event: WATCHLIST_EVENT, data: watchlistData(name, ids) });

/** Checks a `pusher:signin` (`{auth, user_data}`); throws `unauthorized` with Pusher's kind of reason. */
export async function verifySignin(app: PusherApp, socketId: string, data: Record<string, unknown>): Promise<SignedIn> {
  const auth = typeof data.auth === "string" ? data.auth : "";
  const userData = typeof data.user_data === "string" ? data.user_data : null;
  if (auth === "" || userData === null) throw new ServiceError("unauthorized", "pusher:signin needs auth and user_data");
  const colon = auth.indexOf(":");
  const signed = `${socketId}::user::${userData}`;
  if (colon < 0 || auth.slice(0, colon) !== app.key || !(await verifyHmacHex(app.secret, signed, auth.slice(colon + 1)))) {
    throw new ServiceError("unauthorized", `Invalid signature: expected HMAC SHA256 hex digest of ${signed}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(userData);
  } catch {
    throw new ServiceError("unauthorized", "user_data must be JSON");
  }
  const { id, watchlist } = (parsed ?? {}) as { id?: unknown; watchlist?: unknown };
  if (typeof id !== "string" || !isUserId(id)) throw new ServiceError("unauthorized", `user_data.id must be a string of 1-${LIMITS.id} of A-Z a-z 0-9 _ - = @ , . ;`);
  if (watchlist !== undefined && (!Array.isArray(watchlist) || watchlist.length > WATCHLIST_MAX || !watchlist.every((w) => typeof w === "string" && isUserId(w)))) {
    throw new ServiceError("unauthorized", `user_data.watchlist must be at most ${WATCHLIST_MAX} user ids`);
  }
  return { id, userData, watchlist: [...new Set((watchlist as string[] | undefined) ?? [])] };
}
