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
