// Who may subscribe to what on a Pusher connection (DESIGN.md "Pusher-compatible endpoint"):
// public channels are open (unless the channel's options require auth), `private-` and
// `presence-` channels need the app's signature of "socket_id:channel[:channel_data]".
import { LIMITS } from "../protocol/index.js";
import type { PusherApp } from "./app.js";
import { verifyHmacHex } from "./signature.js";

/** A refused subscription: sent as `pusher:subscription_error` with this status. */
export class PusherRefusal extends Error {
  constructor(
    readonly status: 400 | 401 | 403,
    message: string,
  ) {
    super(message);
  }
}

/** What a subscription is granted: a presence member (id, info as JSON) and client events. */
export interface PusherGrant {
  member: { id: string; info: string | null } | null;
  clientEvents: boolean;
}

export const isPrivate = (channel: string) => channel.startsWith("private-") || channel.startsWith("presence-");

/** Checks a `pusher:subscribe`; throws a PusherRefusal when it may not subscribe. */
export async function authorizePusherChannel(app: PusherApp, socketId: string, channel: string, data: { auth?: unknown; channel_data?: unknown }, requireAuth: boolean): Promise<PusherGrant> {
  if (channel.startsWith("private-encrypted-")) throw new PusherRefusal(403, "encrypted channels are not supported by this server");
  if (!isPrivate(channel)) {
    if (requireAuth) throw new PusherRefusal(403, `channel ${channel} requires auth: use a private- or presence- channel`);
    return { member: null, clientEvents: false };
  }
  const presence = channel.startsWith("presence-");
  const auth = typeof data.auth === "string" ? data.auth : "";
  const channelData = typeof data.channel_data === "string" ? data.channel_data : null;
  if (auth === "") throw new PusherRefusal(401, `subscribing to ${channel} needs an auth signature`);
  if (presence && channelData === null) throw new PusherRefusal(401, "presence channels need channel_data");
  const colon = auth.indexOf(":");
  const key = auth.slice(0, colon);
  const signed = presence ? `${socketId}:${channel}:${channelData}` : `${socketId}:${channel}`;
  if (colon < 0 || key !== app.key || !(await verifyHmacHex(app.secret, signed, auth.slice(colon + 1)))) {
    throw new PusherRefusal(401, `Invalid signature: expected HMAC SHA256 hex digest of ${signed}`);
  }
  return { member: presence ? memberOf(channelData!) : null, clientEvents: true };
}

/** The member a presence channel_data names: `user_id` (string or number) and `user_info`. */
function memberOf(channelData: string): { id: string; info: string | null } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(channelData);
  } catch {
    throw new PusherRefusal(400, "channel_data must be JSON");
  }
  const { user_id: userId, user_info: info } = (parsed ?? {}) as { user_id?: unknown; user_info?: unknown };
  if ((typeof userId !== "string" && typeof userId !== "number") || String(userId) === "" || String(userId).length > LIMITS.id) {
    throw new PusherRefusal(400, `channel_data.user_id must be a string or number of 1-${LIMITS.id} characters`);
  }
  const infoJson = info === undefined ? null : JSON.stringify(info);
  if (infoJson !== null && infoJson.length > LIMITS.presenceInfoBytes) throw new PusherRefusal(400, `channel_data.user_info is over ${LIMITS.presenceInfoBytes} bytes`);
  return { id: String(userId), info: infoJson };
}
