// A connection's state lives in its socket's attachment, which the runtime caps at 16 KiB
// (local workerd does not enforce it, so the test does, as production would). A subscribe that
// would not fit is refused with too_large, and nothing of it is left: the edge is not left
// listed by the channel's hub (security review finding 20).
import { describe, expect, it, onTestFinished } from "vitest";
import { call, channelName, eventually, TestSocket, token } from "../helpers";

const LIMIT = 16 * 1024;

describe("a /v1/ws connection whose attachment is full", () => {
  it("refuses the subscribe that does not fit with too_large, and leaves no edge attached to that channel", async () => {
    const original = WebSocket.prototype.serializeAttachment;
    onTestFinished(() => void (WebSocket.prototype.serializeAttachment = original));
    const s = await TestSocket.open("/v1/ws");
    await s.expect("welcome");
    const names = [channelName("att"), channelName("att"), channelName("att")].map((n) => n.padEnd(128, "z"));
    for (const ch of names.slice(0, 2)) {
      s.send({ t: "sub", ch });
      await s.expect("subscribed");
    }
    // The third subscribe is the one that no longer fits: the runtime refuses to store it.
    const last = names[2]!;
    WebSocket.prototype.serializeAttachment = function (this: WebSocket, value: unknown) {
      const subs = (value as { subs?: Record<string, unknown> }).subs ?? {};
      if (subs[last] !== undefined) throw new Error(`attachment over ${LIMIT} bytes`);
      return original.call(this, value);
    };
    s.send({ t: "sub", ch: last });
    expect(await s.next()).toMatchObject({ t: "err", ch: last, code: "too_large" });
    // The hub lists no edge for the refused channel (wait for the undo to reach it).
    const stats = () => call(`/v1/channels/${last}`).then((r) => r.json<{ edges?: number }>());
    expect((await eventually(stats, (st) => st.edges === undefined, 10_000)).edges).toBeUndefined();
    // The connection and its other channels go on.
    s.send("ping");
    expect(await s.next()).toEqual({ raw: "pong" });
    s.close();
  });
});

describe("a /v1/ws connection token", () => {
  it("with claims over 4 KiB is refused before the connection is made (too_large, 4413): the connection keeps them", async () => {
    const many = Array.from({ length: 300 }, (_, i) => `private-room-${i}`); // about 6 KB of claims
    const s = await TestSocket.open(`/v1/ws?token=${await token({ sub: "big", ch: many })}`);
    expect(await s.next()).toMatchObject({ t: "err", code: "too_large", close: 4413 });
    expect((await s.closed).code).toBe(4413);
    // One that fits connects, and its grants serve a sub.
    const ok = await TestSocket.open(`/v1/ws?token=${await token({ sub: "small", ch: many.slice(0, 50) })}`);
    await ok.expect("welcome");
    ok.send({ t: "sub", ch: "private-room-7" });
    await ok.expect("subscribed");
    ok.close();
  });
});
