// Close codes and what a client does after each (DESIGN.md "Close codes"). The room, the
// Worker's refusals and the client's reconnect policy all read this one table.
import type { ErrorCode } from "./errors.js";

/** What a client does after a close: give up, fetch a fresh token once, or back off and resume. */
export type Retry = "stop" | "fresh-token" | "backoff";

export interface CloseCode {
  code: number;
  error: ErrorCode;
  retry: Retry;
}

export const CLOSE = {
  /** A refused upgrade: bad channel name or cursor. */
  badRequest: { code: 4400, error: "bad_request", retry: "stop" },
  /** Token missing, invalid or expired. */
  unauthorized: { code: 4401, error: "unauthorized", retry: "fresh-token" },
  /** Not granted, or an origin not allowed. */
  forbidden: { code: 4403, error: "forbidden", retry: "stop" },
  /** A presence socket that stopped pinging. */
  noPing: { code: 4408, error: "unavailable", retry: "backoff" },
  /** Publishing far over the rate limit. */
  rateLimited: { code: 4429, error: "rate_limited", retry: "backoff" },
  /** The room is full or busy, or an SSE stream fell too far behind. */
  unavailable: { code: 4503, error: "unavailable", retry: "backoff" },
  /** A frame over MAX_MESSAGE_BYTES. */
  tooLarge: { code: 1009, error: "too_large", retry: "stop" },
} as const satisfies Record<string, CloseCode>;

const byCode = new Map<number, CloseCode>(Object.values(CLOSE).map((c) => [c.code, c]));

/** The rule for any close code: the table's, else (1001, 1006, anything unknown) back off. */
export function retryAfter(code: number): Retry {
  return byCode.get(code)?.retry ?? "backoff";
}

/** The error a close code stands for, when the table knows it. */
export function errorOfClose(code: number): ErrorCode | null {
  return byCode.get(code)?.error ?? null;
}
