import { checkOption, OPTION_SPECS, parseRules, ruleFor, type ChannelOptions, type Rule } from "./channel-options.js";
import { checkSettings, perEnv } from "./per-env.js";
import type { Vars } from "./vars.js";

/** Settings that apply to one channel. Read only through `configFor`. */
export interface ChannelConfig extends ChannelOptions {
  maxMessageBytes: number;
  sseMaxBacklogBytes: number;
  /** Channels one multiplexed connection may subscribe to. */
  maxSubscriptions: number;
  /** Edges in the pool that holds multiplexed connections (per region in production). */
  connectionEdges: number;
  /** Webhook events a channel's outbox holds at most; beyond it the oldest are dropped (global only). */
  webhookMaxPending: number;
  /** Bytes one Durable Stream holds at most (its messages' stored data). */
  streamMaxBytes: number;
  /** How long a Durable Streams long-poll waits for news, in ms. */
  streamLongPollMs: number;
  /** Appends one message may have (DESIGN v1.3 "Appends"). */
  appendsMax: number;
  /** The CHANNEL_OPTIONS rule in force (its `match`), or null for the global vars alone. */
  rule: string | null;
}

/** The numeric and boolean vars, each with its default and the spec its value must meet. */
const VARS = {
  REQUIRE_AUTH: { key: "requireAuth", spec: OPTION_SPECS.requireAuth, fallback: false },
  // A frame is stored (a SQLite row, a webhook batch in a KV value: 2 MB each) with overhead.
  MAX_MESSAGE_BYTES: { key: "maxMessageBytes", spec: { kind: "int", min: 1, max: 1024 * 1024, why: "a stored message (SQLite row, KV value) is capped at 2 MB, with overhead" }, fallback: 65536 },
  LOG_MAX_MESSAGES: { key: "logMaxMessages", spec: OPTION_SPECS.logMaxMessages, fallback: 1000 },
  LOG_MAX_AGE_S: { key: "logMaxAgeS", spec: OPTION_SPECS.logMaxAgeS, fallback: 3600 },
  DEDUPE_WINDOW_S: { key: "dedupeWindowS", spec: OPTION_SPECS.dedupeWindowS, fallback: 300 },
  CLIENT_PUB_PER_S: { key: "clientPubPerS", spec: OPTION_SPECS.clientPubPerS, fallback: 10 },
  PRESENCE_MAX_MEMBERS: { key: "presenceMaxMembers", spec: OPTION_SPECS.presenceMaxMembers, fallback: 1000 },
  MAX_SOCKETS: { key: "maxSockets", spec: OPTION_SPECS.maxSockets, fallback: 30000 },
  SSE_MAX_BACKLOG_BYTES: { key: "sseMaxBacklogBytes", spec: { kind: "int", min: 1024 }, fallback: 1024 * 1024 },
  // Each sub is kept in the connection's socket attachment, which must fit in 16 KiB.
  MAX_SUBSCRIPTIONS: { key: "maxSubscriptions", spec: { kind: "int", min: 1, max: 100, why: "a connection's subscriptions must fit its 16 KiB socket attachment" }, fallback: 100 },
  CONNECTION_EDGES: { key: "connectionEdges", spec: { kind: "int", min: 1, max: 1024 }, fallback: 16 },
  WEBHOOK_MAX_PENDING: { key: "webhookMaxPending", spec: { kind: "int", min: 1 }, fallback: 10_000 },
  STREAM_MAX_BYTES: { key: "streamMaxBytes", spec: { kind: "int", min: 1 }, fallback: 1024 * 1024 * 1024 },
  STREAM_LONG_POLL_MS: { key: "streamLongPollMs", spec: { kind: "int", min: 100, max: 60_000 }, fallback: 20_000 },
  APPENDS_MAX: { key: "appendsMax", spec: { kind: "int", min: 1, max: 1_000_000 }, fallback: 10_000 },
} as const;

/** Options no var sets: a rule may. */
const OPTION_DEFAULTS = { clientPublish: true, latest: false, shards: 1, webhooks: true };

/**
 * A var as written (a string in wrangler.toml or .dev.vars, or a JSON value): a typo is an error
 * naming the var, never a silent fallback to the default.
 */
function readVar(name: keyof typeof VARS, raw: unknown): number | boolean {
  const { spec, fallback } = VARS[name];
  if (raw === undefined || raw === null || (typeof raw === "string" && raw.trim() === "")) return fallback;
  let value = raw;
  if (typeof raw === "string") {
    const t = raw.trim();
    value = spec.kind === "bool" ? (t.toLowerCase() === "true" ? true : t.toLowerCase() === "false" ? false : t) : /^-?\d+$/.test(t) ? Number(t) : t;
  }
  return checkOption(name, spec, value);
}

interface Parsed {
  global: ChannelConfig;
  rules: Rule[];
  /** Per channel, so rules are matched once per channel per isolate (bounded). */
  byChannel: Map<string, ChannelConfig>;
}

const CHANNEL_CACHE = 1000;

function parse(env: Partial<Vars>): Parsed {
  const global = { ...OPTION_DEFAULTS, rule: null } as ChannelConfig;
  for (const name of Object.keys(VARS) as (keyof typeof VARS)[]) {
    (global as unknown as Record<string, unknown>)[VARS[name].key] = readVar(name, env[name]);
  }
  return { global, rules: parseRules(env.CHANNEL_OPTIONS), byChannel: new Map() };
}

/** Parsed once per env object; a mistake is said once and answered by every request (per-env.ts). */
const load = perEnv(parse);

/**
 * Every setting is read through here: the global vars, with the options of the first
 * CHANNEL_OPTIONS rule that matches the channel over them. Parsed once per env object (per
 * isolate). A configuration mistake throws a 500 `internal` ServiceError naming it, for every
 * request, rather than a silent fallback to defaults.
 */
export function configFor(env: Partial<Vars>, channel: string): ChannelConfig {
  const { global, rules, byChannel } = load(env);
  let config = byChannel.get(channel);
  if (config === undefined) {
    const rule = ruleFor(rules, channel);
    config = rule === null ? global : { ...global, ...rule.options, rule: rule.match };
    if (byChannel.size >= CHANNEL_CACHE) byChannel.clear();
    byChannel.set(channel, config);
  }
  return config;
}

/** Throws the configuration error of any setting, if there is one (the Worker checks before any route). */
export const checkConfig = checkSettings;

/** The options in force for a channel, as stats show them (no secrets are among them). */
export function optionsInForce(config: ChannelConfig): ChannelOptions & { rule: string | null } {
  const options = { rule: config.rule } as ChannelOptions & { rule: string | null };
  for (const key of Object.keys(OPTION_SPECS) as (keyof ChannelOptions)[]) (options as unknown as Record<string, unknown>)[key] = config[key];
  return options;
}
