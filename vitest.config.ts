import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Fake secrets for tests only; real ones come from `wrangler secret put`.
export const TEST_SECRETS = {
  JWT_SECRET: "test-jwt-secret-current-0123456789,test-jwt-secret-previous-0123456789",
  PUBLISH_KEY: "test-publish-key,test-publish-key-previous",
};

const worker = (bindings: Record<string, unknown>, outbound?: (request: Request) => Response) =>
  cloudflareTest({
    wrangler: { configPath: "./wrangler.toml" },
    miniflare: { bindings: { ...TEST_SECRETS, ...bindings }, ...(outbound ? { outboundService: outbound } : {}) },
  });

/** The world outside the Worker for the options project: a webhook receiver that is down. */
const receiverDown = () => new Response("receiver down", { status: 503 });

export default defineConfig({
  test: {
    projects: [
      {
        // The defaults of wrangler.toml, with the console page on as in local dev.
        plugins: [worker({ CONSOLE: "on" })],
        test: { name: "default", include: ["test/*.test.ts"], setupFiles: ["test/logs.ts"] },
      },
      {
        // Small limits and REQUIRE_AUTH, to reach every limit quickly.
        plugins: [
          worker({
            // Pinned: a developer's .dev.vars (which turns the console on) must not leak in.
            CONSOLE: "off",
            REQUIRE_AUTH: "true",
            ALLOWED_ORIGINS: "https://app.example",
            LOG_MAX_MESSAGES: "10",
            LOG_MAX_AGE_S: "60",
            DEDUPE_WINDOW_S: "120",
            MAX_MESSAGE_BYTES: "1024",
            MAX_SOCKETS: "3",
            CLIENT_PUB_PER_S: "3",
            PRESENCE_MAX_MEMBERS: "2",
            // One connection edge, so MAX_SOCKETS applies to every /v1/ws connection here.
            CONNECTION_EDGES: "1",
            APPENDS_MAX: "3",
          }),
        ],
        test: { name: "strict", include: ["test/strict/*.test.ts"], setupFiles: ["test/logs.ts"] },
      },
      {
        // Per-namespace channel options: one rule per option (test/options/).
        plugins: [
          worker({
            CONSOLE: "off",
            MAX_SUBSCRIPTIONS: "3",
            // Webhooks on, to a receiver that is down (503, below): events stay in the outbox.
            WEBHOOK_URL: "http://receiver.test/hooks",
            WEBHOOK_SECRET: "test-webhook-secret",
            PUSHER_APP_ID: "77",
            PUSHER_KEY: "test-pusher-key",
            PUSHER_SECRET: "test-pusher-secret",
            PUSHER_CLIENT_EVENTS: "true",
            // As wrangler.toml passes it: a JSON array (bad-config below passes a JSON string).
            CHANNEL_OPTIONS: [
              { match: "chat-*", logMaxMessages: 5, clientPubPerS: 2 },
              { match: "price-*", logMaxMessages: 1, latest: true },
              { match: "feed-*", clientPublish: false },
              { match: "team-*", requireAuth: true },
              { match: "once-*", dedupeWindowS: 0, logMaxMessages: 2 },
              { match: "brief-*", logMaxAgeS: 1 },
              { match: "presence-small-*", presenceMaxMembers: 1 },
              { match: "tiny-*", maxSockets: 1 },
              { match: "wide-*", shards: 4 },
              { match: "shard-*", shards: 3, logMaxMessages: 50 },
              { match: "quiet-*", webhooks: false },
              { match: "exact-room", logMaxMessages: 3 },
            ],
          }, receiverDown),
        ],
        test: { name: "options", include: ["test/options/*.test.ts"], setupFiles: ["test/logs.ts"] },
      },
      {
        // A broken CHANNEL_OPTIONS: every request answers 500 naming the rule and the field.
        plugins: [worker({ CONSOLE: "off", CHANNEL_OPTIONS: JSON.stringify([{ match: "chat-*", logMaxMessages: "ten" }]) })],
        test: { name: "bad-config", include: ["test/bad-config/*.test.ts"], setupFiles: ["test/logs.ts"] },
      },
      {
        // A host Worker of its own (test/mount/worker.ts) that mounts hibercast under /rt.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./test/mount/wrangler.toml" },
            miniflare: { bindings: { ...TEST_SECRETS, CONSOLE: "on" } },
          }),
        ],
        test: { name: "mount", include: ["test/mount/*.test.ts"], setupFiles: ["test/logs.ts"] },
      },
      {
        // Durable Streams: the official conformance suite and real clients, against workerd.
        test: { name: "streams", include: ["test/streams/*.test.ts"], environment: "node", hookTimeout: 30_000 },
      },
      {
        // Node-side: the client SDK, publisher and CLI against the worker served locally.
        test: {
          name: "node",
          include: ["test/node/*.test.ts"],
          environment: "node",
          globalSetup: ["test/node/global-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
          // A browser page or a served worker on a loaded machine can take longer than the 1 s default.
          expect: { poll: { timeout: 10_000 } },
        },
      },
    ],
  },
});
