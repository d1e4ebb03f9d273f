// Serves the worker (src/worker.ts with wrangler.toml) locally with wrangler, for Node-side tests.
import { unstable_startWorker } from "wrangler";

export const NODE_PUBLISH_KEY = "node-test-publish-key";
export const NODE_JWT_SECRET = "node-test-jwt-secret-0123456789abcdef";
/** The Pusher app the served worker answers as (fake values, tests only). */
export const NODE_PUSHER = { appId: "4242", key: "node-test-pusher-key", secret: "node-test-pusher-secret" };

export interface LocalServer {
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts the worker on a free port; `vars` override wrangler.toml's, `persist` keeps storage in a
 * folder, `config` serves another Worker (the host Worker of test/mount/ that mounts hibercast).
 */
export async function startServer(options: { vars?: Record<string, string>; persist?: string; config?: string } = {}): Promise<LocalServer> {
  process.env.WRANGLER_SEND_METRICS = "false";
  process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
  const pusher = { PUSHER_APP_ID: NODE_PUSHER.appId, PUSHER_KEY: NODE_PUSHER.key, PUSHER_SECRET: NODE_PUSHER.secret, PUSHER_CLIENT_EVENTS: "true" };
  const vars = { PUBLISH_KEY: NODE_PUBLISH_KEY, JWT_SECRET: NODE_JWT_SECRET, CONSOLE: "on", ...pusher, ...options.vars };
  const worker = await unstable_startWorker({
    config: options.config ?? "wrangler.toml",
    bindings: Object.fromEntries(Object.entries(vars).map(([k, value]) => [k, { type: "plain_text", value }])),
    dev: { server: { hostname: "127.0.0.1", port: 0 }, inspector: false, persist: options.persist ?? false, watch: false, logLevel: "warn" },
  } as Parameters<typeof unstable_startWorker>[0]);
  await worker.ready;
  const url = (await worker.url).toString().replace(/\/$/, "");
  return { url, stop: () => worker.dispose() };
}
