// The one error model of the server: an error knows its code, and from it its HTTP status, its
// `err` frame and the close code of a connection it ends. Thrown anywhere on the server; each
// surface renders it with one function (src/server/render.ts) without translating codes.
import { ERROR_STATUS, type ErrorBody, type ErrorCode } from "../protocol/errors.js";
import type { ErrFrame, PublishResult } from "../protocol/frames.js";
import type { PublishAnswer } from "../rpc.js";

export class ServiceError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The `pub` (or other request) this answers, when it came in a frame with an id. */
    readonly id?: string,
    /** What caused it (kept for the log, never sent). */
    options?: { cause?: unknown },
  ) {
    super(message, options);
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
  if (flags?.overloaded || flags?.retryable) return new ServiceError("unavailable", "the channel is busy; retry with the same id", undefined, { cause: err });
  return null;
}

/** A hub's answer to a publish: its result, or its refusal thrown as the error it is. */
export function accepted(answer: PublishAnswer): PublishResult {
  if ("refused" in answer) throw new ServiceError(answer.refused.code, answer.refused.message);
  return answer;
}
