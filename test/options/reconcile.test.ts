// Nothing outlives its owner (DESIGN v1.3): an edge reset without close events leaves its hub
// with links and presence members nobody holds. The hub reconciles them with its edges (on its
// alarm, within a minute), and drops an edge that answers a push with "not here".
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { poolEdgeName } from "../../src/rpc";
import { call, channelName, eventually, hubOf, publishOk, TestSocket, token } from "../helpers";

const KEY = { authorization: "Bearer test-publish-key" };
const presence = async (ch: string) => (await call(`/v1/channels/${ch}/presence`, { headers: KEY })).json<{ count: number; members: { id: string }[] }>();
const stats = async (ch: string) => (await call(`/v1/channels/${ch}`, { headers: KEY })).json<{ subscribers: number; edges?: number }>();
const outbox = (ch: string) =>
  runInDurableObject(hubOf(ch), (_room, state) => state.storage.sql.exec<{ event: string }>("SELECT event FROM webhook_outbox ORDER BY id").toArray().map((r) => JSON.parse(r.event) as { name: string; user_id?: string }));

describe("the hub reconciles its edges and its members on them", () => {
  it("drops members and links an edge no longer holds (as after a reset), with member_removed", async () => {
    const ch = channelName("presence-ghost");
    // A real member on some pool edge, and what a reset edge left behind: a member and a link of an
    // edge that holds nobody.
    const s = await TestSocket.open("/v1/ws");
    await s.expect("welcome");
    s.send({ t: "sub", ch, token: await token({ sub: "alive", ch: [ch] }) });
    await s.take("members", 1);
    const ghostEdge = poolEdgeName("conn", 999);
    await hubOf(ch).attachEdge(ghostEdge, { cursor: null, rewind: 0 }, null);
    await hubOf(ch).presenceJoin(ghostEdge, "ghost-cid", "ghost", null, null);
    expect((await outbox(ch)).filter((e) => e.name === "member_added").map((e) => e.user_id)).toEqual(["alive", "ghost"]);

    // The ghost edge answers the presence push of its own member "not here", and the alarm's
    // reconciliation asks every edge in any case: either way the ghost is gone after it.
    await runDurableObjectAlarm(hubOf(ch));
    expect((await presence(ch)).members.map((m) => m.id)).toEqual(["alive"]);
    expect((await stats(ch)).edges).toBe(1);
    expect((await outbox(ch)).filter((e) => e.name === "member_removed")).toEqual([expect.objectContaining({ user_id: "ghost" })]);
    // The real member was told the ghost left.
    expect(await s.take("leave", 1)).toEqual([expect.objectContaining({ ch, member: expect.objectContaining({ id: "ghost" }) })]);
    s.close();
  });

  it("asks the edges on its alarm: a member row nobody holds goes, with no push to reveal it", async () => {
    const ch = channelName("presence-ghost");
    const s = await TestSocket.open("/v1/ws");
    await s.expect("welcome");
    s.send({ t: "sub", ch, token: await token({ sub: "alive", ch: [ch] }) });
    await s.take("members", 1);
    // A row as a hub keeps it across its own restart, for a connection its edge lost in a reset.
    await runInDurableObject(hubOf(ch), (_room, state) => {
      state.storage.sql.exec("INSERT INTO remote_members (cid, edge, sub, info) VALUES ('lost', ?, 'lost-user', NULL)", poolEdgeName("conn", 997));
    });
    const { evictDurableObject } = await import("cloudflare:test");
    await evictDurableObject(hubOf(ch));
    expect((await presence(ch)).members.map((m) => m.id).sort()).toEqual(["alive", "lost-user"]);
    await runDurableObjectAlarm(hubOf(ch));
    expect((await presence(ch)).members.map((m) => m.id)).toEqual(["alive"]);
    expect((await outbox(ch)).some((e) => e.name === "member_removed" && e.user_id === "lost-user")).toBe(true);
    s.close();
  });

  it("drops an edge that answers a push with 'not here', and the channel becomes empty", async () => {
    const ch = channelName("reset-edge");
    await hubOf(ch).attachEdge(poolEdgeName("conn", 998), { cursor: null, rewind: 0 }, null);
    expect((await stats(ch)).edges).toBe(1);
    await publishOk(ch, "e", 1);
    expect((await eventually(() => stats(ch), (st) => st.edges === undefined, 10_000)).edges).toBeUndefined();
  });

  it("a member whose socket went with the hub's restart (no close event) leaves on the hub's next sweep, with member_removed", async () => {
    const ch = channelName("presence-restart");
    const [alive] = await TestSocket.subscribe(ch, `?token=${await token({ sub: "alive", ch: [ch] })}`);
    await alive.expect("members");
    // What a restart leaves behind: the row of a user announced from the hub's own socket, whose
    // socket is gone (a restart gives no close event). The hub wakes afresh.
    await runInDurableObject(hubOf(ch), (_room, state) => {
      state.storage.sql.exec("INSERT INTO local_members (sub, info) VALUES ('lost', NULL)");
    });
    const { evictDurableObject } = await import("cloudflare:test");
    await evictDurableObject(hubOf(ch));
    await runDurableObjectAlarm(hubOf(ch));
    expect((await outbox(ch)).filter((e) => e.name === "member_removed").map((e) => e.user_id)).toEqual(["lost"]);
    expect((await presence(ch)).members.map((m) => m.id)).toEqual(["alive"]);
    expect(await alive.take("leave", 1)).toEqual([expect.objectContaining({ member: expect.objectContaining({ id: "lost" }) })]);
    // The live member's row stays; a second sweep removes nobody.
    await runDurableObjectAlarm(hubOf(ch));
    expect((await outbox(ch)).filter((e) => e.name === "member_removed")).toHaveLength(1);
    // A member that leaves with a close takes its row with it.
    alive.close();
    await alive.closed;
    const localCount = () => runInDurableObject(hubOf(ch), (room) => (room as unknown as { presence: { localCount(): number } }).presence.localCount());
    expect(await eventually(localCount, (n) => n === 0)).toBe(0);
  });
});
