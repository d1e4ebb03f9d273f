// What leaf modules take instead of the whole Env: string vars and secrets, no bindings.
/** The Worker's vars and secrets (see wrangler.toml and docs/configuration.md): strings, as set. */
export interface Vars {
  /** HS256 secret(s) for subscribe/publish tokens; comma-separated for rotation. */
  JWT_SECRET?: string;
  /** Origin publish key(s); comma-separated for rotation. */
  PUBLISH_KEY?: string;
  REQUIRE_AUTH?: string;
  ALLOWED_ORIGINS?: string;
  MAX_MESSAGE_BYTES?: string;
  LOG_MAX_MESSAGES?: string;
  STREAM_MAX_BYTES?: string;
  STREAM_LONG_POLL_MS?: string;
  /** Appends one message may have (default 10000). */
  APPENDS_MAX?: string;
  LOG_MAX_AGE_S?: string;
  DEDUPE_WINDOW_S?: string;
  CLIENT_PUB_PER_S?: string;
  PRESENCE_MAX_MEMBERS?: string;
  MAX_SOCKETS?: string;
  /** Bytes an SSE stream may have written but not yet sent before it is ended as too slow. */
  SSE_MAX_BACKLOG_BYTES?: string;
  /** "on" serves the live console page at / and /console; anything else turns it off. */
  CONSOLE?: string;
  MAX_SUBSCRIPTIONS?: string;
  CONNECTION_EDGES?: string;
  /** Per-namespace options: a JSON array of rules (wrangler.toml) or a JSON string of one. */
  CHANNEL_OPTIONS?: unknown;
  /** The Pusher-compatible endpoint: on when all three are set (the secret with `wrangler secret put`). */
  PUSHER_APP_ID?: string;
  PUSHER_KEY?: string;
  PUSHER_SECRET?: string;
  /** "true" lets Pusher clients send client events (`client-*`) on private and presence channels; off by default, as on Pusher. */
  PUSHER_CLIENT_EVENTS?: string;
  /** "true" turns on Pusher's subscription counting: `pusher_internal:subscription_count` and the `subscription_count` webhook. */
  PUSHER_SUBSCRIPTION_COUNT?: string;
  /** Webhooks (DESIGN.md "Webhooks"): on when both are set (the secret with `wrangler secret put`). */
  WEBHOOK_URL?: string;
  WEBHOOK_SECRET?: string;
  /** Webhook events one channel's outbox holds at most (default 10000); the oldest beyond it are dropped. */
  WEBHOOK_MAX_PENDING?: string;
}

