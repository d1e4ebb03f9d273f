import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, channelName, eventually, expiresSoon, hubOf, publishOk, SseReader, token } from "./helpers";

const stubOf = hubOf;
const sse = (ch: string, query = "", headers: Record<string, string> = {}) => SseReader.open(`/v1/channels/${ch}/sse${query}`, headers);

describe("Server-Sent Events", () => {
  it("streams welcome, then msg events with id EPOCH:SEQ and no event field", async () => {
    const ch = channelName();
    const s = await sse(ch);
    expect(s.response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(await s.next()).toEqual({ retry: "2000" });
    const welcome = await s.frame();
    expect(welcome).toMatchObject({ event: "welcome", id: undefined, frame: { t: "welcome", ch, seq: 0 } });

    await publishOk(ch, "score", { home: 1 });
    const { epoch } = await (await call(`/v1/channels/${ch}`)).json<{ epoch: string }>();
    const msg = await s.frame();
    expect(msg.event).toBeUndefined();
    expect(msg.id).toBe(`${epoch}:1`);
    expect(msg.frame).toMatchObject({ t: "msg", seq: 1, e: "score", d: { home: 1 } });
    expect(await (await call(`/v1/channels/${ch}`)).json()).toMatchObject({ subscribers: 1, transports: { ws: 0, sse: 1 } });
    await s.cancel();
  });

  it("resumes exactly from Last-Event-ID, which wins over the URL", async () => {
    const ch = channelName();
    for (let i = 1; i <= 5; i++) await publishOk(ch, "m", i);
    const { epoch } = await (await call(`/v1/channels/${ch}`)).json<{ epoch: string }>();
    const s = await sse(ch, "?rewind=5", { "last-event-id": `${epoch}:3` });
    expect((await s.frame()).frame.t).toBe("welcome");
    const replay = [await s.frame(), await s.frame()];
    expect(replay.map((e) => e.id)).toEqual([`${epoch}:4`, `${epoch}:5`]);
    await publishOk(ch, "m", 6);
    expect((await s.frame()).id).toBe(`${epoch}:6`);
    await s.cancel();
  });

  it("resumes from ?since=&epoch= and sends reset (event: reset, no id) for another epoch", async () => {
    const ch = channelName();
    for (let i = 1; i <= 3; i++) await publishOk(ch, "m", i);
    const ok = await sse(ch, "?since=2");
    await ok.frame();
    expect((await ok.expect("msg")).frame.seq).toBe(3);
    await ok.cancel();
    const stale = await sse(ch, "", { "last-event-id": "0123456789ab:2" });
    await stale.frame();
    const reset = await stale.frame();
    expect(reset).toMatchObject({ event: "reset", id: undefined, frame: { t: "reset", seq: 3 } });
    await stale.cancel();
  });

  it("sends the last N messages with ?rewind=N", async () => {
    const ch = channelName();
    for (let i = 1; i <= 4; i++) await publishOk(ch, "m", i);
    const s = await sse(ch, "?rewind=2");
    await s.frame();
    expect([(await s.expect("msg")).frame.seq, (await s.expect("msg")).frame.seq]).toEqual([3, 4]);
    await s.cancel();
  });

  it("answers bad input and refusals as JSON errors before any stream starts", async () => {
    const priv = channelName("private-feed");
    expect((await call(`/v1/channels/${priv}/sse`)).status).toBe(401);
    expect((await call(`/v1/channels/${channelName()}/sse`, { headers: { "last-event-id": "garbage" } })).status).toBe(400);
    expect((await call(`/v1/channels/${channelName()}/sse?since=-3`)).status).toBe(400);
    const s = await sse(priv, `?token=${await token({ sub: "u", ch: [priv] })}`);
    expect((await s.frame()).frame.t).toBe("welcome");
    await s.cancel();
  });

  it("keeps streaming after the room hibernates: the stream is a hibernatable socket to the room", async () => {
    const ch = channelName();
    const s = await sse(ch);
    await s.frame();
    await evictDurableObject(stubOf(ch));
    await publishOk(ch, "after", "eviction");
    expect((await s.frame()).frame).toMatchObject({ t: "msg", d: "eviction" });
    await s.cancel();
  });

  it("ends the stream when the room closes it (token expired), after an err event", async () => {
    const ch = channelName("private-expiring");
    const t = await token({ sub: "u", ch: [ch] }, { expiresIn: expiresSoon() });
    const s = await sse(ch, `?token=${t}`);
    await s.frame();
    expect(await s.frame(5000)).toMatchObject({ event: "err", frame: { code: "unauthorized", message: "token expired" } });
    expect(await s.next()).toBeNull();
  });

  it("frees the room's socket when the client goes away", async () => {
    const ch = channelName();
    const s = await sse(ch);
    await s.frame();
    await s.cancel();
    // The relay notices on its next write; a publish is one.
    await publishOk(ch, "m", 1);
    const stats = () => call(`/v1/channels/${ch}`).then((r) => r.json<{ subscribers: number }>());
    expect(await eventually(stats, (st) => st.subscribers === 0)).toMatchObject({ subscribers: 0 });
  });
});
