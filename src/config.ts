import type { RoomObject } from "./room-object.js";

/** Bindings, vars and secrets of the Worker (see wrangler.toml and README "Configuration"). */
export interface Env {
  ROOMS: DurableObjectNamespace<RoomObject>;
  /** Optional Workers Analytics Engine dataset for per-channel counters. */
  ANALYTICS?: AnalyticsEngineDataset;
  /** HS256 secret(s) for subscribe/publish tokens; comma-separated for rotation. */
  JWT_SECRET?: string;
  /** Origin publish key(s); comma-separated for rotation. */
  PUBLISH_KEY?: string;
  REQUIRE_AUTH?: string;
  ALLOWED_ORIGINS?: string;
  MAX_MESSAGE_BYTES?: string;
  LOG_MAX_MESSAGES?: string;
  LOG_MAX_AGE_S?: string;
  DEDUPE_WINDOW_S?: string;
  CLIENT_PUB_PER_S?: string;
  PRESENCE_MAX_MEMBERS?: string;
  MAX_SOCKETS?: string;
  /** Bytes an SSE stream may have written but not yet sent before it is ended as too slow. */
  SSE_MAX_BACKLOG_BYTES?: string;
  /** "on" serves the live console page at / and /console; anything else turns it off. */
  CONSOLE?: string;
}

/** Settings that apply to one channel. Read only through `configFor`. */
export interface ChannelConfig {
  requireAuth: boolean;
  maxMessageBytes: number;
  logMaxMessages: number;
  logMaxAgeS: number;
  dedupeWindowS: number;
  clientPubPerS: number;
  presenceMaxMembers: number;
  maxSockets: number;
  sseMaxBacklogBytes: number;
}

const DEFAULTS: ChannelConfig = {
  requireAuth: false,
  maxMessageBytes: 65536,
  logMaxMessages: 1000,
  logMaxAgeS: 3600,
  dedupeWindowS: 300,
  clientPubPerS: 10,
  presenceMaxMembers: 1000,
  maxSockets: 30000,
  sseMaxBacklogBytes: 1024 * 1024,
};

const parsed = new WeakMap<object, ChannelConfig>();

function int(value: string | undefined, fallback: number, min: number): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  // A typo in a var must not silently disable a limit: fall back to the default.
  return Number.isInteger(n) && n >= min ? n : fallback;
}

function parse(env: Partial<Env>): ChannelConfig {
  return {
    requireAuth: (env.REQUIRE_AUTH ?? "").trim().toLowerCase() === "true",
    maxMessageBytes: int(env.MAX_MESSAGE_BYTES, DEFAULTS.maxMessageBytes, 1),
    logMaxMessages: int(env.LOG_MAX_MESSAGES, DEFAULTS.logMaxMessages, 1),
    logMaxAgeS: int(env.LOG_MAX_AGE_S, DEFAULTS.logMaxAgeS, 1),
    dedupeWindowS: int(env.DEDUPE_WINDOW_S, DEFAULTS.dedupeWindowS, 0),
    clientPubPerS: int(env.CLIENT_PUB_PER_S, DEFAULTS.clientPubPerS, 1),
    presenceMaxMembers: int(env.PRESENCE_MAX_MEMBERS, DEFAULTS.presenceMaxMembers, 0),
    maxSockets: int(env.MAX_SOCKETS, DEFAULTS.maxSockets, 1),
    sseMaxBacklogBytes: int(env.SSE_MAX_BACKLOG_BYTES, DEFAULTS.sseMaxBacklogBytes, 1024),
  };
}

/**
 * Every setting is read through here, keyed by channel, so per-prefix overrides can be added
 * in one place later. Parsed once per env object (per isolate), not per request.
 */
export function configFor(env: Partial<Env>, _channel: string): ChannelConfig {
  let config = parsed.get(env);
  if (!config) {
    config = parse(env);
    parsed.set(env, config);
  }
  return config;
}

/** Comma-separated secret lists (rotation): empty entries are dropped. */
export function secretList(value: string | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}
