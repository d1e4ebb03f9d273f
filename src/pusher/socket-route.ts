// `GET /app/:key`: a Pusher protocol 7 connection, held by an edge of the Pusher pool. A wrong
// key or protocol is refused as Pusher refuses it: the socket opens, says why in `pusher:error`
// and closes with Pusher's code (4001, 4007), which pusher-js reads as "do not reconnect".
import type { IRequest } from "itty-router";
import type { Env } from "../env.js";
import { connectionEdge } from "../http/connection-edges.js";
import { requireSocket } from "../http/errors.js";
import { connectRequest } from "../connections/connect.js";
import { refuseSocket } from "../connections/refuse.js";
import { requirePusherApp } from "./app.js";
import { PUSHER_CLOSE, pusherError } from "./frames.js";
import { queryOf } from "../server/request-url.js";

/** Protocol versions whose frames this endpoint speaks (pusher-js 8 sends 7). */
const PROTOCOLS = new Set(["5", "6", "7"]);

const refuse = (code: number, message: string) => refuseSocket(pusherError(code, message), code, message);

export async function pusherSocket(request: IRequest, env: Env): Promise<Response> {
  const app = requirePusherApp(env);
  requireSocket(request, env);
  const key = request.params.key ?? "";
  if (key !== app.key) return refuse(PUSHER_CLOSE.appNotFound, `App key ${key.slice(0, 64)} not in this cluster`);
  const protocol = queryOf(request).get("protocol") ?? "";
  if (!PROTOCOLS.has(protocol)) return refuse(PUSHER_CLOSE.unsupportedProtocol, `Unsupported protocol version ${protocol.slice(0, 8)}; this server speaks 5 to 7`);
  const stub = connectionEdge(request, env, "pusher");
  const identity = { sub: null, canPublish: false, exp: null, info: null };
  return stub.fetch(connectRequest({ channel: "", identity, start: { cursor: null, rewind: 0 }, transport: "ws", batch: false, mux: { claims: null, pusher: true } }));
}
