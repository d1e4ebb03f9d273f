import type { ErrorCode } from "../protocol/errors.js";

/** Codes of errors the SDK raises itself, next to the server's. */
export type ClientErrorCode = ErrorCode | "network" | "timeout" | "closed";

/** Every error the SDK reports: the server's `code` (or a client-side one) and its message. */
export class HibercastError extends Error {
  override readonly name = "HibercastError";
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    /** The HTTP status or WebSocket close code that carried it, when there was one. */
    readonly status?: number,
  ) {
    super(message);
  }
}
