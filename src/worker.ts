// Worker entry: every request goes to its route (src/http/handle.ts, Durable Streams to
// src/streams/); rooms are RoomObjects. A Worker of the app's own mounts hibercast with
// hibercast/server (src/mount.ts) instead.
import type { Env } from "./env.js";
import { handle } from "./http/handle.js";
import { STANDALONE } from "./http/reach.js";

export { DirectoryObject } from "./directory-object.js";
export { EdgeObject } from "./edge-object.js";
export { RoomObject } from "./room-object.js";
export type { Env } from "./env.js";

export default {
  fetch: (request, env, ctx) => handle(request, env, ctx, STANDALONE),
} satisfies ExportedHandler<Env>;
