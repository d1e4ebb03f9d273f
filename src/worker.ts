// Worker entry: every request goes to its route (src/http/routes.ts, Durable Streams to
// src/streams/); rooms are RoomObjects.
import type { Env } from "./env.js";
import { head, router } from "./http/routes.js";
import { STREAM_PREFIX, streams } from "./streams/http.js";

export { DirectoryObject } from "./directory-object.js";
export { EdgeObject } from "./edge-object.js";
export { RoomObject } from "./room-object.js";
export type { Env } from "./env.js";

export default {
  fetch: (request, env, ctx) => {
    // Durable Streams speak their own protocol, every method and header of it (src/streams/).
    if (new URL(request.url).pathname.startsWith(STREAM_PREFIX)) return streams(request, env);
    return request.method === "HEAD" ? head(request, env, ctx) : router.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
