// DESIGN.md "Cursor": every welcome names the epoch the channel's messages will carry, also
// before the first publish, so a client that keeps the first welcome's epoch never loses
// messages on its first resume.
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { MsgFrame } from "../src/protocol";
import { call, channelName, publishOk, seqsOf, SseReader, TestSocket, hubOf } from "./helpers";

const stubOf = hubOf;
const EPOCH = /^[0-9a-f]{12}$/;

/** The README's raw client: the cursor follows welcome, reset and msg frames. */
class ReadmeClient {
  cursor: { since: number; epoch: string | null } = { since: 0, epoch: null };
  readonly seen: number[] = [];
  constructor(readonly socket: TestSocket) {}
  async read(n: number): Promise<void> {
    let got = 0;
    while (got < n) {
      const f = await this.socket.next();
      if ((f.t === "welcome" && f.v === 1) || f.t === "reset") this.cursor = { since: this.cursor.since, epoch: f.epoch };
      if (f.t === "reset") this.cursor.since = f.seq;
      if (f.t === "msg") {
        this.cursor = { since: f.seq, epoch: this.cursor.epoch };
        this.seen.push(f.seq);
        got++;
      }
    }
  }
  /** The README's resume URL, exactly as printed there. */
  get resumeQuery(): string {
    const { since, epoch } = this.cursor;
    return epoch === null ? `?since=${since}` : `?since=${since}&epoch=${epoch}`;
  }
}

describe("the epoch of a channel that never had a publish", () => {
  it("is named in the welcome, and the first publish stores that same epoch", async () => {
    const ch = channelName();
    const [s, welcome] = await TestSocket.subscribe(ch);
    expect(welcome).toMatchObject({ seq: 0, epoch: expect.stringMatching(EPOCH) });
    const [other, second] = await TestSocket.subscribe(ch);
    expect(second.epoch).toBe(welcome.epoch);
    await publishOk(ch, "m", 1);
    expect((await s.expect("msg")).seq).toBe(1);
    const stats = await (await call(`/v1/channels/${ch}`)).json<{ epoch: string }>();
    expect(stats.epoch).toBe(welcome.epoch);
    s.close();
    other.close();
  });

  it("README flow: fresh channel, 3 publishes, drop, 2 publishes, resume as printed → seqs 4 and 5, no reset", async () => {
    const ch = channelName();
    const client = new ReadmeClient((await TestSocket.open(`/v1/channels/${ch}/ws`)));
    for (let i = 1; i <= 3; i++) await publishOk(ch, "m", i);
    await client.read(3);
    client.socket.close();
    await publishOk(ch, "m", 4);
    await publishOk(ch, "m", 5);

    const again = new ReadmeClient(await TestSocket.open(`/v1/channels/${ch}/ws${client.resumeQuery}`));
    again.cursor = client.cursor;
    await again.read(2);
    expect(again.seen).toEqual([4, 5]);
    expect(await again.socket.settle()).toEqual([]);
  });

  it("survives eviction while a socket stays connected: the first publish stores the welcomed epoch", async () => {
    const ch = channelName();
    const [s, welcome] = await TestSocket.subscribe(ch);
    // Memory is gone; the socket hibernates with its attachment; nothing is in storage.
    await evictDurableObject(stubOf(ch));
    const [late, lateWelcome] = await TestSocket.subscribe(ch);
    expect(lateWelcome.epoch).toBe(welcome.epoch);
    await evictDurableObject(stubOf(ch));
    await publishOk(ch, "m", 1);
    expect(await s.next()).toMatchObject({ t: "msg", seq: 1 });
    s.close();
    await publishOk(ch, "m", 2);
    const [resumed] = await TestSocket.subscribe(ch, `?since=1&epoch=${welcome.epoch}`);
    expect(seqsOf(await resumed.take("msg", 1))).toEqual([2]);
    late.close();
  });

  it("is taken back from the sockets' attachments by a room rebuilt from them", async () => {
    const ch = channelName();
    const [, welcome] = await TestSocket.subscribe(ch);
    const rebuilt = await runInDurableObject(stubOf(ch), (room, state) => {
      const Room = room.constructor as new (s: DurableObjectState, e: typeof env) => { history(q: object): Promise<string> };
      return new Room(state, env).history({ cursor: null, before: null, limit: 1 });
    });
    expect(JSON.parse(rebuilt).epoch).toBe(welcome.epoch);
  });

  it("is named in SSE welcome, and Last-Event-ID from the first events resumes exactly", async () => {
    const ch = channelName();
    const sse = await SseReader.open(`/v1/channels/${ch}/sse`);
    const { frame: welcome } = await sse.expect("welcome");
    if (welcome.v !== 1) throw new Error("a channel's welcome is v1");
    expect(welcome).toMatchObject({ t: "welcome", epoch: expect.stringMatching(EPOCH) });
    await publishOk(ch, "m", 1);
    const first = await sse.frame();
    expect(first.id).toBe(`${welcome.epoch}:1`);
    await sse.cancel();
    await publishOk(ch, "m", 2);
    const again = await SseReader.open(`/v1/channels/${ch}/sse`, { "last-event-id": first.id! });
    await again.frame(); // welcome
    expect(await again.frame()).toMatchObject({ id: `${welcome.epoch}:2`, frame: { seq: 2 } });
    await again.cancel();
  });

  it("is named by history before the first publish, and a history cursor with it stays valid", async () => {
    const ch = channelName();
    const [s] = await TestSocket.subscribe(ch);
    const empty = await (await call(`/v1/channels/${ch}/messages`)).json<{ epoch: string }>();
    expect(empty.epoch).toMatch(EPOCH);
    await publishOk(ch, "m", 1);
    const page = await (await call(`/v1/channels/${ch}/messages?since=0&epoch=${empty.epoch}`)).json<{ reset: boolean; messages: MsgFrame[] }>();
    expect(page).toMatchObject({ reset: false, messages: [{ seq: 1 }] });
    s.close();
  });
});

describe("the README snippet after a purge", () => {
  it("takes the epoch from reset: purge, 2 live messages, drop, 1 more, resume → exactly the missed one", async () => {
    const ch = channelName();
    await publishOk(ch, "m", 1);
    const client = new ReadmeClient(await TestSocket.open(`/v1/channels/${ch}/ws`));
    await call(`/v1/channels/${ch}/messages`, { method: "DELETE", headers: { authorization: "Bearer test-publish-key" } });
    await publishOk(ch, "m", 2);
    await publishOk(ch, "m", 3);
    await client.read(2);
    client.socket.close();
    await publishOk(ch, "m", 4);
    const again = new ReadmeClient(await TestSocket.open(`/v1/channels/${ch}/ws${client.resumeQuery}`));
    await again.read(1);
    expect(again.seen).toEqual([4]);
    expect(again.cursor.epoch).toBe(client.cursor.epoch);
  });
});

describe("epoch=null in a URL", () => {
  it("is refused with a 400 that names the problem, on every transport", async () => {
    const ch = channelName();
    const s = await TestSocket.open(`/v1/channels/${ch}/ws?since=3&epoch=null`);
    expect(await s.next()).toMatchObject({ t: "err", code: "bad_request", message: expect.stringMatching(/epoch=null is not an epoch/) });
    expect((await s.closed).code).toBe(4400);
    for (const path of [`/v1/channels/${ch}/sse?since=3&epoch=null`, `/v1/channels/${ch}/messages?since=3&epoch=undefined`]) {
      const res = await call(path);
      expect(res.status).toBe(400);
      expect((await res.json<{ error: { message: string } }>()).error.message).toMatch(/leave it out while unknown/);
    }
  });
});
