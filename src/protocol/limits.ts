/** Limits fixed by the protocol, not configurable. */
export const LIMITS = {
  channelName: 128,
  eventName: 128,
  id: 128,
  presenceInfoBytes: 1024,
  /**
   * Bytes of a `/v1/ws` connection token's claims (as JSON), at most: they are kept with the
   * connection (the runtime keeps at most 16 KiB), and what they take its subscriptions cannot.
   */
  connectionClaimsBytes: 4096,
  batch: 100,
  historyLimit: 1000,
  rewind: 100,
  /** Frames in one `batch` frame, and bytes of frames in it. */
  batchFrames: 256,
  batchBytes: 64 * 1024,
  /** A replay page: at most this many messages, and about this many bytes of them (at least one). */
  replayPageFrames: 256,
  replayPageBytes: 1024 * 1024,
  /** How long a replay page waits for the client's `more` before the connection ends (4503). */
  replayAckMs: 30_000,
} as const;
