// hibercast/server: hibercast inside a Worker of the app's own, under a path prefix. The host
// exports the three object classes, adds their bindings to its wrangler.toml and hands the
// requests under its prefix to `fetch`; routes, rules and limits are the standalone Worker's,
// answered by the same handler (src/http/handle.ts). Its `authorize` hook may grant channels
// from the app's own session (src/http/session.ts). See docs/guides/mounting.md.
//
// Shipped as TypeScript source, not built: a host Worker is always bundled by wrangler, whose
// esbuild compiles it with the host's own `cloudflare:workers` and tree-shakes what the host does
// not use; a prebuilt copy would carry its own jose and router and hide the sources from stack
// traces. The package ships exactly the modules this entry reaches (test/node/package.test.ts).
import type { Env } from "./env.js";
import { handle } from "./http/handle.js";
import { mountedReach, type Authorize, type Grant } from "./http/session.js";
import { ServiceError } from "./server/service-error.js";

export { DirectoryObject } from "./directory-object.js";
export { EdgeObject } from "./edge-object.js";
export { RoomObject } from "./room-object.js";
export type { Env } from "./env.js";
export type { Authorize, Grant };

export interface HibercastOptions<E> {
  /** Where hibercast's routes live, e.g. `/rt`: a path with a leading `/` and no trailing one. */
  prefix: string;
  /** Grants channels from the app's own session; without it, tokens and the publish key only. */
  authorize?: Authorize<E>;
}

export interface Hibercast<E> {
  readonly prefix: string;
  /** Whether a request is hibercast's: its path is the prefix or under it. */
  handles(request: Request): boolean;
  /** Answers a request under the prefix as the standalone Worker answers it without the prefix. */
  fetch(request: Request, env: E, ctx: ExecutionContext): Promise<Response>;
}

/** Segments of URL-safe characters, none of them `.` or `..`. */
const PREFIX = /^(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9._~-]+)+$/;

function checkPrefix(prefix: unknown): string {
  const why =
    typeof prefix !== "string" ? "must be a string"
    : !prefix.startsWith("/") ? "must start with /"
    : prefix.endsWith("/") ? `must not end with / (use ${JSON.stringify(prefix.replace(/\/+$/, "") || "/rt")})`
    : !PREFIX.test(prefix) ? "must be path segments of A-Z a-z 0-9 . _ ~ - (no empty, . or .. segment, no query)"
    : null;
  if (why !== null) throw new TypeError(`hibercast({ prefix }): prefix ${why}; got ${JSON.stringify(prefix)}`);
  return prefix as string;
}

const BINDINGS = ["ROOMS", "EDGES", "DIRECTORY"] as const;

/**
 * hibercast under `options.prefix` of a host Worker. Bad options throw here, when the host's
 * module loads. `E` is the host's env as its hook reads it (the type of `authorize`'s `env`);
 * the bindings hibercast needs in it are checked when a request comes (a 500 names those missing).
 */
export function hibercast<E = unknown>(options: HibercastOptions<E>): Hibercast<E> {
  if (typeof options !== "object" || options === null) throw new TypeError("hibercast(options): options must be an object { prefix, authorize? }");
  const prefix = checkPrefix(options.prefix);
  const { authorize } = options;
  if (authorize !== undefined && typeof authorize !== "function") throw new TypeError("hibercast({ authorize }): authorize must be a function (request, env) => grant or null");
  const under = (path: string) => path === prefix || path.startsWith(`${prefix}/`);
  return {
    prefix,
    handles: (request) => under(new URL(request.url).pathname),
    async fetch(request, env, ctx) {
      const url = new URL(request.url);
      if (!under(url.pathname)) return new ServiceError("not_found", `not under ${prefix}: this path is the host's`).toResponse();
      const missing = BINDINGS.filter((name) => (env as Record<string, unknown>)[name] === undefined);
      if (missing.length > 0) return new ServiceError("internal", `the host Worker lacks the Durable Object bindings ${missing.join(", ")} (see docs/guides/mounting.md)`).toResponse();
      // The bare prefix is the console's page, whose links are relative to a path ending in /.
      if (url.pathname === prefix) return Response.redirect(`${url.origin}${prefix}/${url.search}`, 308);
      url.pathname = url.pathname.slice(prefix.length);
      return handle(new Request(url, request), env as Env, ctx, mountedReach(prefix, authorize, request, env));
    },
  };
}
