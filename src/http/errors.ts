// Errors as answers: a JSON error response, or for a refused WebSocket upgrade an accepted
// socket that says why (browsers cannot read the status of a failed handshake).
import type { IRequest } from "itty-router";
import type { Env } from "../env.js";
import { refuseSocket } from "../connections/refuse.js";
import { log } from "../server/log.js";
import { originAllowed } from "./cors.js";
import { count } from "../server/metrics.js";
import { asServiceError, ServiceError } from "../server/service-error.js";
import { urlOf } from "../server/request-url.js";

export const isUpgrade = (request: Request) => request.headers.get("upgrade")?.toLowerCase() === "websocket";

/** A socket route's gate: a WebSocket upgrade (426 otherwise) from an allowed origin (403). */
export function requireSocket(request: Request, env: Env): void {
  if (!isUpgrade(request)) throw new ServiceError("upgrade_required", "this route needs a WebSocket upgrade (Upgrade: websocket)");
  if (!originAllowed(env, request.headers.get("origin"))) throw new ServiceError("forbidden", "origin is not in ALLOWED_ORIGINS");
}

/**
 * A refused upgrade is still accepted, by the Worker and never by the room, so the browser can
 * read why: one `err` frame, then close with 4000 + the HTTP status.
 */
export function refuseWithError(err: ServiceError): Response {
  return refuseSocket(JSON.stringify(err.toFrame(err.refusalClose)), err.refusalClose, err.message);
}

/** The router's catch: every thrown error becomes its answer, and one log line. */
export function toErrorResponse(thrown: unknown, request: IRequest, env: Env): Response {
  const known = asServiceError(thrown);
  const path = urlOf(request).pathname;
  const channel = request.params?.channel?.slice(0, 128);
  if (known) log("refused", { method: request.method, path, channel, status: known.status, code: known.code, message: known.message });
  else log("error", { method: request.method, path, channel, error: String(thrown) });
  if (channel) count(env, channel, "refused");
  const err = known ?? new ServiceError("internal", "internal error");
  if (isUpgrade(request) && request.method === "GET") return refuseWithError(err);
  return err.toResponse();
}
