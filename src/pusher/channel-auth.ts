// Who may subscribe to what on a Pusher connection (DESIGN.md "Pusher-compatible endpoint"):
// public channels are open (unless the channel's options require auth), `private-` and
// `presence-` channels need the app's signature of "socket_id:channel[:channel_data]";
// `private-encrypted-` channels too (the server relays what it cannot read, and takes no client
// events on them, as Pusher does).
// A refusal is a ServiceError like any other; the Pusher dialect sends it as
// `pusher:subscription_error` with its status (400, 401 or 403).
import { isPresenceChannel, isPrivateChannel, LIMITS } from "../protocol/index.js";
import { ServiceError } from "../server/service-error.js";
import type { PusherApp } from "./app.js";
import { verifyHmacHex } from "./signature.js";

const refusal = { 400: "bad_request", 401: "unauthorized", 403: "forbidden" } as const;
const refuse = (status: 400 | 401 | 403, message: string) => new ServiceError(refusal[status], message);

/** What a subscription is granted: a presence member (id, info as JSON) and client events. */
export interface PusherGrant {
  member: { id: string; info: string | null } | null;
  clientEvents: boolean;
}

/** Whether an encrypted channel (`private-encrypted-*`, also its cache variant). */
export const isEncryptedChannel = (channel: string) => channel.startsWith("private-encrypted-");

/** Checks a `pusher:subscribe`; throws a ServiceError (401, 403, 400) when it may not subscribe. */
export async function authorizePusherChannel(app: PusherApp, socketId: string, channel: string, data: { auth?: unknown; channel_data?: unknown }, requireAuth: boolean): Promise<PusherGrant> {
  if (!isPrivateChannel(channel)) {
    if (requireAuth) throw refuse(403, `channel ${channel} requires auth: use a private- or presence- channel`);
    return { member: null, clientEvents: false };
  }
  const presence = isPresenceChannel(channel);
  const auth = typeof data.auth === "string" ? data.auth : "";
  const channelData = typeof data.channel_data === "string" ? data.channel_data : null;
  if (auth === "") throw refuse(401, `subscribing to ${channel} needs an auth signature`);
  if (presence && channelData === null) throw refuse(401, "presence channels need channel_data");
  const colon = auth.indexOf(":");
  const key = auth.slice(0, colon);
  const signed = presence ? `${socketId}:${channel}:${channelData}` : `${socketId}:${channel}`;
  if (colon < 0 || key !== app.key || !(await verifyHmacHex(app.secret, signed, auth.slice(colon + 1)))) {
    throw refuse(401, `Invalid signature: expected HMAC SHA256 hex digest of ${signed}`);
  }
  return { member: presence ? memberOf(channelData!) : null, clientEvents: app.clientEvents && !isEncryptedChannel(channel) };
}

/** The member a presence channel_data names: `user_id` (string or number) and `user_info`. */
function memberOf(channelData: string): { id: string; info: string | null } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(channelData);
  } catch {
    throw refuse(400, "channel_data must be JSON");
  }
  const { user_id: userId, user_info: info } = (parsed ?? {}) as { user_id?: unknown; user_info?: unknown };
  if ((typeof userId !== "string" && typeof userId !== "number") || String(userId) === "" || String(userId).length > LIMITS.id) {
    throw refuse(400, `channel_data.user_id must be a string or number of 1-${LIMITS.id} characters`);
  }
  const infoJson = info === undefined ? null : JSON.stringify(info);
  if (infoJson !== null && infoJson.length > LIMITS.presenceInfoBytes) throw refuse(400, `channel_data.user_info is over ${LIMITS.presenceInfoBytes} bytes`);
  return { id: String(userId), info: infoJson };
}
