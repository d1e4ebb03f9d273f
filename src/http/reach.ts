// How a request reached the routes: to the standalone Worker (src/worker.ts), or under the path
// prefix of a host Worker that mounts hibercast (hibercast/server, src/mount.ts), which may also
// vouch for the request from its own session. Routes take credentials and prefixes from here.
import { bearer, type Credential } from "../server/auth.js";

export interface Reach {
  /** The path prefix the request came under ("" standalone): routes see paths without it; paths they hand out get it back. */
  readonly prefix: string;
  /** The request's credential: its bearer credential (`?token=` too where `allowQuery`), else the host's session grant, if any. */
  credential(request: Request, allowQuery: boolean): Promise<Credential>;
}

export const STANDALONE: Reach = { prefix: "", credential: async (request, allowQuery) => bearer(request, allowQuery) };
