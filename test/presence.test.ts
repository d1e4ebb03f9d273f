import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, channelName, expiresSoon, hubOf, TestSocket, token } from "./helpers";

const stubOf = hubOf;
const join = async (ch: string, sub: string, info?: unknown) => {
  const [s, welcome] = await TestSocket.subscribe(ch, `?token=${await token({ sub, ch: ["presence-*"], info })}`);
  return { s, welcome, members: await s.expect("members") };
};
const presenceOf = async (ch: string) =>
  (await call(`/v1/channels/${ch}/presence`, { headers: { authorization: "Bearer test-publish-key" } })).json<{ members: { id: string }[]; count: number }>();

describe("presence", () => {
  it("sends members on join and join/leave to others, one member per sub", async () => {
    const ch = channelName("presence-room");
    const alice = await join(ch, "alice", { name: "Alice" });
    expect(alice.members).toEqual({ t: "members", members: [{ id: "alice", info: { name: "Alice" } }], count: 1 });

    const bob = await join(ch, "bob");
    expect(bob.members).toMatchObject({ t: "members", count: 2 });
    expect(await alice.s.next()).toEqual({ t: "join", member: { id: "bob", info: null } });

    // A second socket of alice's is not a new member…
    const alice2 = await join(ch, "alice", { name: "Alice" });
    expect(alice2.members).toMatchObject({ count: 2 });
    expect(await bob.s.settle()).toEqual([]);
    // …and alice leaves only when her last socket closes.
    alice.s.close();
    await alice.s.closed;
    expect(await bob.s.settle()).toEqual([]);
    alice2.s.close();
    await alice2.s.closed;
    expect(await bob.s.next()).toEqual({ t: "leave", member: { id: "alice", info: { name: "Alice" } } });
    expect(await presenceOf(ch)).toEqual({ members: [{ id: "bob", info: null }], count: 1 });
  });

  it("survives hibernation: members are rebuilt from the sockets' attachments", async () => {
    const ch = channelName("presence-hib");
    const alice = await join(ch, "alice");
    await join(ch, "bob");
    await alice.s.next(); // join bob
    await evictDurableObject(stubOf(ch));
    expect((await presenceOf(ch)).count).toBe(2);
    const carol = await join(ch, "carol");
    expect(carol.members.members.map((m: { id: string }) => m.id).sort()).toEqual(["alice", "bob", "carol"]);
    expect(await alice.s.next()).toEqual({ t: "join", member: { id: "carol", info: null } });
  });

  it("sweeps members whose sockets stopped pinging", async () => {
    const ch = channelName("presence-sweep");
    const alive = await join(ch, "alive");
    const silent = await join(ch, "silent");
    await alive.s.next(); // join silent
    // Both connected long ago; only `alive` pings now (answered by the runtime's auto-response).
    await runInDurableObject(stubOf(ch), (_room, state) => {
      for (const ws of state.getWebSockets("p")) ws.serializeAttachment({ ...ws.deserializeAttachment(), at: Date.now() - 120_000 });
    });
    alive.s.send("ping");
    expect(await alive.s.next()).toEqual({ raw: "pong" });
    await runDurableObjectAlarm(stubOf(ch));
    expect((await silent.s.closed).code).toBe(4408);
    expect(await alive.s.next()).toEqual({ t: "leave", member: { id: "silent", info: null } });
    expect(await presenceOf(ch)).toEqual({ members: [{ id: "alive", info: null }], count: 1 });
  });

  it("GET presence needs a presence- channel and a token for it", async () => {
    expect((await call(`/v1/channels/${channelName("plain")}/presence`)).status).toBe(400);
    const ch = channelName("presence-auth");
    expect((await call(`/v1/channels/${ch}/presence`)).status).toBe(401);
    const t = await token({ sub: "u", ch: [ch] });
    expect(await (await call(`/v1/channels/${ch}/presence?token=${t}`)).json()).toEqual({ members: [], count: 0 });
  });

  it("counts presence members in stats", async () => {
    const ch = channelName("presence-stats");
    await join(ch, "a");
    await join(ch, "a");
    const stats = await (await call(`/v1/channels/${ch}`, { headers: { authorization: "Bearer test-publish-key" } })).json();
    expect(stats).toMatchObject({ subscribers: 2, presence: 1 });
  });
});

describe("token expiry on open sockets", () => {
  it("closes a socket with 4401 once its token expired (the room's own alarm)", async () => {
    const ch = channelName("private-exp");
    const [s] = await TestSocket.subscribe(ch, `?token=${await token({ sub: "u", ch: [ch] }, { expiresIn: expiresSoon() })}`);
    // No help from the test: the alarm the room set for the expiry fires by itself.
    expect(await s.next(5000)).toMatchObject({ t: "err", code: "unauthorized", message: "token expired" });
    expect((await s.closed).code).toBe(4401);
  });

  it("keeps a socket that sent a fresh token with the auth frame", async () => {
    const ch = channelName("private-exp");
    const first = expiresSoon();
    const [s] = await TestSocket.subscribe(ch, `?token=${await token({ sub: "u", ch: [ch] }, { expiresIn: first })}`);
    s.send({ t: "auth", token: await token({ sub: "u", ch: [ch] }, { expiresIn: "1h" }) });
    // Past the first token's end: the socket lives on the fresh one.
    expect(await s.settle(first * 1000 - Date.now() + 200)).toEqual([]);
    await runDurableObjectAlarm(stubOf(ch));
    s.send("ping");
    expect(await s.next()).toEqual({ raw: "pong" });
  });
});
