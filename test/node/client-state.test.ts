// The SDK's connection and subscription state against a fake socket: the test plays the server
// frame by frame, so the moments a real server rarely shows on cue (a re-subscribe refused after
// a reconnect, a late frame from a socket already given up on) are each one line.
import { afterEach, describe, expect, it, vi } from "vitest";
import { connect, Connection, HibercastError, subscribe, type MsgFrame, type ServerFrame, type StateChange, type Subscription, type WebSocketLike } from "../../src/client/index";

/** The server's end of one socket the SDK opened. */
class FakeSocket implements WebSocketLike {
  readyState = 0;
  readonly url: URL;
  /** What the SDK sent, parsed (pings stay strings). */
  readonly sent: unknown[] = [];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- events of several shapes
  private readonly listeners = new Map<string, ((event: any) => void)[]>();

  constructor(url: string) {
    this.url = new URL(url);
  }

  addEventListener(type: string, listener: (event: unknown) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  send(data: string): void {
    this.sent.push(data === "ping" ? data : JSON.parse(data));
  }

  close(): void {
    this.readyState = 3; // the SDK has let go of the socket when it closes it
  }

  /** The server accepts: open, then its first frame. */
  accept(welcome: ServerFrame): void {
    this.readyState = 1;
    this.fire("open", {});
    this.push(welcome);
  }

  push(...frames: ServerFrame[]): void {
    for (const f of frames) this.fire("message", { data: JSON.stringify(f) });
  }

  /** The server (or the network) closes it. */
  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.fire("close", { code, reason });
  }

  private fire(type: string, event: unknown): void {
    for (const l of this.listeners.get(type) ?? []) l(event);
  }
}

/** A WebSocket class to pass as `options.WebSocket`, and every socket the SDK opened with it. */
function fakeServer() {
  const sockets: FakeSocket[] = [];
  const WebSocket = class extends FakeSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  };
  /** The i-th socket, once the SDK has opened it (reconnects wait for a backoff timer). */
  const socket = (i: number) =>
    vi.waitFor(() => {
      if (sockets[i] === undefined) throw new Error(`no socket #${i} yet`);
      return sockets[i];
    });
  return { WebSocket, sockets, socket };
}

// Backoff of 0-1 ms: reconnects come at once.
const options = (server: ReturnType<typeof fakeServer>) => ({ url: "https://rt.example", WebSocket: server.WebSocket, backoff: { initialMs: 1, maxMs: 1 } });
const msg = (ch: string, seq: number): MsgFrame => ({ t: "msg", ch, seq, id: `m${seq}`, e: "e", d: seq, ts: 0 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const toClose: { close(): void }[] = [];
afterEach(() => {
  for (const c of toClose.splice(0)) c.close();
});

/** What the app sees of a subscription: state changes, seqs delivered, errors and closes. */
function watch(sub: Subscription) {
  const seen = { states: [] as string[], changes: [] as StateChange[], seqs: [] as number[], errors: [] as HibercastError[], closes: [] as unknown[] };
  sub.connection.on("state", (c) => {
    seen.changes.push(c);
    seen.states.push(`${c.oldState}→${c.newState}${c.reason ? ` (${c.reason})` : ""}`);
  });
  sub.on("*", (_d, m) => seen.seqs.push(m.seq));
  sub.connection.on("error", (e) => seen.errors.push(e));
  sub.connection.on("close", (c) => seen.closes.push(c));
  return seen;
}

describe("multiplexed subscription state (fake socket)", () => {
  it("is subscribing until the server answers the sub, then subscribed; ready() resolves", async () => {
    const server = fakeServer();
    const conn = connect(options(server));
    toClose.push(conn);
    const a = conn.subscribe("a");
    const seen = watch(a);
    const s0 = server.sockets[0]!;
    expect(s0.url.href).toBe("wss://rt.example/v1/ws");
    expect(a.subscriptionState).toBe("subscribing");

    s0.accept({ t: "welcome", v: 2, cid: "c1" });
    expect(s0.sent).toEqual([{ t: "sub", ch: "a" }]);
    expect(a.subscriptionState).toBe("subscribing"); // the connection is open, the channel not yet

    s0.push({ t: "subscribed", ch: "a", seq: 3, epoch: "e1" });
    await expect(a.ready()).resolves.toBeUndefined();
    expect(a.subscriptionState).toBe("subscribed");
    expect(a.cid).toBe("c1");
    expect(seen.states).toEqual(["subscribing→subscribed"]);
  });

  it("after a drop, subscribes again from its cursor (since and epoch) and is subscribed again", async () => {
    const server = fakeServer();
    const conn = connect(options(server));
    toClose.push(conn);
    const a = conn.subscribe("a");
    const seen = watch(a);
    const s0 = server.sockets[0]!;
    s0.accept({ t: "welcome", v: 2, cid: "c1" });
    s0.push({ t: "subscribed", ch: "a", seq: 3, epoch: "e1" }, { t: "batch", f: [msg("a", 4), msg("a", 5)] });

    s0.drop(1006);
    expect(a.subscriptionState).toBe("subscribing");
    const s1 = await server.socket(1);
    s1.accept({ t: "welcome", v: 2, cid: "c2" });
    expect(s1.sent).toEqual([{ t: "sub", ch: "a", since: 5, epoch: "e1" }]);
    s1.push({ t: "subscribed", ch: "a", seq: 6, epoch: "e1" }, msg("a", 6));

    expect(seen.seqs).toEqual([4, 5, 6]);
    expect(a.cid).toBe("c2");
    expect(seen.states).toEqual(["subscribing→subscribed", "subscribed→subscribing (connection_lost)", "subscribing→subscribed"]);
    expect(seen.closes).toEqual([]); // a drop is not the end of the subscription
  });

  it("a re-subscribe refused after a reconnect ends that channel with the error; the others go on", async () => {
    const server = fakeServer();
    const conn = connect(options(server));
    toClose.push(conn);
    const a = conn.subscribe("a", { token: "token-a" });
    const b = conn.subscribe("b");
    const [seenA, seenB] = [watch(a), watch(b)];
    const s0 = server.sockets[0]!;
    s0.accept({ t: "welcome", v: 2, cid: "c1" });
    s0.push({ t: "subscribed", ch: "a", seq: 0, epoch: "e1" }, { t: "subscribed", ch: "b", seq: 0, epoch: "eb" }, msg("a", 1));
    s0.drop(1006);

    // Back after the outage, a's per-channel token has expired meanwhile.
    const s1 = await server.socket(1);
    s1.accept({ t: "welcome", v: 2, cid: "c2" });
    expect(s1.sent).toEqual([
      { t: "sub", ch: "a", since: 1, epoch: "e1", token: "token-a" },
      { t: "sub", ch: "b", since: 0, epoch: "eb" },
    ]);
    s1.push({ t: "batch", f: [{ t: "err", ch: "a", code: "unauthorized", message: "token expired" }, { t: "subscribed", ch: "b", seq: 0, epoch: "eb" }] });

    expect(a.subscriptionState).toBe("unsubscribed");
    expect(seenA.states).toEqual(["subscribing→subscribed", "subscribed→subscribing (connection_lost)", "subscribing→unsubscribed (refused)"]);
    expect(seenA.changes.at(-1)!.error).toMatchObject({ code: "unauthorized", message: "token expired" });
    expect(seenA.errors.map((e) => e.code)).toEqual(["unauthorized"]);
    expect(seenA.closes).toEqual([{ code: 1000, reason: "token expired", error: expect.objectContaining({ code: "unauthorized" }) }]);
    await expect(a.ready()).rejects.toMatchObject({ code: "unauthorized" });
    await expect(a.publish("e", 1)).rejects.toMatchObject({ code: "closed" });

    // b did not notice: subscribed, and its messages keep coming.
    s1.push(msg("b", 1), msg("a", 2));
    expect(b.subscriptionState).toBe("subscribed");
    expect(seenB.seqs).toEqual([1]);
    expect(seenA.seqs).toEqual([1]);

    // The connection no longer holds a: the next reconnect subscribes b alone...
    s1.drop(1006);
    const s2 = await server.socket(2);
    s2.accept({ t: "welcome", v: 2, cid: "c3" });
    expect(s2.sent).toEqual([{ t: "sub", ch: "b", since: 1, epoch: "eb" }]);
    // ...and the app may subscribe a again with a fresh token, resuming where it stopped.
    const again = conn.subscribe("a", { since: a.cursor!, token: "fresh" });
    expect(s2.sent.at(-1)).toEqual({ t: "sub", ch: "a", since: 1, epoch: "e1", token: "fresh" });
    s2.push({ t: "subscribed", ch: "a", seq: 2, epoch: "e1" }, msg("a", 2));
    expect(again.subscriptionState).toBe("subscribed");
  });

  it("an err about a subscribed channel that does not answer its sub is reported; it stays subscribed", () => {
    const server = fakeServer();
    const conn = connect(options(server));
    toClose.push(conn);
    const a = conn.subscribe("a");
    const seen = watch(a);
    const s0 = server.sockets[0]!;
    s0.accept({ t: "welcome", v: 2, cid: "c1" });
    s0.push({ t: "subscribed", ch: "a", seq: 0, epoch: "e1" });
    // The late answer to a publish the app already gave up waiting for.
    s0.push({ t: "err", ch: "a", id: "late-pub", code: "forbidden", message: "no pub grant" }, msg("a", 1));
    expect(seen.errors.map((e) => e.code)).toEqual(["forbidden"]);
    expect(a.subscriptionState).toBe("subscribed");
    expect(seen.seqs).toEqual([1]);
  });

  it("the server ending a subscription (unsubscribed with a code) ends it with that error", () => {
    const server = fakeServer();
    const conn = connect(options(server));
    toClose.push(conn);
    const a = conn.subscribe("a");
    const seen = watch(a);
    const s0 = server.sockets[0]!;
    s0.accept({ t: "welcome", v: 2, cid: "c1" });
    s0.push({ t: "subscribed", ch: "a", seq: 0, epoch: "e1" }, { t: "unsubscribed", ch: "a", code: "unauthorized", message: "token expired" });
    expect(seen.states.at(-1)).toBe("subscribed→unsubscribed (server_ended)");
    expect(seen.closes).toEqual([{ code: 1000, reason: "token expired", error: expect.objectContaining({ code: "unauthorized" }) }]);
  });

  it("close(): the channel sends unsub and ends; closing the connection ends the rest, and it takes no new channel", async () => {
    const server = fakeServer();
    const conn = connect(options(server));
    const [a, b] = [conn.subscribe("a"), conn.subscribe("b")];
    const [seenA, seenB] = [watch(a), watch(b)];
    const s0 = server.sockets[0]!;
    s0.accept({ t: "welcome", v: 2, cid: "c1" });
    s0.push({ t: "subscribed", ch: "a", seq: 0, epoch: "e1" });

    a.close();
    expect(s0.sent.at(-1)).toEqual({ t: "unsub", ch: "a" });
    expect(seenA.states.at(-1)).toBe("subscribed→unsubscribed (client_closed)");
    expect(seenA.closes).toEqual([{ code: 1000, reason: "unsubscribed" }]);

    const bReady = b.ready(); // b was still subscribing
    conn.close();
    expect(seenB.states).toEqual(["subscribing→unsubscribed (client_closed)"]);
    await expect(bReady).rejects.toMatchObject({ code: "closed" });
    expect(() => conn.subscribe("c")).toThrow(HibercastError);
  });
});

describe("single-channel subscription state (fake socket)", () => {
  it("welcome → subscribed; a drop → subscribing, and the reconnect resumes with since and epoch", async () => {
    const server = fakeServer();
    const sub = subscribe({ ...options(server), url: "http://localhost:8787", channel: "room" });
    toClose.push(sub);
    const seen = watch(sub);
    const s0 = server.sockets[0]!;
    expect(s0.url.href).toBe("ws://localhost:8787/v1/channels/room/ws?batch=1");
    s0.accept({ t: "welcome", v: 1, ch: "room", cid: "c1", seq: 7, epoch: "e1" });
    expect([sub.subscriptionState, sub.connectionState]).toEqual(["subscribed", "open"]);
    s0.push(msg("room", 8));

    s0.drop(1006);
    expect([sub.subscriptionState, sub.connectionState]).toEqual(["subscribing", "reconnecting"]);
    const s1 = await server.socket(1);
    expect(Object.fromEntries(s1.url.searchParams)).toEqual({ batch: "1", since: "8", epoch: "e1" });
    s1.accept({ t: "welcome", v: 1, ch: "room", cid: "c2", seq: 8, epoch: "e1" });
    expect(seen.states).toEqual(["subscribing→subscribed", "subscribed→subscribing (connection_lost)", "subscribing→subscribed"]);
  });

  it("4403 ends it unsubscribed (refused, forbidden) and it does not reconnect", async () => {
    const server = fakeServer();
    const sub = subscribe({ ...options(server), channel: "private-x" });
    toClose.push(sub);
    const seen = watch(sub);
    const ready = sub.ready();
    server.sockets[0]!.drop(4403, "not granted");
    expect(seen.states).toEqual(["subscribing→unsubscribed (refused)"]);
    expect(seen.changes[0]!.error).toMatchObject({ code: "forbidden", status: 4403 });
    await expect(ready).rejects.toMatchObject({ code: "forbidden" });
    await sleep(20);
    expect(server.sockets).toHaveLength(1);
  });

  it("4401 fetches a fresh token once and reconnects with it; refused again, it ends", async () => {
    const server = fakeServer();
    let fetched = 0;
    const sub = subscribe({ ...options(server), channel: "private-x", token: "t0", getToken: async () => `t${++fetched}` });
    toClose.push(sub);
    const seen = watch(sub);
    const s0 = server.sockets[0]!;
    expect(s0.url.searchParams.get("token")).toBe("t0");
    s0.accept({ t: "welcome", v: 1, ch: "private-x", cid: "c1", seq: 0, epoch: "e1" });
    s0.drop(4401, "token expired");
    expect(sub.subscriptionState).toBe("subscribing");

    const s1 = await server.socket(1);
    expect(s1.url.searchParams.get("token")).toBe("t1");
    expect(fetched).toBe(1);
    s1.drop(4401, "token refused"); // the fresh one is refused too, before any welcome

    await vi.waitFor(() => expect(sub.subscriptionState).toBe("unsubscribed"));
    expect(fetched).toBe(1);
    expect(server.sockets).toHaveLength(2);
    expect(seen.states).toEqual(["subscribing→subscribed", "subscribed→subscribing (connection_lost)", "subscribing→unsubscribed (refused)"]);
    expect(seen.changes.at(-1)!.error).toMatchObject({ code: "unauthorized" });
  });
});

describe("Connection (fake socket)", () => {
  const user = { url: () => new URL("ws://fake.test/x"), frame: () => {}, welcomed: () => {} };

  it("state goes connecting → open → reconnecting → open → closed, and cannot be set from outside", async () => {
    const server = fakeServer();
    const conn = new Connection({ WebSocket: server.WebSocket, backoff: { initialMs: 1, maxMs: 1 } }, user);
    toClose.push(conn);
    conn.start();
    const seen = [conn.state];
    server.sockets[0]!.accept({ t: "welcome", v: 1, ch: "x", cid: "c1", seq: 0, epoch: "e1" });
    seen.push(conn.state);
    server.sockets[0]!.drop(1006);
    seen.push(conn.state);
    (await server.socket(1)).accept({ t: "welcome", v: 1, ch: "x", cid: "c2", seq: 0, epoch: "e1" });
    seen.push(conn.state);
    conn.close();
    seen.push(conn.state);
    expect(seen).toEqual(["connecting", "open", "reconnecting", "open", "closed"]);
    expect(() => ((conn as { state: string }).state = "open")).toThrow(TypeError);
  });

  it("a getToken that fails after close() opens no socket", async () => {
    const server = fakeServer();
    let fail!: (err: Error) => void;
    const conn = new Connection({ WebSocket: server.WebSocket, getToken: () => new Promise<string>((_, reject) => (fail = reject)) }, user);
    conn.start();
    conn.close();
    fail(new Error("offline"));
    await sleep(20);
    expect(server.sockets).toHaveLength(0);
    expect(conn.state).toBe("closed");
  });

  it("a late welcome on a socket given up on (connect timeout) does not count as open", async () => {
    const server = fakeServer();
    const conn = new Connection({ WebSocket: server.WebSocket, connectTimeoutMs: 5, backoff: { initialMs: 1000, maxMs: 1000 } }, user);
    toClose.push(conn);
    conn.start();
    await vi.waitFor(() => expect(conn.state).toBe("reconnecting"));
    server.sockets[0]!.accept({ t: "welcome", v: 1, ch: "x", cid: "c1", seq: 0, epoch: "e1" });
    expect(conn.state).toBe("reconnecting");
  });
});
