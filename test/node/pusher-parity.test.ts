// Pusher features apps rely on beyond channels and presence (DESIGN v1.3 "Pusher: users, cache
// and encrypted channels"), with the real, unmodified libraries: pusher-js 8 (its Node build
// decrypts with tweetnacl) and the `pusher` server SDK.
import { randomBytes } from "node:crypto";
import http from "node:http";
import PusherServer from "pusher";
import Pusher from "pusher-js";
import WebSocket from "ws";
import { afterAll, describe, expect, it } from "vitest";
import { baseUrl, channelName, ready, sleep, token, until } from "./helpers";
import { NODE_PUSHER, startServer, type LocalServer } from "./server";

const MASTER_KEY = randomBytes(32).toString("base64");
const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

const portOf = (url: string) => Number(new URL(url).port);

/** The app's backend: the official server SDK (with an encryption master key), pointed at a local worker. */
const backend = (url = baseUrl()) =>
  new PusherServer({ appId: NODE_PUSHER.appId, key: NODE_PUSHER.key, secret: NODE_PUSHER.secret, host: "127.0.0.1", port: String(portOf(url)), useTLS: false, encryptionMasterKeyBase64: MASTER_KEY });

/** A pusher-js client whose auth endpoint is the SDK in-process (encrypted channels get their shared secret from it). */
async function pusherClient(url = baseUrl()): Promise<Pusher> {
  const signer = backend(url);
  const client = new Pusher(NODE_PUSHER.key, {
    cluster: "local",
    wsHost: "127.0.0.1",
    wsPort: portOf(url),
    forceTLS: false,
    enabledTransports: ["ws"],
    channelAuthorization: {
      customHandler: ({ socketId, channelName: name }: { socketId: string; channelName: string }, callback: (error: Error | null, auth: unknown) => void) => callback(null, signer.authorizeChannel(socketId, name, name.startsWith("presence-") ? { user_id: "u1", user_info: {} } : undefined)),
    } as never,
  });
  cleanup.push(() => client.disconnect());
  await new Promise<void>((resolve, reject) => {
    client.connection.bind("connected", () => resolve());
    client.connection.bind("failed", () => reject(new Error("pusher-js could not connect")));
  });
  return client;
}

/** Whether pusher-js has subscribed the client to its user channel (it does after signin_success). */
const inUserChannel = (c: Pusher) => (c.user as unknown as { serverToUserChannel?: { subscribed: boolean } }).serverToUserChannel?.subscribed === true;

/** A raw Pusher protocol client (for frames pusher-js will not send): its socket, the frames it got, its socket_id. */
async function rawPusher(): Promise<{ raw: WebSocket; frames: { event: string; data: string; channel?: string }[]; socketId: string }> {
  const raw = new WebSocket(`${baseUrl().replace("http", "ws")}/app/${NODE_PUSHER.key}?protocol=7`);
  cleanup.push(() => raw.close());
  const frames: { event: string; data: string; channel?: string }[] = [];
  raw.on("message", (d) => frames.push(JSON.parse(String(d))));
  await until(() => frames.length > 0);
  return { raw, frames, socketId: (JSON.parse(frames[0]!.data) as { socket_id: string }).socket_id };
}

function subscribed(client: Pusher, name: string): Promise<unknown> {
  const channel = client.subscribe(name);
  return new Promise((resolve, reject) => {
    channel.bind("pusher:subscription_succeeded", resolve);
    channel.bind("pusher:subscription_error", (e: unknown) => reject(Object.assign(new Error("subscription_error"), { data: e })));
  });
}

/** The `pusher:error`s a pusher-js client gets. */
function errorsOf(client: Pusher): { code: number | null; message: string }[] {
  const errors: { code: number | null; message: string }[] = [];
  client.connection.bind("error", (e: { data?: { code: number | null; message: string } }) => e.data && errors.push(e.data));
  return errors;
}

describe("encrypted channels (private-encrypted-)", () => {
  it("relays what the SDK encrypted, unread: pusher-js decrypts it with the shared secret from the auth endpoint", async () => {
    const client = await pusherClient();
    const name = `private-encrypted-${channelName("vault")}`;
    await subscribed(client, name);
    const got: unknown[] = [];
    client.channel(name)!.bind("secret", (d: unknown) => got.push(d));
    await backend().trigger(name, "secret", { pin: "1234", note: "é" });
    await until(() => got.length === 1);
    expect(got).toEqual([{ pin: "1234", note: "é" }]);
  });

  it("keeps only ciphertext: hibercast subscribers and history see Pusher's {nonce, ciphertext}", async () => {
    const name = `private-encrypted-${channelName("vault")}`;
    await backend().trigger(name, "secret", { pin: "9876" });
    const res = await fetch(`${baseUrl()}/v1/channels/${name}/messages`, { headers: { authorization: `Bearer ${await token({ sub: "auditor", ch: [name] })}` } });
    const { messages } = (await res.json()) as { messages: { d: { nonce: string; ciphertext: string } }[] };
    expect(Object.keys(messages[0]!.d).sort()).toEqual(["ciphertext", "nonce"]);
    expect(JSON.stringify(messages)).not.toContain("9876");
  });

  it("refuses client events on them, as Pusher does, keeping the socket", async () => {
    // pusher-js will not even send one (it throws): a raw client, signed in by the SDK, does.
    const { raw, frames, socketId } = await rawPusher();
    const name = `private-encrypted-${channelName("vault")}`;
    raw.send(JSON.stringify({ event: "pusher:subscribe", data: { channel: name, ...backend().authorizeChannel(socketId, name) } }));
    await until(() => frames.some((f) => f.event === "pusher_internal:subscription_succeeded"));
    raw.send(JSON.stringify({ event: "client-peek", channel: name, data: { x: 1 } }));
    await until(() => frames.some((f) => f.event === "pusher:error"));
    expect(JSON.parse(frames.find((f) => f.event === "pusher:error")!.data)).toMatchObject({ message: expect.stringMatching(/not supported on encrypted channels/) });
    expect(raw.readyState).toBe(WebSocket.OPEN);
  });

  it("refuses a subscription without the app's signature", async () => {
    const { raw, frames } = await rawPusher();
    const name = `private-encrypted-${channelName("vault")}`;
    raw.send(JSON.stringify({ event: "pusher:subscribe", data: { channel: name } }));
    await until(() => frames.length > 1);
    expect(frames[1]).toMatchObject({ event: "pusher:subscription_error", channel: name });
  });
});

describe("client events", () => {
  let server: LocalServer;
  it("are off unless PUSHER_CLIENT_EVENTS=true, as on Pusher", async () => {
    server = await startServer({ vars: { PUSHER_CLIENT_EVENTS: "" } });
    cleanup.push(() => server.stop());
    const [ann, bob] = [await pusherClient(server.url), await pusherClient(server.url)];
    const errors = errorsOf(ann);
    const name = `private-${channelName("chat")}`;
    await Promise.all([subscribed(ann, name), subscribed(bob, name)]);
    const seen: unknown[] = [];
    bob.channel(name)!.bind("client-typing", (d: unknown) => seen.push(d));
    ann.channel(name)!.trigger("client-typing", { typing: true });
    await until(() => errors.length > 0);
    expect(errors[0]).toMatchObject({ code: null, message: expect.stringMatching(/client events are off for this app \(PUSHER_CLIENT_EVENTS=true/) });
    await sleep(200);
    expect(seen).toEqual([]);
  });
});

describe("cache channels", () => {
  it("give a new subscriber the last event at once, or pusher:cache_miss when there is none", async () => {
    const name = `cache-${channelName("rates")}`;
    const first = await pusherClient();
    const misses: unknown[] = [];
    const channel = first.subscribe(name);
    channel.bind("pusher:cache_miss", () => misses.push(name));
    await until(() => misses.length === 1);
    await backend().trigger(name, "rate", { eur: 1.08 });
    await backend().trigger(name, "rate", { eur: 1.09 });
    // A later subscriber gets the last event right after subscribing, and no cache_miss.
    const late = await pusherClient();
    const got: unknown[] = [];
    const lateMisses: unknown[] = [];
    const lateChannel = late.subscribe(name);
    lateChannel.bind("rate", (d: unknown) => got.push(d));
    lateChannel.bind("pusher:cache_miss", () => lateMisses.push(1));
    await until(() => got.length === 1);
    await sleep(200);
    expect(got).toEqual([{ eur: 1.09 }]);
    expect(lateMisses).toEqual([]);
  });

  it("work as private, presence and encrypted cache channels too", async () => {
    const client = await pusherClient();
    for (const prefix of ["private-cache-", "presence-cache-", "private-encrypted-cache-"]) {
      const name = `${prefix}${channelName("c")}`;
      await backend().trigger(name, "state", { v: prefix });
      const got: unknown[] = [];
      client.subscribe(name).bind("state", (d: unknown) => got.push(d));
      await until(() => got.length === 1);
      expect(got).toEqual([{ v: prefix }]);
    }
  });
});

/** A pusher-js client that signs in as `user` through the SDK (or, with `forged`, with a signature of another secret). */
async function signedInClient(user: { id: string; user_info?: unknown }, forged = false, signin = true): Promise<Pusher> {
  const signer = forged ? new PusherServer({ appId: NODE_PUSHER.appId, key: NODE_PUSHER.key, secret: "not-the-secret", host: "127.0.0.1", port: String(portOf(baseUrl())), useTLS: false }) : backend();
  const client = new Pusher(NODE_PUSHER.key, {
    cluster: "local",
    wsHost: "127.0.0.1",
    wsPort: portOf(baseUrl()),
    forceTLS: false,
    enabledTransports: ["ws"],
    userAuthentication: { customHandler: ({ socketId }: { socketId: string }, callback: (e: Error | null, auth: unknown) => void) => callback(null, signer.authenticateUser(socketId, user)) } as never,
    channelAuthorization: { customHandler: ({ socketId, channelName: name }: { socketId: string; channelName: string }, callback: (error: Error | null, auth: unknown) => void) => callback(null, signer.authorizeChannel(socketId, name, name.startsWith("presence-") ? { user_id: user.id, user_info: {} } : undefined)) } as never,
  });
  cleanup.push(() => client.disconnect());
  await new Promise<void>((resolve) => client.connection.bind("connected", () => resolve()));
  if (signin) client.signin();
  return client;
}

describe("users: sign-in, sendToUser, terminate", () => {
  it("delivers sendToUser to every signed-in connection of that user, and no one else's", async () => {
    const id = channelName("user").replaceAll("-", "_");
    const [a, b, other] = [await signedInClient({ id }), await signedInClient({ id }), await signedInClient({ id: `${id}_x` })];
    const got = { a: [] as unknown[], b: [] as unknown[], other: [] as unknown[] };
    a.user.bind("notice", (d: unknown) => got.a.push(d));
    b.user.bind("notice", (d: unknown) => got.b.push(d));
    other.user.bind("notice", (d: unknown) => got.other.push(d));
    await Promise.all([a, b, other].map((c) => c.user.signinDonePromise));
    // pusher-js subscribes to #server-to-user-<id> after signin_success: wait until it is in.
    await until(() => [a, b, other].every((c) => inUserChannel(c)));
    await backend().sendToUser(id, "notice", { text: "your export is ready" });
    await until(() => got.a.length === 1 && got.b.length === 1);
    await sleep(200);
    expect(got).toEqual({ a: [{ text: "your export is ready" }], b: [{ text: "your export is ready" }], other: [] });
  });

  it("ends a connection whose sign-in signature is forged (4009), as Pusher does", async () => {
    const client = await signedInClient({ id: "mallory" }, true);
    const errors = errorsOf(client);
    await until(() => errors.length > 0);
    expect(errors[0]).toMatchObject({ code: 4009 });
  });

  it("refuses a subscription to another user's #server-to-user- channel, and to one without sign-in", async () => {
    const { raw, frames, socketId } = await rawPusher();
    raw.send(JSON.stringify({ event: "pusher:subscribe", data: { channel: "#server-to-user-ceo", auth: "" } }));
    await until(() => frames.some((f) => f.event === "pusher:subscription_error"));
    raw.send(JSON.stringify({ event: "pusher:signin", data: backend().authenticateUser(socketId, { id: "intern" }) }));
    await until(() => frames.some((f) => f.event === "pusher:signin_success"));
    raw.send(JSON.stringify({ event: "pusher:subscribe", data: { channel: "#server-to-user-ceo", auth: "" } }));
    await until(() => frames.filter((f) => f.event === "pusher:subscription_error").length === 2);
    expect(frames.filter((f) => f.event === "pusher:subscription_error").map((f) => f.channel)).toEqual(["#server-to-user-ceo", "#server-to-user-ceo"]);
    await backend().sendToUser("ceo", "secret", { x: 1 });
    await sleep(200);
    expect(frames.some((f) => f.event === "secret")).toBe(false);
  });

  it("terminates every connection of a user, signed in or in presence (4009), and no one else's", async () => {
    const id = channelName("user").replaceAll("-", "_");
    const signedIn = await signedInClient({ id });
    await signedIn.user.signinDonePromise;
    // The same user, not signed in, in a presence channel: found all the same.
    const inPresence = await signedInClient({ id }, false, false);
    await subscribed(inPresence, `presence-${channelName("room")}`);
    const bystander = await signedInClient({ id: `${id}_other` });
    await bystander.user.signinDonePromise;
    await until(() => inUserChannel(signedIn));
    await sleep(200);
    const ended = new Map<string, number>();
    for (const [name, c] of [["signed in", signedIn], ["in presence", inPresence]] as const) c.connection.bind("error", (e: { data?: { code: number } }) => e.data && ended.set(name, e.data.code));
    await backend().terminateUserConnections(id);
    await until(() => ended.size === 2, 5000, "both connections to be ended");
    expect(Object.fromEntries(ended)).toEqual({ "signed in": 4009, "in presence": 4009 });
    expect(bystander.connection.state).toBe("connected");
  });

  it("delivers sendToUser to a connection that joined presence as that user before it signed in", async () => {
    const id = channelName("user").replaceAll("-", "_");
    const client = await signedInClient({ id }, false, false);
    await subscribed(client, `presence-${channelName("room")}`);
    client.signin();
    await client.user.signinDonePromise;
    await until(() => inUserChannel(client));
    const got: unknown[] = [];
    client.user.bind("notice", (d: unknown) => got.push(d));
    await backend().sendToUser(id, "notice", { n: 1 });
    await until(() => got.length === 1);
    expect(got).toEqual([{ n: 1 }]);
  });

  it("terminates a signed-in connection that never subscribed to its user channel, or left it", async () => {
    const { raw, frames, socketId } = await rawPusher();
    const id = channelName("user").replaceAll("-", "_");
    raw.send(JSON.stringify({ event: "pusher:signin", data: backend().authenticateUser(socketId, { id }) }));
    await until(() => frames.some((f) => f.event === "pusher:signin_success"));
    raw.send(JSON.stringify({ event: "pusher:subscribe", data: { channel: `#server-to-user-${id}`, auth: "" } }));
    await until(() => frames.some((f) => f.event === "pusher_internal:subscription_succeeded"));
    raw.send(JSON.stringify({ event: "pusher:unsubscribe", data: { channel: `#server-to-user-${id}` } }));
    await sleep(200);
    const closed = new Promise<number>((r) => raw.once("close", (code) => r(code)));
    await backend().terminateUserConnections(id);
    expect(await closed).toBe(4009);
  });

  it("answers terminate for a user with no connection, and refuses a bad user id (400)", async () => {
    await expect(backend().terminateUserConnections("nobody-here")).resolves.toBeDefined();
    const res = await fetch(`${baseUrl()}/apps/${NODE_PUSHER.appId}/users/${encodeURIComponent("bad id!")}/terminate_connections`, { method: "POST" });
    expect(res.status).toBeGreaterThanOrEqual(400);
  });
});

describe("watchlists", () => {
  it("tell a signed-in user who of its watchlist is online at once, then each going online and offline", async () => {
    const id = (s: string) => channelName(s).replaceAll("-", "_");
    const [me, friend, stranger] = [id("me"), id("friend"), id("stranger")];
    const early = await signedInClient({ id: friend });
    await early.user.signinDonePromise;
    await until(() => inUserChannel(early));
    // Its own online change reaches watchers a second later (settled): let it pass first, with room for a late timer.
    await sleep(2500);
    const events: string[] = [];
    const watcher = await signedInClient({ id: me, watchlist: [friend, stranger] } as never);
    for (const name of ["online", "offline"]) watcher.user.watchlist.bind(name, (e: { user_ids: string[] }) => events.push(`${name} ${e.user_ids.join(",")}`));
    await until(() => events.length === 1, 5000, "the first watchlist event");
    expect(events).toEqual([`online ${friend}`]);
    await until(() => inUserChannel(watcher));
    // The stranger signs in (twice: one online event), then leaves; the friend leaves.
    const [s1, s2] = [await signedInClient({ id: stranger }), await signedInClient({ id: stranger })];
    await until(() => events.length === 2, 5000, "online");
    await until(() => [s1, s2].every((c) => inUserChannel(c)), 5000, "both in");
    s1.disconnect();
    await sleep(300);
    expect(events).toEqual([`online ${friend}`, `online ${stranger}`]);
    s2.disconnect();
    early.disconnect();
    await until(() => events.length === 4, 8000, "offline");
    expect(events.slice(2).sort()).toEqual([`offline ${friend}`, `offline ${stranger}`].sort());
  });

  it("tell nothing of a user that came and went within a second (a flapping user costs its watchers nothing)", async () => {
    const flapper = channelName("flap").replaceAll("-", "_");
    const watcher = await signedInClient({ id: channelName("w").replaceAll("-", "_"), watchlist: [flapper] } as never);
    const events: string[] = [];
    for (const name of ["online", "offline"]) watcher.user.watchlist.bind(name, (e: { user_ids: string[] }) => events.push(`${name} ${e.user_ids.join(",")}`));
    await watcher.user.signinDonePromise;
    await until(() => inUserChannel(watcher));
    const flap = await signedInClient({ id: flapper });
    await until(() => inUserChannel(flap));
    flap.disconnect();
    await sleep(2000);
    expect(events).toEqual([]);
  });

  it("refuses a sign-in with a watchlist of more than 100 ids (4009)", async () => {
    const client = await signedInClient({ id: "greedy", watchlist: Array.from({ length: 101 }, (_, i) => `u${i}`) } as never);
    const errors = errorsOf(client);
    await until(() => errors.length > 0);
    expect(errors[0]).toMatchObject({ code: 4009, message: expect.stringMatching(/watchlist/) });
  });
});

describe("subscription counts", () => {
  it("tell a channel's Pusher clients its count of every kind of subscriber, debounced, with the webhook, when PUSHER_SUBSCRIPTION_COUNT=true", async () => {
    // A receiver for the webhook, and a server with subscription counting on.
    const hooks: { name: string; channel: string; subscription_count?: number }[] = [];
    const receiver = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        hooks.push(...(JSON.parse(body) as { events: typeof hooks }).events);
        res.end("ok");
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise((r) => receiver.close(r)));
    const server = await startServer({ vars: { PUSHER_SUBSCRIPTION_COUNT: "true", WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hooks`, WEBHOOK_SECRET: "node-test-webhook-secret" } });
    cleanup.push(() => server.stop());
    const name = channelName("count");
    const first = await pusherClient(server.url);
    const counts: number[] = [];
    first.subscribe(name).bind("pusher:subscription_count", (d: { subscription_count: number }) => counts.push(d.subscription_count));
    await until(() => counts.length === 1, 5000, "the first count");
    expect(counts).toEqual([1]);
    // Two more Pusher clients and a hibercast WebSocket within the 5 s window: one event, of 4.
    const others = [await pusherClient(server.url), await pusherClient(server.url)];
    await Promise.all(others.map((c) => subscribed(c, name)));
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/v1/channels/${name}/ws`);
    cleanup.push(() => ws.close());
    await new Promise((r) => ws.once("message", r));
    await until(() => counts.length === 2, 9000, "the second count");
    expect(counts).toEqual([1, 4]);
    await until(() => hooks.filter((h) => h.name === "subscription_count").length === 2, 9000, "two subscription_count webhooks");
    expect(hooks.filter((h) => h.name === "subscription_count")).toEqual([
      { name: "subscription_count", channel: name, subscription_count: 1 },
      { name: "subscription_count", channel: name, subscription_count: 4 },
    ]);
    const listed = (await backend(server.url).get({ path: "/channels", params: { info: "subscription_count", filter_by_prefix: name } })) as unknown as Response;
    expect(await listed.json()).toEqual({ channels: { [name]: { subscription_count: 4 } } });
  }, 30_000);

  it("are not sent unless the app turns them on, as on Pusher", async () => {
    const name = channelName("count");
    const client = await pusherClient();
    const counts: unknown[] = [];
    client.subscribe(name).bind("pusher:subscription_count", (d: unknown) => counts.push(d));
    await sleep(1500);
    expect(counts).toEqual([]);
  });
});

describe("Laravel Echo over pusher-js", () => {
  it("listens on an encrypted private channel (encryptedPrivate): the event the backend encrypted arrives decrypted", async () => {
    const { default: Echo } = await import("laravel-echo");
    const signer = backend();
    const echo = new Echo<"pusher">({
      broadcaster: "pusher",
      key: NODE_PUSHER.key,
      cluster: "local",
      wsHost: "127.0.0.1",
      wsPort: portOf(baseUrl()),
      forceTLS: false,
      enabledTransports: ["ws"],
      Pusher,
      channelAuthorization: { customHandler: ({ socketId, channelName: name }: { socketId: string; channelName: string }, callback: (e: Error | null, auth: unknown) => void) => callback(null, signer.authorizeChannel(socketId, name)) },
    } as never);
    cleanup.push(() => echo.disconnect());
    await until(() => echo.connectionStatus() === "connected", 5000, "Echo connected");
    const room = channelName("vault");
    const got: unknown[] = [];
    await ready(echo.encryptedPrivate(room).listen(".SecretShared", (e: unknown) => got.push(e)));
    await signer.trigger(`private-encrypted-${room}`, "SecretShared", { code: "4711" });
    await until(() => got.length === 1);
    expect(got).toEqual([{ code: "4711" }]);
  });
});
