// Pusher protocol 7 on the wire (DESIGN.md "Pusher-compatible endpoint"): what the server sends,
// what it reads, and how a channel message maps between Pusher's `data` string and the log.
// Every `data` the server sends is a string, JSON text where it carries an object, as Pusher does.
import { isPresenceChannel, type Member } from "../protocol/index.js";
import type { LoggedMessage } from "../rpc.js";

/** Seconds of silence after which pusher-js pings (it expects a pong within 30 s). */
export const ACTIVITY_TIMEOUT_S = 120;

/** The ping pusher-js sends and the pong it expects: answered by the runtime, without a wake. */
export const PING = JSON.stringify({ event: "pusher:ping", data: {} });
export const PONG = JSON.stringify({ event: "pusher:pong", data: "{}" });

/**
 * Pusher's close codes (4000-4099: do not reconnect; 4100-4199: reconnect after a while;
 * 4200-4299: reconnect now) and its error codes for `pusher:error`.
 */
export const PUSHER_CLOSE = {
  appNotFound: 4001,
  unsupportedProtocol: 4007,
  overCapacity: 4100,
  pongNotReceived: 4201,
} as const;
export const CLIENT_EVENT_RATE = 4301;

/** A Pusher connection's socket id ("digits.digits"): its cid, so `socket_id` and `?exclude=` name the same. */
export function newSocketId(): string {
  const part = () => String(crypto.getRandomValues(new Uint32Array(1))[0]! % 1_000_000_000);
  return `${part()}.${part()}`;
}

export const SOCKET_ID_RE = /^\d{1,20}\.\d{1,20}$/;

function frame(event: string, data: unknown, channel?: string): string {
  const text = typeof data === "string" ? data : JSON.stringify(data);
  return JSON.stringify(channel === undefined ? { event, data: text } : { event, channel, data: text });
}

export const established = (socketId: string) => frame("pusher:connection_established", { socket_id: socketId, activity_timeout: ACTIVITY_TIMEOUT_S });

export const pusherError = (code: number | null, message: string) => frame("pusher:error", { code, message });

export const pusherPing = () => frame("pusher:ping", {});

/** A channel's subscriber count changed (debounced by the hub). */
export const subscriptionCount = (channel: string, count: number) => frame("pusher_internal:subscription_count", { subscription_count: count }, channel);

/** A sign-in accepted: the user_data it signed, sent back as it came. */
export const signinSuccess = (userData: string) => frame("pusher:signin_success", { user_data: userData });

export function subscriptionSucceeded(channel: string, presence?: { members: Member[]; count: number }): string {
  if (presence === undefined) return frame("pusher_internal:subscription_succeeded", {}, channel);
  // No prototype: a user_id such as "__proto__" or "constructor" is a key like any other.
  const hash = Object.create(null) as Record<string, unknown>;
  for (const m of presence.members) hash[m.id] = m.info;
  return frame("pusher_internal:subscription_succeeded", { presence: { ids: Object.keys(hash), hash, count: presence.count } }, channel);
}

/** A refused subscription; the connection stays open. */
export const subscriptionError = (channel: string, status: number, error: string) =>
  frame("pusher:subscription_error", { type: "AuthError", error, status }, channel);

export const memberAdded = (channel: string, m: Member) => frame("pusher_internal:member_added", { user_id: m.id, user_info: m.info }, channel);
export const memberRemoved = (channel: string, m: Member) => frame("pusher_internal:member_removed", { user_id: m.id }, channel);

/** What Pusher clients get for an append: data `{"id","d","done"?}` (`id`: the message's). */
export const APPEND_EVENT = "hibercast:append";

/** Stored data (JSON text) as a Pusher `data` string: a string itself, anything else its JSON. */
export const pusherData = (stored: string): string => (stored.startsWith('"') ? (JSON.parse(stored) as string) : stored);

/**
 * A logged message as Pusher clients get it: `data` is the message's data itself when that is a
 * string, else its JSON text, so pusher-js parses either into what the publisher sent. Client
 * events on presence channels name their sender (`user_id`).
 */
export function channelEvent(channel: string, m: LoggedMessage): string {
  // An append (DESIGN v1.3 "Appends"): an event only the server sends, naming the message it grows.
  if (m.ref !== undefined) return JSON.stringify({ event: APPEND_EVENT, channel, data: JSON.stringify({ id: m.of, d: JSON.parse(m.data) as string, ...(m.done === true ? { done: true } : {}) }) });
  const data = pusherData(m.data);
  const user = m.sender !== null && isPresenceChannel(channel) && m.event.startsWith("client-") ? { user_id: m.sender } : {};
  return JSON.stringify({ event: m.event, channel, data, ...user });
}

/**
 * A Pusher `data` string as the log keeps it (serialized JSON): a string that is valid JSON is
 * stored as that value (hibercast clients get it parsed), any other as a string.
 */
export function storedData(data: unknown): string {
  if (typeof data !== "string") return JSON.stringify(data ?? null);
  try {
    JSON.parse(data);
    return data;
  } catch {
    return JSON.stringify(data);
  }
}

/** What a Pusher client sends: an event with data (an object or a string) and maybe a channel. */
export interface PusherClientFrame {
  event: string;
  data: unknown;
  channel?: string;
}

export function parsePusherFrame(text: string): PusherClientFrame | null {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
    const { event, data, channel } = value as Record<string, unknown>;
    if (typeof event !== "string") return null;
    // pusher-js sends `data` as an object; other clients send it as JSON text.
    let parsed = data;
    if (typeof data === "string" && !event.startsWith("client-")) {
      try {
        parsed = JSON.parse(data);
      } catch {
        // left as a string
      }
    }
    return { event, data: parsed, ...(typeof channel === "string" ? { channel } : {}) };
  } catch {
    return null;
  }
}
