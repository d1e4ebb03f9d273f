// Serves the worker (src/worker.ts, wrangler.toml) locally for the Node-side tests.
import type { TestProject } from "vitest/node";
import { unstable_startWorker } from "wrangler";

export const NODE_PUBLISH_KEY = "node-test-publish-key";
export const NODE_JWT_SECRET = "node-test-jwt-secret";

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
  }
}

export default async function setup(project: TestProject) {
  process.env.WRANGLER_SEND_METRICS = "false";
  process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
  const worker = await unstable_startWorker({
    config: "wrangler.toml",
    bindings: {
      PUBLISH_KEY: { type: "plain_text", value: NODE_PUBLISH_KEY },
      JWT_SECRET: { type: "plain_text", value: NODE_JWT_SECRET },
    },
    dev: { server: { hostname: "127.0.0.1", port: 0 }, inspector: false, persist: false, watch: false, logLevel: "warn" },
  } as Parameters<typeof unstable_startWorker>[0]);
  await worker.ready;
  project.provide("baseUrl", (await worker.url).toString().replace(/\/$/, ""));
  return async () => {
    await worker.dispose();
  };
}
