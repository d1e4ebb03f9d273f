// Worker entry: every request goes to its route (src/http/routes.ts); rooms are RoomObjects.
import type { Env } from "./env.js";
import { head, router } from "./http/routes.js";

export { DirectoryObject } from "./directory-object.js";
export { EdgeObject } from "./edge-object.js";
export { RoomObject } from "./room-object.js";
export type { Env } from "./env.js";

export default {
  fetch: (request, env, ctx) => (request.method === "HEAD" ? head(request, env, ctx) : router.fetch(request, env, ctx)),
} satisfies ExportedHandler<Env>;
