// Channel names and kinds: the one home of the rules every surface applies to a name.

const CHANNEL_RE = /^[A-Za-z0-9_\-.:=@,;]{1,128}$/;

/** What a valid channel name is, in words, for error messages. */
export const CHANNEL_RULE = "1-128 characters of A-Z a-z 0-9 _ - . : = @ , ;";

export function isValidChannel(name: string): boolean {
  return CHANNEL_RE.test(name);
}

/** Presence channels keep members (one per token `sub`) and need a subscribe token. */
export const isPresenceChannel = (channel: string) => channel.startsWith("presence-");

/** Channels that need a subscribe token whatever the settings: `private-` and `presence-`. */
export const isPrivateChannel = (channel: string) => channel.startsWith("private-") || isPresenceChannel(channel);

/** Event name prefixes only the server sends: Pusher's protocol events and hibercast's own. */
export const RESERVED_EVENT_PREFIXES = ["pusher:", "pusher_internal:", "hibercast:"] as const;

export const isReservedEvent = (event: string) => RESERVED_EVENT_PREFIXES.some((p) => event.startsWith(p));
