import type { ErrorBody } from "./client/frames";

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

/** Thrown anywhere in request handling; the router turns it into the JSON error answer. */
export class ApiError extends Error {
  constructor(
    readonly code: HttpErrorCode,
    message: string,
  ) {
    super(message);
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export function errorResponse(code: HttpErrorCode, message: string, headers?: HeadersInit): Response {
  const body: ErrorBody = { error: { code, message } };
  return Response.json(body, { status: ERROR_STATUS[code], headers });
}

/**
 * Our own errors as they are; errors the runtime marks as overload or as safe to retry (a busy
 * or restarting room) as 503 `unavailable`; anything else is unknown (null: a 500).
 */
export function asApiError(err: unknown): ApiError | null {
  if (err instanceof ApiError) return err;
  const flags = err as { overloaded?: boolean; retryable?: boolean } | null;
  if (flags?.overloaded || flags?.retryable) return new ApiError("unavailable", "the channel is busy; retry with the same id");
  return null;
}
