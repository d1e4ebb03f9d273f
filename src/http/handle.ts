// The one request handler, of the standalone Worker and of a mount alike: Durable Streams to
// src/streams/, HEAD and everything else to the routes.
import type { Env } from "../env.js";
import { head, hotRoute, router } from "./routes.js";
import { STREAM_PREFIX, streams } from "../streams/http.js";
import type { Reach } from "./reach.js";
import { urlOf } from "../server/request-url.js";

/** Answers a request whose path is hibercast's own (a mount has taken its prefix off). */
export function handle(request: Request, env: Env, ctx: ExecutionContext, reach: Reach): Promise<Response> {
  // Durable Streams speak their own protocol, every method and header of it (src/streams/).
  const url = urlOf(request);
  if (url.pathname.startsWith(STREAM_PREFIX)) return streams(request, env, reach);
  if (request.method === "HEAD") return head(request, env, ctx, reach);
  return hotRoute(request, url, env, ctx, reach) ?? router.fetch(request, env, ctx, reach);
}
