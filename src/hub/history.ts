import type { Cursor } from "../protocol/index.js";
import { msgFrame } from "../connections/outgoing.js";
import type { ReplayLog } from "./replay-log.js";

/** History: `?since=&epoch=` oldest first, `?before=` newest first, or the last `limit`. */
export interface HistoryQuery {
  cursor: Cursor | null;
  before: number | null;
  limit: number;
}

/** History as the JSON body of the answer: frames are spliced in as stored, never re-parsed. */
export function historyBody(log: ReplayLog, channel: string, query: HistoryQuery, now: number): string {
  let messages;
  let reset = false;
  if (query.cursor !== null) {
    const replay = log.since(query.cursor, now, query.limit);
    reset = replay.reset;
    messages = replay.reset ? [] : replay.messages;
  } else if (query.before !== null) {
    messages = log.before(query.before, query.limit, now);
  } else {
    messages = log.last(query.limit, now);
  }
  const frames = messages.map((m) => msgFrame(channel, m)).join(",");
  return `{"messages":[${frames}],"seq":${log.lastSeq},"epoch":${JSON.stringify(log.epoch)},"reset":${reset}}`;
}
