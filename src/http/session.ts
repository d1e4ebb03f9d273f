// Session grants (hibercast/server, src/mount.ts): the host app's `authorize` hook vouches for a
// request from its own session (a cookie, a header of its own) with the grant a token would
// carry. The answer is checked as a token's claims are (server/auth.ts), and from then on it is
// a credential like any other: every route applies it as it applies a verified token.
import type { Env } from "../env.js";
import { bearer, sessionGrant, type SessionGrant } from "../server/auth.js";
import { errorText, log } from "../server/log.js";
import { ServiceError } from "../server/service-error.js";
import { allowedOrigins } from "./cors.js";
import type { Reach } from "./reach.js";
import { urlOf } from "../server/request-url.js";

/**
 * What the hook grants: a token's claims. `ch`: channels it may subscribe to (and read the
 * history, presence and stats of); `pub`: channels it may publish to; an entry ending in `*` is
 * a prefix. `sub` is the user (needed on presence channels), `info` their presence info (JSON,
 * 1 KiB at most), `exp` when the grant ends, in seconds since epoch (required: sockets it opened
 * are closed with 4401 then, as a token's are).
 */
export interface Grant {
  sub?: string;
  ch?: string[];
  pub?: string[];
  info?: unknown;
  exp: number;
}

/**
 * The host's hook: the grant of the session a request carries, or null (no session: the request
 * is taken as it would be by the standalone Worker). It gets the request's URL, method and
 * headers; its body is the route's.
 */
export type Authorize<E> = (request: Request, env: E) => Grant | null | Promise<Grant | null>;

/**
 * Whether a session may vouch for a request: one from this origin, or from an origin that
 * ALLOWED_ORIGINS names (not `*`). Browsers send cookies with cross-site sockets and simple
 * POSTs, which CORS does not stop: without this, any page a user opens could subscribe and
 * publish as them. No Origin: unless Sec-Fetch-Site names another site (same-site included).
 */
function mayVouch(request: Request, env: Env): boolean {
  const origin = request.headers.get("origin");
  if (origin === null) {
    // No Origin: a browser's no-cors GET (an iframe, an img, a navigation), or a client that is
    // not a browser (no ambient cookies to ride). A browser says where the request came from in
    // Sec-Fetch-Site: only its own pages (or a typed address) count, not a sibling subdomain.
    const site = request.headers.get("sec-fetch-site");
    return site === null || site === "same-origin" || site === "none";
  }
  if (origin === urlOf(request).origin) return true;
  const listed = allowedOrigins(env);
  return listed !== "*" && listed.includes(origin);
}

async function askHook<E>(authorize: Authorize<E>, request: Request, env: E): Promise<SessionGrant | null> {
  if (!mayVouch(request, env as Env)) return null;
  // URL, method and headers only: the hook has no use for the body, which a publish still needs.
  const seen = new Request(request.url, { method: request.method, headers: request.headers });
  let answer: unknown;
  try {
    answer = await authorize(seen, env);
  } catch (err) {
    // The hook's own error, never the request: a session or cookie does not reach the logs.
    log("error", { where: "authorize hook", error: errorText(err) });
    throw new ServiceError("internal", "the app's authorize hook failed (its error is in the Worker's logs)");
  }
  return answer === null ? null : sessionGrant(answer);
}

/**
 * How a request reached hibercast under a host's prefix. Precedence: a bearer credential the
 * request presents (`Authorization: Bearer`, or `?token=` where a route takes one) is used as
 * by the standalone Worker, and the hook is not asked; without one, the hook is asked, at most
 * once per request and only by routes that take a credential. A session never adds to a bearer.
 */
export function mountedReach<E>(prefix: string, authorize: Authorize<E> | undefined, request: Request, env: E): Reach {
  let session: Promise<SessionGrant | null> | undefined;
  return {
    prefix,
    async credential(routed, allowQuery) {
      const presented = bearer(routed, allowQuery);
      if (presented !== null || authorize === undefined) return presented;
      return (session ??= askHook(authorize, request, env));
    },
  };
}
