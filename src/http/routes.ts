// The Worker's routes: each parses and authorizes its request, then makes one call to the
// channel's room. Auth happens here, so a refused request never wakes a room.
import { Router, type IRequest } from "itty-router";
import { authenticatePublisher, authorizePublish, authorizeRead, authorizeSubscribe, bearer, claimsOf, requirePublishKey } from "../server/auth.js";
import { checkConfig, configFor } from "../settings/config.js";
import type { Env } from "../env.js";
import { CONSOLE_CSP, CONSOLE_HTML } from "../console/bundle.generated.js";
import { errorText, log } from "../server/log.js";
import { CHANNEL_RULE, isPresenceChannel, isValidChannel, LIMITS, type HttpErrorCode } from "../protocol/index.js";
import { isObject, toInput, type PublishInput } from "../server/input.js";
import { accepted, ServiceError } from "../server/service-error.js";
import { connectRequest } from "../connections/connect.js";
import { directoryStub, edgeName, edgeStub, hubStub } from "../rpc.js";
import { byChannel, parseBatch, type BatchResult } from "./batch.js";
import { mediaType, readJson, readText } from "./body.js";
import { preflight, withCors } from "./cors.js";
import { connectionEdge } from "./connection-edges.js";
import { requireSocket, toErrorResponse } from "./errors.js";
import { pusherApp } from "../pusher/app.js";
import { pusherApi } from "../pusher/http-api.js";
import { pusherSocket } from "../pusher/socket-route.js";
import { parseBatchOption, parseHistory, parseSseStart, parseStart } from "./params.js";
import { relayAsSse, SSE_HEADERS } from "./sse-relay.js";
import type { Reach } from "./reach.js";
import { queryOf } from "../server/request-url.js";
import { utf8Length } from "../server/utf8.js";

type Args = [Env, ExecutionContext, Reach];

/** The channel of a `/v1/channels/:channel/...` route, decoded and validated (400 otherwise). */
function channelOf(request: IRequest): string {
  let name: string;
  try {
    name = decodeURIComponent(request.params.channel ?? "");
  } catch {
    throw new ServiceError("bad_request", "channel name is not valid percent-encoding");
  }
  if (!isValidChannel(name)) throw new ServiceError("bad_request", `channel name must be ${CHANNEL_RULE}`);
  return name;
}

/**
 * Where a channel's new socket or SSE stream goes: its room, or for a sharded channel one of its
 * edges at random (publish, history, purge, stats and presence always go to the room, the hub).
 */
function subscriber(env: Env, channel: string): { fetch(request: Request): Promise<Response> } {
  const shards = configFor(env, channel).shards;
  if (shards <= 1) return hubStub(env, channel);
  return edgeStub(env, edgeName(channel, Math.floor(Math.random() * shards)));
}


// ---- routes ------------------------------------------------------------------------------

async function subscribeWs(request: IRequest, env: Env, _ctx: ExecutionContext, reach: Reach): Promise<Response> {
  const channel = channelOf(request);
  requireSocket(request, env);
  const params = queryOf(request);
  const start = parseStart(params);
  const batch = parseBatchOption(params);
  const identity = await authorizeSubscribe(env, channel, await reach.credential(request, true));
  return subscriber(env, channel).fetch(connectRequest({ channel, identity, start, transport: "ws", batch }));
}

async function subscribeSse(request: IRequest, env: Env, _ctx: ExecutionContext, reach: Reach): Promise<Response> {
  const channel = channelOf(request);
  const start = parseSseStart(queryOf(request), request.headers.get("last-event-id"));
  const identity = await authorizeSubscribe(env, channel, await reach.credential(request, true));
  // HEAD answers what GET would, without opening a stream the room would have to hold.
  if (headOnly.has(request)) return new Response(null, { headers: SSE_HEADERS });
  const upstream = await subscriber(env, channel).fetch(connectRequest({ channel, identity, start, transport: "sse", batch: false }));
  if (!upstream.webSocket) throw new ServiceError("unavailable", "room did not accept the stream");
  return relayAsSse(upstream.webSocket, {
    maxBacklog: configFor(env, channel).sseMaxBacklogBytes,
    gone: request.signal,
    onSlow: (backlog) => log("slow", { channel, transport: "sse", backlog }),
  });
}

/** `GET /v1/ws`: a multiplexed connection, held by one edge of the pool of CONNECTION_EDGES. */
async function connectMux(request: IRequest, env: Env, _ctx: ExecutionContext, reach: Reach): Promise<Response> {
  requireSocket(request, env);
  const credential = await reach.credential(request, true);
  const claims = credential === null ? null : await claimsOf(env, credential);
  if (claims !== null && utf8Length(JSON.stringify(claims)) > LIMITS.connectionClaimsBytes) {
    throw new ServiceError("too_large", `the connection token's claims are over ${LIMITS.connectionClaimsBytes} bytes: grant fewer channels in it, or send a token with each sub`);
  }
  const stub = connectionEdge(request, env, "conn");
  const identity = { sub: claims?.sub ?? null, canPublish: false, exp: null, info: null };
  return stub.fetch(connectRequest({ channel: "", identity, start: { cursor: null, rewind: 0 }, transport: "ws", batch: true, mux: { claims } }));
}

/** JSON `{event, data, id?}`, or a text body published as event `message`. */
async function publishInput(request: Request, max: number): Promise<PublishInput> {
  const type = mediaType(request);
  if (type !== "json" && type !== "text") {
    throw new ServiceError("unsupported_media_type", `content type ${type} is not supported; use application/json or text/plain`);
  }
  if (type === "text") {
    // Stored as a JSON string: quotes and escapes (a control character is six bytes, \u00XX) count.
    const data = JSON.stringify(await readText(request, max));
    if (new TextEncoder().encode(data).byteLength > max) throw new ServiceError("too_large", `body as a JSON string (quoted and escaped, as stored) is over MAX_MESSAGE_BYTES (${max} bytes)`);
    return { event: "message", data, id: crypto.randomUUID() };
  }
  const body = await readJson(request, max);
  if (!isObject(body)) throw new ServiceError("bad_request", 'body must be a JSON object {"event", "data", "id"?} (or an append: {"append", "data", "id"?, "done"?})');
  return toInput(body, "data", "event");
}

async function publish(request: IRequest, env: Env, _ctx: ExecutionContext, reach: Reach): Promise<Response> {
  const channel = channelOf(request);
  const publisher = await authorizePublish(env, channel, await reach.credential(request, false));
  const input = await publishInput(request, configFor(env, channel).maxMessageBytes);
  const exclude = queryOf(request).get("exclude");
  // A cid, or a Pusher socket_id ("digits.digits"): both name a connection.
  if (exclude !== null && !/^[A-Za-z0-9.]{1,64}$/.test(exclude)) throw new ServiceError("bad_request", "exclude must be a connection id (cid or Pusher socket_id)");
  const result = accepted(await hubStub(env, channel).publish(input, { sender: publisher.sub, exclude, by: "origin", scope: publisher.scope }));
  return Response.json(result);
}

/** Batch: one room call per channel (order kept within it), channels in parallel. */
async function publishBatch(request: IRequest, env: Env, _ctx: ExecutionContext, reach: Reach): Promise<Response> {
  const publisher = await authenticatePublisher(env, await reach.credential(request, false));
  if (mediaType(request) !== "json") throw new ServiceError("unsupported_media_type", "batch publish takes application/json");
  const maxBytes = configFor(env, "").maxMessageBytes;
  const items = parseBatch(await readJson(request, maxBytes * LIMITS.batch), maxBytes);
  const results: BatchResult[] = new Array(items.length);
  await Promise.all(
    [...byChannel(items)].map(async ([channel, indexes]) => {
      const fail = (code: HttpErrorCode, message: string) => {
        for (const i of indexes) results[i] = { channel, id: items[i]!.input.id, error: { code, message } };
      };
      if (!publisher.may(channel)) return fail("forbidden", `token does not grant publishing to ${channel}`);
      try {
        const answers = await hubStub(env, channel).publishMany(indexes.map((i) => items[i]!.input), { sender: publisher.sub, exclude: null, by: "origin", scope: publisher.scope });
        answers.forEach((answer, k) => {
          const i = indexes[k]!;
          results[i] = "refused" in answer ? { channel, id: items[i]!.input.id, error: answer.refused } : { channel, ...answer };
        });
      } catch (err) {
        log("error", { where: "batch publish", channel, error: errorText(err) });
        fail("unavailable", "the channel did not answer; retry with the same ids");
      }
    }),
  );
  return Response.json({ results });
}

async function history(request: IRequest, env: Env, _ctx: ExecutionContext, reach: Reach): Promise<Response> {
  const channel = channelOf(request);
  const query = parseHistory(queryOf(request));
  await authorizeRead(env, channel, await reach.credential(request, true));
  const body = await hubStub(env, channel).history(query);
  return new Response(body, { headers: { "content-type": "application/json" } });
}

async function purge(request: IRequest, env: Env): Promise<Response> {
  const channel = channelOf(request);
  await requirePublishKey(env, bearer(request, false));
  return Response.json(await hubStub(env, channel).purge());
}

async function presence(request: IRequest, env: Env, _ctx: ExecutionContext, reach: Reach): Promise<Response> {
  const channel = channelOf(request);
  if (!isPresenceChannel(channel)) throw new ServiceError("bad_request", "presence is kept on presence- channels only");
  await authorizeRead(env, channel, await reach.credential(request, true));
  return Response.json(await hubStub(env, channel).members());
}

async function stats(request: IRequest, env: Env, _ctx: ExecutionContext, reach: Reach): Promise<Response> {
  const channel = channelOf(request);
  await authorizeRead(env, channel, await reach.credential(request, true));
  return Response.json(await hubStub(env, channel).stats());
}

/**
 * `GET /v1/channels?prefix=P`: the occupied channels (up to 1000, in name order), from the
 * directory the hubs keep while the Pusher endpoint is on. Names of every channel, private ones
 * too: the publish key only, as Pusher's list needs the app's secret.
 */
async function occupiedChannels(request: IRequest, env: Env): Promise<Response> {
  await requirePublishKey(env, bearer(request, false));
  if (pusherApp(env) === null) throw new ServiceError("not_found", "occupied channels are kept only with the Pusher endpoint on (PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET)");
  const prefix = queryOf(request).get("prefix") ?? "";
  if (prefix !== "" && !isValidChannel(prefix)) throw new ServiceError("bad_request", `prefix must be empty or ${CHANNEL_RULE}`);
  return Response.json({ channels: await directoryStub(env).list(prefix) });
}

/** The live console page, when `CONSOLE=on`; otherwise the route does not exist. */
function consolePage(_request: IRequest, env: Env): Response {
  if ((env.CONSOLE ?? "").trim().toLowerCase() !== "on") throw new ServiceError("not_found", "no such route (the console is off: CONSOLE=on turns it on)");
  return new Response(CONSOLE_HTML, {
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": CONSOLE_CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "cache-control": "no-cache",
    },
  });
}

const allow = (methods: string) => () => {
  throw new ServiceError("method_not_allowed", `use ${methods}`);
};

export const router = Router<IRequest, Args>({
  // A configuration mistake answers every request with a 500 that names it.
  before: [
    // Every setting's reader (CHANNEL_OPTIONS, vars, PUSHER_*, WEBHOOK_*): a mistake, named.
    (_request: IRequest, env: Env) => checkConfig(env),
  ],
  catch: toErrorResponse,
  finally: [(response: Response, request: IRequest, env: Env) => withCors(response, request, env)],
});

router
  .options("*", (request: IRequest, env: Env) => preflight(request, env))
  .get("/", consolePage)
  .get("/console", consolePage)
  .get("/healthz", () => Response.json({ ok: true }))
  .all("/healthz", allow("GET"))
  .post("/v1/publish", publishBatch)
  .all("/v1/publish", allow("POST"))
  .get("/v1/ws", connectMux)
  .all("/v1/ws", allow("GET"))
  .get("/v1/channels", occupiedChannels)
  .all("/v1/channels", allow("GET"))
  .get("/v1/channels/:channel/ws", subscribeWs)
  .all("/v1/channels/:channel/ws", allow("GET"))
  .get("/v1/channels/:channel/sse", subscribeSse)
  .all("/v1/channels/:channel/sse", allow("GET"))
  .post("/v1/channels/:channel/messages", publish)
  .get("/v1/channels/:channel/messages", history)
  .delete("/v1/channels/:channel/messages", purge)
  .all("/v1/channels/:channel/messages", allow("GET, POST, DELETE"))
  .get("/v1/channels/:channel/presence", presence)
  .all("/v1/channels/:channel/presence", allow("GET"))
  .get("/v1/channels/:channel", stats)
  .all("/v1/channels/:channel", allow("GET"))
  // The Pusher-compatible endpoint (src/pusher/), when PUSHER_* are set.
  .get("/app/:key", pusherSocket)
  .all("/app/:key", allow("GET"))
  .post("/apps/:id/events", pusherApi.events)
  .post("/apps/:id/batch_events", pusherApi.batchEvents)
  .get("/apps/:id/channels", pusherApi.channels)
  .get("/apps/:id/channels/:name", pusherApi.channel)
  .get("/apps/:id/channels/:name/users", pusherApi.users)
  .post("/apps/:id/users/:user_id/terminate_connections", pusherApi.terminate)
  .all("/apps/*", allow("the methods of Pusher's HTTP API"))
  .all("*", () => {
    throw new ServiceError("not_found", "no such route");
  });

/**
 * The two routes every socket and every publish take, matched before the router: itty-router
 * tries its routes' patterns in turn and parses the URL and query again, which on the connect
 * path is a measurable share of what a socket costs the Worker. Same checks, errors and CORS as
 * the router's.
 */
const HOT = /^\/v1\/channels\/([^/]+)\/(ws|messages)$/;

export function hotRoute(request: Request, url: URL, env: Env, ctx: ExecutionContext, reach: Reach): Promise<Response> | null {
  const m = HOT.exec(url.pathname);
  if (m === null) return null;
  const route = m[2] === "ws" ? (request.method === "GET" ? subscribeWs : null) : request.method === "POST" ? publish : null;
  if (route === null) return null;
  const routed = Object.assign(request, { route: `/v1/channels/:channel/${m[2]}`, params: { channel: m[1]! }, query: {} }) as IRequest;
  const answer = async () => {
    checkConfig(env);
    return route(routed, env, ctx, reach);
  };
  return answer()
    .catch((err: unknown) => toErrorResponse(err, routed, env))
    .then((response) => withCors(response, routed, env));
}

/** GET requests made from a HEAD: routes that would open something answer headers only. */
const headOnly = new WeakSet<Request>();

/** One rule for HEAD: wherever GET works, HEAD answers the same status and headers, no body. */
export async function head(request: Request, env: Env, ctx: ExecutionContext, reach: Reach): Promise<Response> {
  const get = new Request(request.url, { method: "GET", headers: request.headers });
  headOnly.add(get);
  const res: Response = await router.fetch(get, env, ctx, reach);
  await res.body?.cancel();
  return new Response(null, { status: res.status, statusText: res.statusText, headers: res.headers });
}

