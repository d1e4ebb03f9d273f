import { secretList } from "../settings/per-env.js";
import type { Env } from "../env.js";

/** `ALLOWED_ORIGINS`: "*" (default) or a list of exact origins. */
export function allowedOrigins(env: Env): "*" | string[] {
  const list = secretList(env.ALLOWED_ORIGINS ?? "*");
  return list.length === 0 || list.includes("*") ? "*" : list;
}

/** Whether a browser page from `origin` may use this service (no Origin: not a browser). */
export function originAllowed(env: Env, origin: string | null): boolean {
  const allowed = allowedOrigins(env);
  return origin === null || allowed === "*" || allowed.includes(origin);
}

function allowOriginHeader(env: Env, origin: string | null): string | null {
  const allowed = allowedOrigins(env);
  if (allowed === "*") return "*";
  return origin !== null && allowed.includes(origin) ? origin : null;
}

/** Answers a CORS preflight. */
export function preflight(request: Request, env: Env): Response {
  const headers = new Headers({
    "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
    "access-control-allow-headers": "authorization, content-type, last-event-id",
    "access-control-max-age": "86400",
    vary: "Origin",
  });
  const origin = allowOriginHeader(env, request.headers.get("origin"));
  if (origin !== null) headers.set("access-control-allow-origin", origin);
  return new Response(null, { status: 204, headers });
}

/**
 * Adds CORS headers to an answer. Upgrades (101) pass untouched: re-wrapping them would drop
 * the WebSocket, and browsers do not apply CORS to sockets anyway (the Origin check does).
 */
export function withCors(response: Response, request: Request, env: Env): Response {
  if (response.status === 101 || response.webSocket) return response;
  const origin = allowOriginHeader(env, request.headers.get("origin"));
  if (origin === null) return response;
  const out = new Response(response.body, response);
  out.headers.set("access-control-allow-origin", origin);
  if (origin !== "*") out.headers.append("vary", "Origin");
  return out;
}
