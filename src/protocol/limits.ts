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
} as const;
