// The one error model: an error knows its code, and from it its HTTP status, its `err` frame and
// the close code of a connection it ends. Thrown anywhere on the server; the HTTP layer, the
// room and the refusal of an upgrade all turn it into the right shape without translating.
import type { ErrFrame } from "./frames.js";

/** Error codes of the public contract and the HTTP status each one has. */
export const ERROR_STATUS = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  too_large: 413,
  unsupported_media_type: 415,
  upgrade_required: 426,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
} as const;

export type HttpErrorCode = keyof typeof ERROR_STATUS;
/** Every code an `err` frame may carry: the HTTP ones, and `bad_frame` for a socket frame. */
export type ErrorCode = HttpErrorCode | "bad_frame";

/** The JSON error body of every HTTP error. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

export class ServiceError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The `pub` (or other request) this answers, when it came in a frame with an id. */
    readonly id?: string,
  ) {
    super(message);
  }

  /** The HTTP status; `bad_frame` only happens on sockets and reads as a 400. */
  get status(): number {
    return this.code === "bad_frame" ? 400 : ERROR_STATUS[this.code];
  }

  toResponse(headers?: HeadersInit): Response {
    const body: ErrorBody = { error: { code: this.code, message: this.message } };
    return Response.json(body, { status: this.status, headers });
  }

  /** The `err` frame; with `close`, the frame that announces the connection is being closed. */
  toFrame(close?: number): ErrFrame {
    const frame: ErrFrame = { t: "err", code: this.code, message: this.message };
    if (this.id !== undefined) frame.id = this.id;
    if (close !== undefined) frame.close = close;
    return frame;
  }

  /** The close code of a refused upgrade: 4000 + the HTTP status it would have had. */
  get refusalClose(): number {
    return 4000 + this.status;
  }

  /** This error as a refusal of a frame's input (`bad_frame`), keeping its message and id. */
  asBadFrame(id = this.id): ServiceError {
    return new ServiceError("bad_frame", this.message, id);
  }
}

/**
 * Our own errors as they are; errors the runtime marks as overload or as safe to retry (a busy
 * or restarting room) as 503 `unavailable`; anything else is unknown (null: a 500).
 */
export function asServiceError(err: unknown): ServiceError | null {
  if (err instanceof ServiceError) return err;
  const flags = err as { overloaded?: boolean; retryable?: boolean } | null;
  if (flags?.overloaded || flags?.retryable) return new ServiceError("unavailable", "the channel is busy; retry with the same id");
  return null;
}
