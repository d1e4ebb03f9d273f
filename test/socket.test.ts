import { describe, expect, it } from "vitest";
import { call, channelName, eventually, publishOk, TestSocket, token } from "./helpers";

describe("socket frames", () => {
  it("answers the text ping with pong (runtime auto-response)", async () => {
    const [s] = await TestSocket.subscribe(channelName());
    s.send("ping");
    expect(await s.next()).toEqual({ raw: "pong" });
  });

  it("answers a malformed frame with bad_frame and keeps the socket open", async () => {
    const ch = channelName();
    const [s] = await TestSocket.subscribe(ch);
    s.send("{not json");
    expect(await s.next()).toMatchObject({ t: "err", code: "bad_frame", message: "frame is not valid JSON" });
    s.send("[1,2,3]");
    expect(await s.next()).toMatchObject({ t: "err", code: "bad_frame" });
    s.send({ type: "no t field" });
    expect(await s.next()).toMatchObject({ t: "err", code: "bad_frame" });
    await publishOk(ch, "still", "open");
    expect(await s.next()).toMatchObject({ t: "msg", d: "open" });
  });

  it("answers a binary frame with bad_frame", async () => {
    const [s] = await TestSocket.subscribe(channelName());
    s.ws.send(new Uint8Array([1, 2, 3]));
    expect(await s.next()).toMatchObject({ t: "err", code: "bad_frame", message: /binary/ });
  });

  it("ignores unknown frame types (forward compatible)", async () => {
    const [s] = await TestSocket.subscribe(channelName());
    s.send({ t: "from-the-future", x: 1 });
    expect(await s.settle()).toEqual([]);
    s.send("ping");
    expect(await s.next()).toEqual({ raw: "pong" });
  });

  it("forgets a socket the client closed", async () => {
    const ch = channelName();
    const [a] = await TestSocket.subscribe(ch);
    const [b] = await TestSocket.subscribe(ch);
    a.close();
    await a.closed;
    const stats = () => call(`/v1/channels/${ch}`).then((r) => r.json<{ subscribers: number }>());
    expect(await eventually(stats, (st) => st.subscribers === 1)).toMatchObject({ subscribers: 1 });
    expect(await publishOk(ch, "e", 1)).toMatchObject({ delivered: 1 });
  });

  it("closes with 1009 on a frame over MAX_MESSAGE_BYTES", async () => {
    const [s] = await TestSocket.subscribe(channelName());
    s.send({ t: "pub", e: "big", d: "x".repeat(70_000) });
    expect((await s.closed).code).toBe(1009);
  });
});

describe("client publish over the socket", () => {
  it("is forbidden without a pub grant, with the pub's id in the err", async () => {
    const [s] = await TestSocket.subscribe(channelName());
    s.send({ t: "pub", e: "chat", d: "hi", id: "c-1" });
    expect(await s.next()).toMatchObject({ t: "err", code: "forbidden", id: "c-1" });
  });

  it("is acked with a seq, delivered with u = sub, and idempotent", async () => {
    const ch = channelName();
    const t = await token({ sub: "alice", pub: [ch] });
    const [s] = await TestSocket.subscribe(ch, `?token=${t}`);
    const [watcher] = await TestSocket.subscribe(ch);
    s.send({ t: "pub", e: "chat", d: { text: "hi" }, id: "c-1" });
    const frames = await s.take("ack", 1);
    expect(frames[0]).toEqual({ t: "ack", id: "c-1", seq: 1, duplicate: false });
    expect(await watcher.next()).toMatchObject({ t: "msg", seq: 1, e: "chat", d: { text: "hi" }, u: "alice", id: "c-1" });
    s.send({ t: "pub", e: "chat", d: { text: "hi" }, id: "c-1" });
    expect((await s.take("ack", 1))[0]).toEqual({ t: "ack", id: "c-1", seq: 1, duplicate: true });
    expect(await watcher.settle()).toEqual([]);
  });

  it("answers an invalid pub with bad_frame naming its id", async () => {
    const ch = channelName();
    const [s] = await TestSocket.subscribe(ch, `?token=${await token({ sub: "a", pub: [ch] })}`);
    s.send({ t: "pub", d: 1, id: "p-9" });
    expect(await s.next()).toMatchObject({ t: "err", code: "bad_frame", id: "p-9", message: /event/ });
    s.send({ t: "pub", e: "x", id: "p-10" });
    expect(await s.next()).toMatchObject({ t: "err", code: "bad_frame", id: "p-10", message: /data/ });
  });

  it("takes a fresh token with the auth frame, and refuses a bad one", async () => {
    const ch = channelName();
    const [s] = await TestSocket.subscribe(ch, `?token=${await token({ sub: "bob" })}`);
    s.send({ t: "auth", token: "garbage" });
    expect(await s.next()).toMatchObject({ t: "err", code: "unauthorized" });
    s.send({ t: "auth", token: await token({ sub: "mallory", pub: [ch] }) });
    expect(await s.next()).toMatchObject({ t: "err", code: "forbidden", message: /same sub/ });
    // A token with no sub would keep bob's name on the socket past bob's own token.
    s.send({ t: "auth", token: await token({ pub: [ch] }) });
    expect(await s.next()).toMatchObject({ t: "err", code: "forbidden", message: /same sub/ });
    s.send({ t: "auth", token: await token({ sub: "bob", pub: [ch] }) });
    s.send({ t: "pub", e: "now", d: "allowed", id: "a-1" });
    expect((await s.take("ack", 1))[0]).toMatchObject({ id: "a-1", seq: 1 });
  });
});
