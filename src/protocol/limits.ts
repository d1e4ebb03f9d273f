/** Limits fixed by the protocol, not configurable. */
export const LIMITS = {
  channelName: 128,
  eventName: 128,
  id: 128,
  presenceInfoBytes: 1024,
  batch: 100,
  historyLimit: 1000,
  rewind: 100,
  /** Frames in one `batch` frame, and bytes of frames in it. */
  batchFrames: 256,
  batchBytes: 64 * 1024,
  /** Channels one multiplexed connection may subscribe to (default of MAX_SUBSCRIPTIONS). */
  subscriptions: 100,
} as const;

const CHANNEL_RE = /^[A-Za-z0-9_\-.:=@,;]{1,128}$/;

/** What a valid channel name is, in words, for error messages. */
export const CHANNEL_RULE = "1-128 characters of A-Z a-z 0-9 _ - . : = @ , ;";

export function isValidChannel(name: string): boolean {
  return CHANNEL_RE.test(name);
}
