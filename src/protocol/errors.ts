// Error codes of the public contract: what an HTTP error body and an `err` frame carry, and the
// HTTP status of each. The server's error (ServiceError) lives in src/server/service-error.ts.

/** Error codes of the public contract and the HTTP status each one has. */
export const ERROR_STATUS = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  /** v1.3: the channel's state forbids it (a closed stream). */
  conflict: 409,
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
