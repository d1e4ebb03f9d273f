// Which edge holds a new connection that names its channels in its frames: a multiplexed one
// (`GET /v1/ws`, pool "conn") or a Pusher one (`GET /app/:key`, pool "pusher"; its edges answer
// Pusher's ping). In production the pool is per region (named by the request's continent,
// created with a matching location hint); where the request has no region (local dev), one pool.
import type { IRequest } from "itty-router";
import type { Env } from "../env.js";
import { edgeStub, poolEdgeName } from "../rpc.js";
import { configFor } from "../settings/config.js";

/** Continents as the runtime names them, and the location hint of a matching region. */
const REGION_HINTS: Record<string, DurableObjectLocationHint> = { NA: "enam", SA: "sam", EU: "weur", AF: "afr", AS: "apac", OC: "oc" };

export function connectionEdge(request: IRequest, env: Env, pool: "conn" | "pusher") {
  const continent = (request as unknown as { cf?: { continent?: string } }).cf?.continent;
  const hint = continent === undefined ? undefined : REGION_HINTS[continent];
  const k = Math.floor(Math.random() * configFor(env, "").connectionEdges);
  return edgeStub(env, poolEdgeName(pool, k, hint === undefined ? undefined : continent), hint);
}
