// docs/guides/mounting.md: its code is the host Worker of test/mount/ (which the mount project
// tests in workerd), and here the real SDK talks to that host Worker, served, under its prefix.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket as WsPackage } from "ws";
import { createPublisher } from "../../src/client/publisher";
import { subscribe, type WebSocketConstructor } from "../../src/client/index";
import { NODE_PUBLISH_KEY, startServer, type LocalServer } from "./server";
import { snippet } from "./snippets";
import { channelName } from "./helpers";

describe("the mounting guide", () => {
  it("shows the host Worker and its wrangler.toml as the tests run them", () => {
    expect(snippet("docs/guides/mounting.md", "mounting/worker") + "\n").toBe(readFileSync("test/mount/worker.ts", "utf8"));
    expect(snippet("docs/guides/mounting.md", "mounting/wrangler") + "\n").toBe(readFileSync("test/mount/wrangler.toml", "utf8"));
  });
});

describe("the SDK against a host Worker that mounts hibercast under /rt", () => {
  let server: LocalServer;
  beforeAll(async () => {
    server = await startServer({ config: "test/mount/wrangler.toml" });
  });
  afterAll(() => server?.stop());

  /** A socket that sends the session cookie, as a browser on the app's own pages does. */
  const withSession = (cookie: string): WebSocketConstructor =>
    class extends WsPackage {
      constructor(url: string) {
        super(url, { headers: { cookie } });
      }
    } as unknown as WebSocketConstructor;

  it("subscribes to a private channel with the session cookie alone, and publishes under the prefix", async () => {
    const base = `${server.url}/rt`;
    expect(await (await fetch(`${server.url}/hello`, { headers: { cookie: "session=s-alice" } })).text()).toBe("hello, alice");
    const sub = subscribe({ url: base, channel: "private-user-alice", WebSocket: withSession("session=s-alice") });
    const got = new Promise((resolve) => sub.on("note", (data) => resolve(data)));
    await new Promise((resolve) => sub.connection.on("welcome", resolve));
    const publisher = createPublisher({ url: base, key: NODE_PUBLISH_KEY });
    await publisher.publish("private-user-alice", "note", { n: 1 });
    expect(await got).toEqual({ n: 1 });
    const page = await publisher.history("private-user-alice");
    expect(page.messages.at(-1)).toMatchObject({ e: "note", d: { n: 1 } });
    sub.close();
  });

  it("without the session, the private channel is refused (4401) and the subscription ends", async () => {
    const sub = subscribe({ url: `${server.url}/rt`, channel: "private-user-alice", WebSocket: WsPackage as unknown as WebSocketConstructor });
    const closed = await new Promise<{ code: number }>((resolve) => sub.connection.on("close", resolve));
    expect(closed.code).toBe(4401);
  });

  it("a public channel under the prefix needs nothing", async () => {
    const ch = channelName("news");
    const sub = subscribe({ url: `${server.url}/rt/`, channel: ch, WebSocket: WsPackage as unknown as WebSocketConstructor });
    expect(await new Promise((resolve) => sub.connection.on("welcome", resolve))).toMatchObject({ ch });
    sub.close();
  });
});

