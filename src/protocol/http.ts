// What the HTTP API answers, as the server builds it and the SDK and tests read it.
import type { ErrorCode } from "./errors.js";
import type { MsgFrame, PublishResult } from "./frames.js";

/** One message's result in a batch publish: its seq, or why it was not published. */
export type BatchResult = ({ channel: string } & PublishResult) | { channel: string; id: string; error: { code: ErrorCode; message: string } };

/** A history page (`GET /v1/channels/:channel/messages`). */
export interface HistoryPage {
  messages: MsgFrame[];
  seq: number;
  epoch: string | null;
  reset: boolean;
  /**
   * True when the page was cut short of `limit` to stay within 4 MiB: go on from its last
   * message's seq (`since` for an oldest-first page, `before` for a `before` page), not from
   * `seq`. Absent on a page that was not cut.
   */
  more?: boolean;
}
