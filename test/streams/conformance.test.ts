// The official Durable Streams server conformance suite (@durable-streams/server-conformance-tests)
// against the worker served on workerd. The protocol leaves auth to the server: every request
// to the served worker carries the publish key, as an origin's would. A short long-poll keeps
// the suite quick (it waits for the server's timeout in a few tests).
import { runConformanceTests } from "@durable-streams/server-conformance-tests";
import { afterAll, beforeAll } from "vitest";
import { serveOnWorkerd } from "../../scripts/serve-workerd.mjs";

const KEY = "conformance-publish-key";
const options = { baseUrl: "http://127.0.0.1:1", longPollTimeoutMs: 1500 };
let server: Awaited<ReturnType<typeof serveOnWorkerd>>;
const plainFetch = globalThis.fetch;

beforeAll(async () => {
  server = await serveOnWorkerd({ PUBLISH_KEY: KEY, STREAM_LONG_POLL_MS: "1500" });
  options.baseUrl = server.url;
  globalThis.fetch = (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (!url.startsWith(server.url)) return plainFetch(input, init);
    const request = new Request(input, init);
    if (!request.headers.has("authorization")) request.headers.set("authorization", `Bearer ${KEY}`);
    return plainFetch(request);
  };
}, 30_000);

afterAll(() => {
  globalThis.fetch = plainFetch;
  server?.stop();
});

runConformanceTests(options);
