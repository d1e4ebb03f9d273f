import type { Cursor } from "../protocol/index.js";
import { msgFrame } from "../connections/outgoing.js";
import { utf8Length } from "../server/utf8.js";
import type { LoggedMessage, ReplayLog } from "./replay-log.js";

/** History: `?since=&epoch=` oldest first, `?before=` newest first, or the last `limit`. */
export interface HistoryQuery {
  cursor: Cursor | null;
  before: number | null;
  limit: number;
}

/**
 * The most bytes (UTF-8) a history answer holds (DESIGN.md v1.3 "Bounded memory and time per
 * request"): `limit` 1000 of 64 KiB messages would otherwise be a 64 MiB string in the hub.
 */
export const HISTORY_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Rows read from the log at a time, so the hub holds about one page plus one read of messages,
 * never `limit` of them, whatever the page is cut to.
 */
const READ_ROWS = 32;

/**
 * The page's messages in the order it answers them, read `n` at a time: after the cursor oldest
 * first, before `before` newest first, or the last `limit` oldest first. Null: a reset.
 */
function reader(log: ReplayLog, query: HistoryQuery, now: number): ((n: number) => LoggedMessage[]) | null {
  if (query.before !== null) {
    let before = query.before;
    return (n) => {
      const rows = log.before(before, n, now);
      if (rows.length > 0) before = rows[rows.length - 1]!.seq;
      return rows;
    };
  }
  if (query.cursor !== null) {
    // The cursor is checked once (epoch, retention); later reads go on from the last row read,
    // in this same synchronous turn, so nothing can change between them. Entries: a message's
    // appends come as its `append` frames, as a resume gives them.
    const first = log.since(query.cursor, now, 0);
    if (first.reset) return null;
    let after: Cursor = { seq: query.cursor.seq, epoch: null };
    return (n) => {
      const replay = log.since(after, now, n);
      const rows = replay.reset ? [] : replay.messages;
      if (rows.length > 0) after = { seq: rows[rows.length - 1]!.seq, epoch: null };
      return rows;
    };
  }
  // The last `limit` messages, oldest first (what `log.last` answers): each grown one whole.
  let after = log.beforeLast(query.limit, now);
  return (n) => {
    const rows = log.messagesAfter(after, n, now);
    if (rows.length > 0) after = rows[rows.length - 1]!.seq;
    return rows;
  };
}

/**
 * History as the JSON body of the answer: frames are spliced in as stored, never re-parsed.
 *
 * At most HISTORY_MAX_BYTES: a page that would pass it ends before the frame that would, and
 * says `"more": true` (absent otherwise, so an uncut page reads as it always did). It is cut at
 * its far end, so the cursors stay what they were: an oldest-first page (`since`, or the last
 * `limit`) goes on with `?since=<its last seq>`, a `before` page with `?before=<its last seq>`
 * — never from the answer's `seq`, which stays the channel's newest. One message bigger than the
 * cap still goes out alone (only possible with MAX_MESSAGE_BYTES near 4 MiB), or no page could
 * ever pass it.
 */
export function historyBody(log: ReplayLog, channel: string, query: HistoryQuery, now: number, maxBytes = HISTORY_MAX_BYTES): string {
  const read = reader(log, query, now);
  const frames: string[] = [];
  const sizes: number[] = [];
  let more = false;
  if (read !== null) {
    let used = utf8Length(envelope([], log, false, false));
    let left = query.limit;
    reading: while (left > 0) {
      const n = Math.min(left, READ_ROWS);
      const rows = read(n);
      for (const m of rows) {
        const frame = msgFrame(channel, m);
        const bytes = utf8Length(frame) + (frames.length > 0 ? 1 : 0); // and its comma
        if (frames.length > 0 && used + bytes > maxBytes) {
          more = true;
          break reading;
        }
        frames.push(frame);
        sizes.push(bytes);
        used += bytes;
      }
      left -= rows.length;
      if (rows.length < n) break;
    }
    // A cut page also says so: make room for `,"more":true` too.
    while (more && frames.length > 1 && used + MORE.length > maxBytes) {
      frames.pop();
      used -= sizes.pop()!;
    }
  }
  return envelope(frames, log, read === null, more);
}

const MORE = ',"more":true';

function envelope(frames: string[], log: ReplayLog, reset: boolean, more: boolean): string {
  return `{"messages":[${frames.join(",")}],"seq":${log.lastSeq},"epoch":${JSON.stringify(log.epoch)},"reset":${reset}${more ? MORE : ""}}`;
}
