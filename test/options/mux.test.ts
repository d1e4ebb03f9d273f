// Many channels over one socket (`GET /v1/ws`, DESIGN.md "Edges → Multiplexed connections"):
// a connection on an edge of the pool, `sub`/`unsub` per channel, `ch` on every channel frame,
// batch frames always. This project sets MAX_SUBSCRIPTIONS=3 and shards "shard-*" over 3 edges.
import { poolEdgeName } from "../../src/rpc";
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ServerFrame } from "../../src/protocol";
import { call, channelName, edgeOf, expiresSoon, pastExp, publishOk, TestSocket, token, type Frame } from "../helpers";

/** A multiplexed connection that unpacks batch frames and files frames by channel. */
class Mux {
  private readonly frames: ServerFrame[] = [];
  private constructor(readonly socket: TestSocket) {}

  static async open(query = ""): Promise<[Mux, Frame]> {
    const s = await TestSocket.open(`/v1/ws${query}`);
    return [new Mux(s), await s.next()];
  }

  send(frame: unknown): void {
    this.socket.send(frame);
  }

  /** The next frame of a channel (skipping other channels' frames into the buffer). */
  async next(ch: string, ms = 2000): Promise<ServerFrame> {
    for (;;) {
      const i = this.frames.findIndex((f) => "ch" in f && f.ch === ch);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      const f = await this.socket.next(ms);
      if (f.t === "batch") this.frames.push(...f.f);
      else if (f.t !== undefined) this.frames.push(f);
    }
  }

  async seqs(ch: string, n: number): Promise<number[]> {
    const out: number[] = [];
    while (out.length < n) {
      const f = await this.next(ch);
      if (f.t === "msg") out.push(f.seq);
    }
    return out;
  }
}

describe("GET /v1/ws", () => {
  it("welcomes with v2 and no channel; sub answers subscribed, then that channel's frames, each with ch", async () => {
    const [mux, welcome] = await Mux.open();
    expect(welcome).toEqual({ t: "welcome", v: 2, cid: expect.any(String) });
    const [a, b] = [channelName("mux-a"), channelName("mux-b")];
    mux.send({ t: "sub", ch: a });
    mux.send({ t: "sub", ch: b });
    expect(await mux.next(a)).toMatchObject({ t: "subscribed", ch: a, seq: 0, epoch: expect.stringMatching(/^[0-9a-f]{12}$/) });
    expect(await mux.next(b)).toMatchObject({ t: "subscribed", ch: b, seq: 0 });
    await publishOk(a, "m", "a1");
    await publishOk(b, "m", "b1");
    await publishOk(a, "m", "a2");
    expect(await mux.next(a)).toMatchObject({ t: "msg", ch: a, seq: 1, d: "a1" });
    expect(await mux.next(a)).toMatchObject({ t: "msg", ch: a, seq: 2, d: "a2" });
    expect(await mux.next(b)).toMatchObject({ t: "msg", ch: b, seq: 1, d: "b1" });
    const stats = await (await call(`/v1/channels/${a}`)).json<{ subscribers: number }>();
    expect(stats.subscribers).toBe(1);
  });

  it("resumes a channel exactly from since/epoch, and rewinds", async () => {
    const ch = channelName("mux-resume");
    for (let i = 1; i <= 5; i++) await publishOk(ch, "m", i);
    const { epoch } = await (await call(`/v1/channels/${ch}`)).json<{ epoch: string }>();
    const [mux] = await Mux.open();
    mux.send({ t: "sub", ch, since: 2, epoch });
    expect(await mux.next(ch)).toMatchObject({ t: "subscribed", seq: 5, epoch });
    expect(await mux.seqs(ch, 3)).toEqual([3, 4, 5]);
    const other = channelName("mux-rewind");
    for (let i = 1; i <= 3; i++) await publishOk(other, "m", i);
    mux.send({ t: "sub", ch: other, rewind: 2 });
    await mux.next(other);
    expect(await mux.seqs(other, 2)).toEqual([2, 3]);
    mux.send({ t: "sub", ch: channelName("mux-stale"), since: 0, epoch: "aaaaaaaaaaaa" });
  });

  it("stops a channel at once on unsub", async () => {
    const [keep, drop] = [channelName("mux-keep"), channelName("mux-drop")];
    const [mux] = await Mux.open();
    mux.send({ t: "sub", ch: keep });
    mux.send({ t: "sub", ch: drop });
    await mux.next(keep);
    await mux.next(drop);
    mux.send({ t: "unsub", ch: drop });
    expect(await mux.next(drop)).toEqual({ t: "unsubscribed", ch: drop });
    await publishOk(drop, "m", 1);
    await publishOk(keep, "m", 1);
    expect(await mux.next(keep)).toMatchObject({ t: "msg", seq: 1 });
    expect(await mux.socket.settle()).toEqual([]);
    expect((await (await call(`/v1/channels/${drop}`)).json<{ subscribers: number }>()).subscribers).toBe(0);
  });

  it("authorizes each channel: a per-sub token, or the connection's; refusals keep the socket open", async () => {
    const priv = channelName("private-mux");
    const [anon] = await Mux.open();
    anon.send({ t: "sub", ch: priv });
    expect(await anon.next(priv)).toMatchObject({ t: "err", ch: priv, code: "unauthorized" });
    anon.send({ t: "sub", ch: priv, token: await token({ sub: "u", ch: [priv] }) });
    expect(await anon.next(priv)).toMatchObject({ t: "subscribed", ch: priv });
    const [withToken] = await Mux.open(`?token=${await token({ sub: "v", ch: ["private-mux-*"], pub: [priv] })}`);
    withToken.send({ t: "sub", ch: priv });
    expect(await withToken.next(priv)).toMatchObject({ t: "subscribed" });
    withToken.send({ t: "pub", ch: priv, e: "hi", d: 1, id: "mux-p1" });
    expect(await withToken.next(priv)).toMatchObject({ t: "ack", ch: priv, id: "mux-p1", seq: 1 });
    expect(await anon.next(priv)).toMatchObject({ t: "msg", ch: priv, seq: 1, u: "v" });
    anon.send({ t: "pub", ch: priv, e: "hi", d: 2, id: "mux-p2" });
    expect(await anon.next(priv)).toMatchObject({ t: "err", ch: priv, code: "forbidden", id: "mux-p2" });
    const other = channelName("private-else");
    withToken.send({ t: "sub", ch: other });
    expect(await withToken.next(other)).toMatchObject({ t: "err", code: "forbidden" });
  });

  it("holds at most MAX_SUBSCRIPTIONS channels per connection", async () => {
    const [mux] = await Mux.open();
    const chans = [1, 2, 3, 4].map(() => channelName("mux-max"));
    for (const ch of chans) mux.send({ t: "sub", ch });
    for (const ch of chans.slice(0, 3)) expect(await mux.next(ch)).toMatchObject({ t: "subscribed" });
    expect(await mux.next(chans[3]!)).toMatchObject({ t: "err", code: "too_large", message: expect.stringMatching(/MAX_SUBSCRIPTIONS/) });
  });

  it("ends a channel whose token expired, with code and message, and keeps the others", async () => {
    const [priv, open] = [channelName("private-exp"), channelName("mux-open")];
    const [mux] = await Mux.open();
    const exp = expiresSoon();
    mux.send({ t: "sub", ch: priv, token: await token({ sub: "u", ch: [priv] }, { expiresIn: exp }) });
    mux.send({ t: "sub", ch: open });
    expect(await mux.next(priv)).toMatchObject({ t: "subscribed" });
    await mux.next(open);
    await pastExp(exp);
    for (let k = 0; k < 16; k++) await runDurableObjectAlarm(edgeOf(poolEdgeName("conn", k)));
    expect(await mux.next(priv)).toEqual({ t: "unsubscribed", ch: priv, code: "unauthorized", message: "token expired" });
    await publishOk(open, "m", 1);
    expect(await mux.next(open)).toMatchObject({ t: "msg", seq: 1 });
  });

  it("serves a sharded channel too", async () => {
    const ch = channelName("shard");
    const [mux] = await Mux.open();
    mux.send({ t: "sub", ch });
    await mux.next(ch);
    for (let i = 1; i <= 3; i++) await publishOk(ch, "m", i);
    expect(await mux.seqs(ch, 3)).toEqual([1, 2, 3]);
  });

  it("serves presence channels: members, then join and leave per user, across connections and plain sockets", async () => {
    const p = channelName("presence-mux");
    const grant = (sub: string) => token({ sub, ch: [p], info: { name: sub } });
    const [alice] = await Mux.open(`?token=${await grant("alice")}`);
    alice.send({ t: "sub", ch: p });
    expect(await alice.next(p)).toMatchObject({ t: "subscribed" });
    expect(await alice.next(p)).toEqual({ t: "members", ch: p, members: [{ id: "alice", info: { name: "alice" } }], count: 1 });

    // Bob on a plain socket of the room: both kinds see each other.
    const [bob] = await TestSocket.subscribe(p, `?token=${await grant("bob")}`);
    expect((await bob.expect("members")).members.map((m) => m.id).sort()).toEqual(["alice", "bob"]);
    expect(await alice.next(p)).toEqual({ t: "join", ch: p, member: { id: "bob", info: { name: "bob" } } });

    // Carol over one socket, with a per-sub token; a second connection of hers is not a new member.
    const [carol] = await Mux.open();
    carol.send({ t: "sub", ch: p, token: await grant("carol") });
    await carol.next(p);
    expect(((await carol.next(p)) as { count: number }).count).toBe(3);
    expect(await alice.next(p)).toMatchObject({ t: "join", member: { id: "carol" } });
    expect(await bob.expect("join")).toMatchObject({ member: { id: "carol" } });
    const [carol2] = await Mux.open();
    carol2.send({ t: "sub", ch: p, token: await grant("carol") });
    await carol2.next(p);
    await carol2.next(p);
    const members = await (await call(`/v1/channels/${p}/presence`, { headers: { authorization: `Bearer ${await grant("x")}` } })).json<{ count: number }>();
    expect(members.count).toBe(3);

    carol.send({ t: "unsub", ch: p });
    await carol.next(p);
    carol2.socket.close();
    expect(await alice.next(p)).toMatchObject({ t: "leave", ch: p, member: { id: "carol" } });
    expect(await bob.expect("leave")).toMatchObject({ member: { id: "carol" } });
    bob.close();
    expect(await alice.next(p)).toMatchObject({ t: "leave", member: { id: "bob" } });
  });

  it("refuses a presence channel without a sub in the token", async () => {
    const p = channelName("presence-nosub");
    const [mux] = await Mux.open();
    mux.send({ t: "sub", ch: p, token: await token({ ch: [p] }) });
    expect(await mux.next(p)).toMatchObject({ t: "err", code: "forbidden", message: expect.stringMatching(/sub/) });
  });

  it("refuses frames it cannot take, naming the channel", async () => {
    const [mux] = await Mux.open();
    const ch = channelName("mux-bad");
    mux.send({ t: "unsub", ch });
    expect(await mux.next(ch)).toMatchObject({ t: "err", code: "bad_request", message: `not subscribed to ${ch}` });
    mux.send({ t: "sub", ch: "no spaces" });
    expect(await mux.socket.next()).toMatchObject({ t: "err", code: "bad_frame" });
    mux.send({ t: "pub", e: "x", d: 1 });
    expect(await mux.socket.next()).toMatchObject({ t: "err", code: "bad_frame" });
  });
});
