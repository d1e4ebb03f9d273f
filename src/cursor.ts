import { LIMITS } from "./config";
import { ApiError } from "./errors";

/** A position in a channel: "I have seen everything up to `since` in `epoch`". */
export interface Cursor {
  since: number;
  /** null: the client does not know the epoch, so none is checked. */
  epoch: string | null;
}

/** Where a new subscription starts: after a cursor (resume), the last N messages, or live. */
export interface Start {
  cursor: Cursor | null;
  rewind: number;
}

const SEQ_RE = /^(0|[1-9][0-9]{0,15})$/;
const EPOCH_RE = /^[A-Za-z0-9_-]{1,64}$/;

function parseSeq(name: string, value: string): number {
  const n = SEQ_RE.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new ApiError("bad_request", `${name} must be a non-negative integer`);
  return n;
}

function parseEpoch(value: string | null): string | null {
  if (value === null || value === "") return null;
  // What a client that interpolates an unknown epoch into a URL sends: a silent mismatch would
  // answer a reset and lose the messages it came back for, so say what is wrong instead.
  if (value === "null" || value === "undefined") {
    throw new ApiError("bad_request", `epoch=${value} is not an epoch: take the epoch from welcome or reset, and leave it out while unknown`);
  }
  if (!EPOCH_RE.test(value)) throw new ApiError("bad_request", "epoch is not a valid epoch");
  return value;
}

/** `?since=&epoch=` and `?rewind=`; `rewind` is ignored on a resume. */
export function parseStart(params: URLSearchParams): Start {
  const since = params.get("since");
  const epoch = params.get("epoch");
  const rewindRaw = params.get("rewind");
  let rewind = 0;
  if (rewindRaw !== null && rewindRaw !== "") {
    rewind = parseSeq("rewind", rewindRaw);
    if (rewind > LIMITS.rewind) throw new ApiError("bad_request", `rewind must be 0-${LIMITS.rewind}`);
  }
  if (since === null || since === "") {
    if (epoch) throw new ApiError("bad_request", "epoch needs since");
    return { cursor: null, rewind };
  }
  return { cursor: { since: parseSeq("since", since), epoch: parseEpoch(epoch) }, rewind: 0 };
}

/** `Last-Event-ID: EPOCH:SEQ`, what EventSource sends on reconnect; it wins over the URL. */
export function parseSseStart(params: URLSearchParams, lastEventId: string | null): Start {
  if (lastEventId === null || lastEventId.trim() === "") return parseStart(params);
  const m = /^([^:]*):(.+)$/.exec(lastEventId.trim());
  if (!m) throw new ApiError("bad_request", "Last-Event-ID must be EPOCH:SEQ");
  return { cursor: { since: parseSeq("Last-Event-ID seq", m[2]!), epoch: parseEpoch(m[1]!) }, rewind: 0 };
}

/** History: `?since=&epoch=` oldest first, `?before=` newest first, or the last `limit`. */
export interface HistoryQuery {
  cursor: Cursor | null;
  before: number | null;
  limit: number;
}

export const HISTORY_DEFAULT_LIMIT = 100;

export function parseHistory(params: URLSearchParams): HistoryQuery {
  const limitRaw = params.get("limit");
  let limit = HISTORY_DEFAULT_LIMIT;
  if (limitRaw !== null && limitRaw !== "") {
    limit = parseSeq("limit", limitRaw);
    if (limit < 1) throw new ApiError("bad_request", "limit must be at least 1");
    limit = Math.min(limit, LIMITS.historyLimit); // capped, not refused: a client asking for more gets the most
  }
  const beforeRaw = params.get("before");
  const { cursor } = parseStart(params);
  if (beforeRaw !== null && beforeRaw !== "") {
    if (cursor !== null) throw new ApiError("bad_request", "use since or before, not both");
    return { cursor: null, before: parseSeq("before", beforeRaw), limit };
  }
  return { cursor, before: null, limit };
}
