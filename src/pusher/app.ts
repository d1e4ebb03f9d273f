// The Pusher app this deployment answers as (DESIGN.md "Pusher-compatible endpoint"): on when
// PUSHER_APP_ID, PUSHER_KEY and PUSHER_SECRET are all set, off when none is. Some but not all is
// a configuration mistake, answered like any other (500 naming it), never a half-on endpoint.
import { ConfigError, perEnv } from "../settings/per-env.js";
import type { Env } from "../env.js";
import { ServiceError } from "../server/service-error.js";
import { isInternalChannel } from "../rpc.js";

export interface PusherApp {
  id: string;
  key: string;
  secret: string;
  /** Client events (`client-*`), off unless PUSHER_CLIENT_EVENTS=true, as on Pusher. */
  clientEvents: boolean;
  /** Subscription counting (`pusher_internal:subscription_count` and its webhook), off unless PUSHER_SUBSCRIPTION_COUNT=true, as on Pusher. */
  subscriptionCount: boolean;
}

const NAMES = ["PUSHER_APP_ID", "PUSHER_KEY", "PUSHER_SECRET"] as const;

/** The app, or null when the endpoint is off. */
export const pusherApp = perEnv(readApp);

function readApp(env: Partial<Env>): PusherApp | null {
  const [id, key, secret] = NAMES.map((name) => (env[name] ?? "").trim());
  if (!id && !key && !secret) return null;
  if (!id || !key || !secret) {
    const missing = NAMES.filter((name) => !(env[name] ?? "").trim()).join(", ");
    throw new ConfigError(`the Pusher endpoint needs PUSHER_APP_ID, PUSHER_KEY and PUSHER_SECRET (missing ${missing})`);
  }
  return { id, key, secret, clientEvents: flag(env, "PUSHER_CLIENT_EVENTS"), subscriptionCount: flag(env, "PUSHER_SUBSCRIPTION_COUNT") };
}

/** An app setting: "true" or "false" (or unset: false); anything else is a mistake, named. */
function flag(env: Partial<Env>, name: "PUSHER_CLIENT_EVENTS" | "PUSHER_SUBSCRIPTION_COUNT"): boolean {
  const value = (env[name] ?? "").trim().toLowerCase();
  if (value !== "" && value !== "true" && value !== "false") throw new ConfigError(`${name} must be true or false (got ${JSON.stringify(env[name])})`);
  return value === "true";
}

/** Whether the app counts this channel's subscriptions (PUSHER_SUBSCRIPTION_COUNT; never an internal channel). */
export const countsSubscriptions = (env: Partial<Env>, channel: string) => !isInternalChannel(channel) && pusherApp(env)?.subscriptionCount === true;

/** The app, or 404: with the endpoint off, its routes do not exist. */
export function requirePusherApp(env: Env): PusherApp {
  const app = pusherApp(env);
  if (app === null) throw new ServiceError("not_found", "no such route (the Pusher endpoint is off: set PUSHER_APP_ID, PUSHER_KEY and PUSHER_SECRET)");
  return app;
}
