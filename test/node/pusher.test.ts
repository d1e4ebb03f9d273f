// The Pusher-compatible endpoint driven by the real, unmodified libraries from npm: pusher-js
// (Node build), Laravel Echo over it, and the `pusher` server SDK (DESIGN.md "Pusher-compatible
// endpoint"). Pusher clients and hibercast clients share one namespace: same log, same seqs.
import { createHash, createHmac } from "node:crypto";
import Echo from "laravel-echo";
import PusherServer from "pusher";
import Pusher from "pusher-js";
import WebSocket from "ws";
import { afterAll, describe, expect, it } from "vitest";
import { baseUrl, channelName, publisher, ready, sleep, token, until } from "./helpers";
import { NODE_PUSHER } from "./server";

const port = () => Number(new URL(baseUrl()).port);

/** The app's backend: the official server SDK, pointed at the local worker. */
const backend = (overrides: Partial<{ appId: string; secret: string }> = {}) =>
  new PusherServer({ appId: NODE_PUSHER.appId, key: NODE_PUSHER.key, secret: NODE_PUSHER.secret, host: "127.0.0.1", port: String(port()), useTLS: false, ...overrides });

type PresenceUser = { user_id: string | number; user_info?: unknown };

/** What a browser app's auth endpoint does, done by the SDK in-process (good or, with `secret`, bad). */
function authorizer(user: PresenceUser | null, secret = NODE_PUSHER.secret) {
  const signer = backend({ secret });
  return {
    customHandler: ({ socketId, channelName: name }: { socketId: string; channelName: string }, callback: (error: Error | null, auth: unknown) => void) =>
      // Laravel apps send numeric user ids; the SDK's types say string, the wire takes either.
      callback(null, signer.authorizeChannel(socketId, name, name.startsWith("presence-") && user !== null ? (user as { user_id: string }) : undefined)),
  };
}

const clients: { disconnect(): void }[] = [];
afterAll(() => clients.forEach((c) => c.disconnect()));

/** A pusher-js client, connected to the local worker. */
async function pusherClient(user: PresenceUser | null = null, secret?: string): Promise<Pusher> {
  const client = new Pusher(NODE_PUSHER.key, {
    cluster: "local",
    wsHost: "127.0.0.1",
    wsPort: port(),
    forceTLS: false,
    enabledTransports: ["ws"],
    channelAuthorization: authorizer(user, secret) as never,
  });
  clients.push(client);
  await new Promise<void>((resolve, reject) => {
    client.connection.bind("connected", () => resolve());
    client.connection.bind("failed", () => reject(new Error("pusher-js could not connect")));
  });
  return client;
}

/** Subscribes and waits for `pusher:subscription_succeeded` (answers its data) or the error. */
function subscribed(client: Pusher, name: string): Promise<unknown> {
  const channel = client.subscribe(name);
  return new Promise((resolve, reject) => {
    channel.bind("pusher:subscription_succeeded", resolve);
    channel.bind("pusher:subscription_error", (e: unknown) => reject(Object.assign(new Error("subscription_error"), { data: e })));
  });
}

/** Collects one event's data as pusher-js hands it to the app. */
function collect(client: Pusher, name: string, event: string): unknown[] {
  const got: unknown[] = [];
  client.channel(name)!.bind(event, (data: unknown) => got.push(data));
  return got;
}

/** A raw hibercast subscriber on the same channel (with a token on private and presence channels). */
async function hibercastSocket(name: string): Promise<{ frames: Record<string, unknown>[]; close(): void }> {
  const auth = /^(private|presence)-/.test(name) ? `?token=${await token({ sub: "watcher", ch: [name] })}` : "";
  const ws = new WebSocket(`${baseUrl().replace("http", "ws")}/v1/channels/${name}/ws${auth}`);
  const frames: Record<string, unknown>[] = [];
  ws.on("message", (data) => frames.push(JSON.parse(String(data))));
  await until(() => frames.some((f) => f.t === "welcome"), 5000, "welcome");
  return { frames, close: () => ws.close() };
}

describe("pusher-js and the pusher server SDK", () => {
  it("connects with a digits.digits socket_id and receives what the SDK triggers, as the publisher sent it", async () => {
    const client = await pusherClient();
    expect(client.connection.socket_id).toMatch(/^\d+\.\d+$/);
    const name = channelName("pz-public");
    await subscribed(client, name);
    const got = collect(client, name, "greet");
    const res = await backend().trigger(name, "greet", { hello: "world", n: 1 });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
    await backend().trigger(name, "greet", "plain text");
    await until(() => got.length === 2, 5000, "two events");
    expect(got).toEqual([{ hello: "world", n: 1 }, "plain text"]);
  });

  it("shares one log with hibercast clients: same seqs, data mapped both ways", async () => {
    const name = channelName("pz-shared");
    const client = await pusherClient();
    await subscribed(client, name);
    const got = collect(client, name, "tick");
    const raw = await hibercastSocket(name);
    await backend().trigger(name, "tick", { from: "pusher" });
    await publisher().publish(name, "tick", { from: "hibercast" });
    await until(() => got.length === 2 && raw.frames.filter((f) => f.t === "msg").length === 2, 5000, "both events on both sides");
    expect(got).toEqual([{ from: "pusher" }, { from: "hibercast" }]);
    const msgs = raw.frames.filter((f) => f.t === "msg");
    expect(msgs.map((m) => [m.seq, m.d])).toEqual([
      [1, { from: "pusher" }],
      [2, { from: "hibercast" }],
    ]);
    const history = (await (await fetch(`${baseUrl()}/v1/channels/${name}/messages`)).json()) as { messages: { seq: number; e: string }[] };
    expect(history.messages.map((m) => [m.seq, m.e])).toEqual([
      [1, "tick"],
      [2, "tick"],
    ]);
    raw.close();
  });

  it("leaves out the connection named by socket_id (trigger and triggerBatch)", async () => {
    const name = channelName("pz-exclude");
    const [a, b] = [await pusherClient(), await pusherClient()];
    await Promise.all([subscribed(a, name), subscribed(b, name)]);
    const [gotA, gotB] = [collect(a, name, "e"), collect(b, name, "e")];
    await backend().trigger(name, "e", { n: 1 }, { socket_id: a.connection.socket_id });
    await backend().triggerBatch([
      { channel: name, name: "e", data: { n: 2 }, socket_id: b.connection.socket_id },
      { channel: name, name: "e", data: { n: 3 } },
    ]);
    await until(() => gotA.length === 2 && gotB.length === 2, 5000, "events");
    expect(gotA).toEqual([{ n: 2 }, { n: 3 }]);
    expect(gotB).toEqual([{ n: 1 }, { n: 3 }]);
  });

  it("subscribes to private channels with a good signature and refuses a bad one, keeping the socket", async () => {
    const good = await pusherClient();
    const name = channelName("private-pz");
    await subscribed(good, name);
    const got = collect(good, name, "secret");
    await backend().trigger(name, "secret", { ok: true });
    await until(() => got.length === 1, 5000, "private event");

    const forged = await pusherClient(null, "not-the-secret");
    const refusal = await subscribed(forged, channelName("private-pz")).catch((e: { data: unknown }) => e.data);
    expect(refusal).toMatchObject({ type: "AuthError", status: 401 });
    // The connection stays open and may subscribe elsewhere.
    await subscribed(forged, channelName("pz-after-refusal"));
    expect(forged.connection.state).toBe("connected");
  });

  it("keeps presence per user: member list with info, member_added / member_removed, users endpoint", async () => {
    const name = channelName("presence-pz");
    const ann = await pusherClient({ user_id: 1, user_info: { name: "Ann" } });
    const first = (await subscribed(ann, name)) as { count: number; me: { id: unknown; info: unknown } };
    expect(first.count).toBe(1);
    expect(first.me).toEqual({ id: 1, info: { name: "Ann" } });
    const added: unknown[] = [];
    const removed: unknown[] = [];
    ann.channel(name)!.bind("pusher:member_added", (m: unknown) => added.push(m));
    ann.channel(name)!.bind("pusher:member_removed", (m: unknown) => removed.push(m));

    const bob = await pusherClient({ user_id: "bob", user_info: { name: "Bob" } });
    const bobTwo = await pusherClient({ user_id: "bob", user_info: { name: "Bob" } });
    const members = (await subscribed(bob, name)) as { count: number; members: Record<string, unknown> };
    await subscribed(bobTwo, name);
    expect(members.count).toBe(2);
    expect(members.members).toEqual({ "1": { name: "Ann" }, bob: { name: "Bob" } });
    await until(() => added.length === 1, 5000, "member_added");
    expect(added).toEqual([{ id: "bob", info: { name: "Bob" } }]);

    const users = await backend().get({ path: `/channels/${name}/users` });
    expect(((await users.json()) as { users: { id: string }[] }).users.map((u) => u.id).sort()).toEqual(["1", "bob"]);
    const info = await backend().get({ path: `/channels/${name}`, params: { info: "user_count,subscription_count" } });
    expect(await info.json()).toEqual({ occupied: true, user_count: 2, subscription_count: 3 });

    // Bob's first socket goes: he is still there. His last goes: member_removed, once.
    bob.disconnect();
    await sleep(300);
    expect(removed).toEqual([]);
    bobTwo.disconnect();
    await until(() => removed.length === 1, 5000, "member_removed");
    expect(removed).toEqual([{ id: "bob", info: { name: "Bob" } }]);
  });

  it("relays client events on private and presence channels to others only, with user_id on presence", async () => {
    const name = channelName("presence-pz-typing");
    const ann = await pusherClient({ user_id: "ann" });
    const bob = await pusherClient({ user_id: "bob" });
    await Promise.all([subscribed(ann, name), subscribed(bob, name)]);
    const raw = await hibercastSocket(name);
    const toAnn: unknown[] = [];
    const toBob: { data: unknown; meta: unknown }[] = [];
    ann.channel(name)!.bind("client-typing", (d: unknown) => toAnn.push(d));
    bob.channel(name)!.bind("client-typing", (data: unknown, meta: unknown) => toBob.push({ data, meta }));
    ann.channel(name)!.trigger("client-typing", { typing: true });
    await until(() => toBob.length === 1 && raw.frames.some((f) => f.t === "msg"), 5000, "client event");
    expect(toBob[0]).toEqual({ data: { typing: true }, meta: { user_id: "ann" } });
    // Logged like any message: hibercast subscribers see it, with the sender as `u`.
    expect(raw.frames.find((f) => f.t === "msg")).toMatchObject({ e: "client-typing", d: { typing: true }, u: "ann", seq: 1 });
    await sleep(200);
    expect(toAnn).toEqual([]);
    raw.close();
  });

  it("refuses client events on public channels and past 10 a second, keeping the socket", async () => {
    const client = await pusherClient();
    const errors: { code: number | null; message: string }[] = [];
    client.connection.bind("error", (e: { data?: { code: number | null; message: string } }) => e.data && errors.push(e.data));
    const pub = channelName("pz-public-client");
    await subscribed(client, pub);
    client.channel(pub)!.trigger("client-x", {});
    await until(() => errors.length === 1, 5000, "refusal");
    expect(errors[0]).toMatchObject({ code: null, message: expect.stringContaining("only supported on private and presence channels") });

    const priv = channelName("private-pz-rate");
    await subscribed(client, priv);
    for (let i = 0; i < 25; i++) client.channel(priv)!.trigger("client-burst", { i }); // past 10 in a second, wherever a second ends
    await until(() => errors.some((e) => e.code === 4301), 5000, "rate limit error");
    expect(client.connection.state).toBe("connected");
  });
});

describe("the HTTP API's signature checks", () => {
  /** A request signed by hand, as the SDK signs it, with parts to break. */
  async function signed(method: "GET" | "POST", path: string, options: { body?: string; timestamp?: number; md5?: string; params?: Record<string, string>; secret?: string } = {}) {
    const params: Record<string, string> = { auth_key: NODE_PUSHER.key, auth_timestamp: String(options.timestamp ?? Math.floor(Date.now() / 1000)), auth_version: "1.0", ...options.params };
    if (options.body !== undefined) params.body_md5 = options.md5 ?? createHash("md5").update(options.body).digest("hex");
    const query = Object.keys(params)
      .sort()
      .map((k) => `${k}=${params[k]}`)
      .join("&");
    const signature = createHmac("sha256", options.secret ?? NODE_PUSHER.secret).update(`${method}\n${path}\n${query}`).digest("hex");
    const res = await fetch(`${baseUrl()}${path}?${query}&auth_signature=${signature}`, { method, body: options.body, headers: options.body ? { "content-type": "application/json" } : {} });
    return { status: res.status, text: await res.text() };
  }
  const events = `/apps/${NODE_PUSHER.appId}/events`;
  const body = JSON.stringify({ name: "e", data: "{}", channel: "pz-signed" });

  it("accepts what is signed right", async () => {
    expect(await signed("POST", events, { body })).toEqual({ status: 200, text: "{}" });
  });

  it("answers 401 to a bad signature, a stale timestamp and a body_md5 mismatch, with a reason", async () => {
    expect(await signed("POST", events, { body, secret: "wrong" })).toMatchObject({ status: 401, text: expect.stringContaining("Invalid signature") });
    expect(await signed("POST", events, { body, timestamp: Math.floor(Date.now() / 1000) - 601 })).toMatchObject({ status: 401, text: expect.stringContaining("Timestamp expired") });
    expect(await signed("POST", events, { body, md5: "0".repeat(32) })).toMatchObject({ status: 401, text: expect.stringContaining("body_md5") });
  });

  it("answers 403 to another app id, and the SDK sees each failure as a RequestError with the status", async () => {
    expect(await signed("POST", `/apps/999/events`, { body })).toMatchObject({ status: 403 });
    await expect(backend({ appId: "999" }).trigger("pz-x", "e", {})).rejects.toMatchObject({ status: 403 });
    await expect(backend({ secret: "wrong" }).trigger("pz-x", "e", {})).rejects.toMatchObject({ status: 401 });
  });

  it("answers 400 to a bad body and to more than 100 channels", async () => {
    expect(await signed("POST", events, { body: "not json" })).toMatchObject({ status: 400 });
    const many = JSON.stringify({ name: "e", data: "{}", channels: Array.from({ length: 101 }, (_, i) => `c${i}`) });
    expect(await signed("POST", events, { body: many })).toMatchObject({ status: 400, text: expect.stringContaining("100") });
    expect(await signed("POST", events, { body: JSON.stringify({ name: "e", data: "{}", channel: "bad name!" }) })).toMatchObject({ status: 400 });
  });

  it("lists occupied channels by prefix, with user counts for presence channels", async () => {
    const prefix = channelName("presence-pzlist");
    const client = await pusherClient({ user_id: "lister" });
    await subscribed(client, `${prefix}-a`);
    const sdk = backend();
    let listed: Record<string, unknown> = {};
    // The hub tells the directory from its alarm: listed within moments.
    for (let i = 0; i < 50 && !(`${prefix}-a` in listed); i++) {
      listed = ((await (await sdk.get({ path: "/channels", params: { filter_by_prefix: prefix, info: "user_count" } })).json()) as { channels: Record<string, unknown> }).channels;
      await sleep(100);
    }
    expect(listed).toEqual({ [`${prefix}-a`]: { user_count: 1 } });
    const wrong = await signed("GET", `/apps/${NODE_PUSHER.appId}/channels`, { params: { info: "user_count" } });
    expect(wrong.status).toBe(400);
  });
});

describe("Laravel Echo over pusher-js", () => {
  async function echo(user: PresenceUser | null = null): Promise<Echo<"pusher">> {
    const e = new Echo<"pusher">({
      broadcaster: "pusher",
      key: NODE_PUSHER.key,
      cluster: "local",
      wsHost: "127.0.0.1",
      wsPort: port(),
      forceTLS: false,
      enabledTransports: ["ws"],
      Pusher,
      channelAuthorization: authorizer(user),
    } as never);
    clients.push(e);
    await until(() => e.connectionStatus() === "connected", 5000, "Echo connected");
    return e;
  }

  it("listens to a broadcast event, a private channel, and skips the sender with toOthers (X-Socket-ID)", async () => {
    const a = await echo();
    const b = await echo();
    const orders = channelName("orders");
    const gotA: unknown[] = [];
    const gotB: unknown[] = [];
    const priv = channelName("user");
    const privGot: unknown[] = [];
    // Triggered once all three subscriptions succeeded (Echo's `subscribed`).
    await Promise.all([
      ready(a.channel(orders).listen("OrderShipped", (e: unknown) => gotA.push(e))),
      ready(b.channel(orders).listen("OrderShipped", (e: unknown) => gotB.push(e))),
      ready(a.private(priv).listen(".balance", (e: unknown) => privGot.push(e))),
    ]);
    // What Laravel's broadcaster sends: the event class as the name, `socket_id` from X-Socket-ID.
    await backend().trigger(orders, "App\\Events\\OrderShipped", { id: 1 }, { socket_id: a.socketId() });
    await backend().trigger(`private-${priv}`, "balance", { cents: 500 });
    await until(() => gotB.length === 1 && privGot.length === 1, 5000, "Echo events");
    expect(gotB).toEqual([{ id: 1 }]);
    expect(privGot).toEqual([{ cents: 500 }]);
    await sleep(200);
    expect(gotA).toEqual([]);
  });

  it("joins a presence channel: here, joining, leaving and whispers", async () => {
    const room = channelName("chat");
    const ann = await echo({ user_id: 1, user_info: { name: "Ann" } });
    const here: unknown[][] = [];
    const joining: unknown[] = [];
    const leaving: unknown[] = [];
    const whispers: unknown[] = [];
    ann
      .join(room)
      .here((users: unknown[]) => here.push(users))
      .joining((u: unknown) => joining.push(u))
      .leaving((u: unknown) => leaving.push(u))
      .listenForWhisper("typing", (w: unknown) => whispers.push(w));
    await until(() => here.length === 1, 5000, "here");
    expect(here[0]).toEqual([{ name: "Ann" }]);

    const bob = await echo({ user_id: 2, user_info: { name: "Bob" } });
    const bobHere: unknown[][] = [];
    const bobRoom = bob.join(room).here((users: unknown[]) => bobHere.push(users));
    await until(() => bobHere.length === 1 && joining.length === 1, 5000, "Bob joined");
    expect(bobHere[0]).toEqual(expect.arrayContaining([{ name: "Ann" }, { name: "Bob" }]));
    expect(joining).toEqual([{ name: "Bob" }]);

    bobRoom.whisper("typing", { who: "Bob" });
    await until(() => whispers.length === 1, 5000, "whisper");
    expect(whispers).toEqual([{ who: "Bob" }]);

    bob.leave(room);
    await until(() => leaving.length === 1, 5000, "leaving");
    expect(leaving).toEqual([{ name: "Bob" }]);
  });
});
