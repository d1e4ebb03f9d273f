// Query parameters and headers of the subscribe and history routes, parsed into what the room
// takes: a Start (resume, rewind or live) or a HistoryQuery. Anything malformed is a 400.
import { LIMITS } from "../protocol/index.js";
import { ServiceError } from "../server/service-error.js";
import type { Start } from "../connections/connect.js";
import type { HistoryQuery } from "../hub/history.js";

const SEQ_RE = /^(0|[1-9][0-9]{0,15})$/;
const EPOCH_RE = /^[A-Za-z0-9_-]{1,64}$/;

function parseSeq(name: string, value: string): number {
  const n = SEQ_RE.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new ServiceError("bad_request", `${name} must be a non-negative integer`);
  return n;
}

function parseEpoch(value: string | null): string | null {
  if (value === null || value === "") return null;
  // What a client that interpolates an unknown epoch into a URL sends: a silent mismatch would
  // answer a reset and lose the messages it came back for, so say what is wrong instead.
  if (value === "null" || value === "undefined") {
    throw new ServiceError("bad_request", `epoch=${value} is not an epoch: take the epoch from welcome or reset, and leave it out while unknown`);
  }
  if (!EPOCH_RE.test(value)) throw new ServiceError("bad_request", "epoch is not a valid epoch");
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
    if (rewind > LIMITS.rewind) throw new ServiceError("bad_request", `rewind must be 0-${LIMITS.rewind}`);
  }
  if (since === null || since === "") {
    if (epoch) throw new ServiceError("bad_request", "epoch needs since");
    return { cursor: null, rewind };
  }
  return { cursor: { seq: parseSeq("since", since), epoch: parseEpoch(epoch) }, rewind: 0 };
}

/** `?batch=1`: the socket takes `batch` frames under bursts (absent or 0: frames one by one). */
export function parseBatchOption(params: URLSearchParams): boolean {
  const value = params.get("batch");
  if (value === null || value === "" || value === "0" || value === "false") return false;
  if (value === "1" || value === "true") return true;
  throw new ServiceError("bad_request", "batch must be 1 or 0");
}

/** `Last-Event-ID: EPOCH:SEQ`, what EventSource sends on reconnect; it wins over the URL. */
export function parseSseStart(params: URLSearchParams, lastEventId: string | null): Start {
  if (lastEventId === null || lastEventId.trim() === "") return parseStart(params);
  const m = /^([^:]*):(.+)$/.exec(lastEventId.trim());
  if (!m) throw new ServiceError("bad_request", "Last-Event-ID must be EPOCH:SEQ");
  return { cursor: { seq: parseSeq("Last-Event-ID seq", m[2]!), epoch: parseEpoch(m[1]!) }, rewind: 0 };
}

export const HISTORY_DEFAULT_LIMIT = 100;

export function parseHistory(params: URLSearchParams): HistoryQuery {
  const limitRaw = params.get("limit");
  let limit = HISTORY_DEFAULT_LIMIT;
  if (limitRaw !== null && limitRaw !== "") {
    limit = parseSeq("limit", limitRaw);
    if (limit < 1) throw new ServiceError("bad_request", "limit must be at least 1");
    limit = Math.min(limit, LIMITS.historyLimit); // capped, not refused: a client asking for more gets the most
  }
  const beforeRaw = params.get("before");
  const { cursor } = parseStart(params);
  if (beforeRaw !== null && beforeRaw !== "") {
    if (cursor !== null) throw new ServiceError("bad_request", "use since or before, not both");
    return { cursor: null, before: parseSeq("before", beforeRaw), limit };
  }
  return { cursor, before: null, limit };
}
