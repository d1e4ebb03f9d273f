// Connection edges keep the limits a channel's room keeps (DESIGN v1.3): MAX_SOCKETS (3 here, with
// one connection edge) refuses with 4503, and a /v1/ws connection that holds no subscription for
// 5 minutes is closed with 4408.
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { poolEdgeName } from "../../src/rpc";
import { channelName, edgeOf, expiresSoon, pastExp, TestSocket, token } from "../helpers";

describe("connection edges", () => {
  it("refuse a connection past MAX_SOCKETS with 4503, and take one again after a close", async () => {
    const open: TestSocket[] = [];
    // Other tests' connections may still be held by the edge: fill it up to the limit first.
    for (let i = 0; i < 4; i++) {
      const s = await TestSocket.open("/v1/ws");
      const first = await s.next();
      if (first.t === "welcome") open.push(s);
      else {
        expect(first).toMatchObject({ t: "err", code: "unavailable", close: 4503 });
        expect((await s.closed).code).toBe(4503);
        break;
      }
    }
    expect(open.length).toBeLessThanOrEqual(3);
    const freed = open.pop()!;
    freed.close();
    await freed.closed;
    // The edge frees the place once it has seen the close: open again until it has.
    let welcomed = false;
    for (const deadline = Date.now() + 5000; !welcomed && Date.now() < deadline; ) {
      const again = await TestSocket.open("/v1/ws");
      welcomed = (await again.next()).t === "welcome";
      if (welcomed) open.push(again);
      else await new Promise((r) => setTimeout(r, 50));
    }
    expect(welcomed).toBe(true);
    for (const s of open) s.close();
  });

  it("close a /v1/ws connection that held no subscription for 5 minutes (4408), and keep one that holds one", async () => {
    const idle = await TestSocket.open("/v1/ws");
    await idle.expect("welcome");
    const busy = await TestSocket.open("/v1/ws");
    await busy.expect("welcome");
    const ch = channelName("private-kept");
    busy.send({ t: "sub", ch, token: await token({ sub: "b", ch: [ch] }) });
    await busy.expect("subscribed");
    // As if 5 minutes had passed since each connection was accepted.
    await runInDurableObject(edgeOf(poolEdgeName("conn", 0)), (_edge, state) => {
      for (const ws of state.getWebSockets("mx")) {
        const a = ws.deserializeAttachment() as { idle?: number };
        if (a.idle !== undefined) ws.serializeAttachment({ ...a, idle: Date.now() - 301_000 });
      }
    });
    // A fresh wake reads the deadlines from the attachments (as after hibernation).
    await evictDurableObject(edgeOf(poolEdgeName("conn", 0)));
    await runDurableObjectAlarm(edgeOf(poolEdgeName("conn", 0)));
    expect(await idle.next()).toMatchObject({ t: "err", close: 4408 });
    expect((await idle.closed).code).toBe(4408);
    busy.send("ping");
    expect(await busy.next()).toEqual({ raw: "pong" });
    busy.close();
  });

  it("keep one deadline per subscription and per connection however often a client subscribes and leaves", async () => {
    const s = await TestSocket.open("/v1/ws");
    await s.expect("welcome");
    const ch = channelName("private-churn");
    const grant = await token({ sub: "churn", ch: [ch] });
    for (let i = 0; i < 200; i++) {
      s.send({ t: "sub", ch, token: grant }); // a token: an expiry deadline each time
      await s.expect("subscribed");
      s.send({ t: "unsub", ch }); // no subscription left: an idle deadline each time
      await s.expect("unsubscribed");
    }
    const deadlines = await runInDurableObject(edgeOf(poolEdgeName("conn", 0)), (edge) => (edge as unknown as { mux: { index: { deadlines: { expiries: number; idlers: number } } } }).mux.index.deadlines);
    // 0.4.0-dev kept 200 of each, for as long as the token and the idle timeout ran.
    expect(deadlines.expiries).toBe(0);
    expect(deadlines.idlers).toBeLessThanOrEqual(3); // this connection's, and others' still open here
    s.close();
  });

  it("refuse a pub on /v1/ws once the sub's token expired, before the alarm ends the subscription", async () => {
    const s = await TestSocket.open("/v1/ws");
    await s.expect("welcome");
    const ch = channelName("private-late");
    const exp = expiresSoon();
    s.send({ t: "sub", ch, token: await token({ sub: "m", ch: [ch], pub: [ch] }, { expiresIn: exp }) });
    await s.expect("subscribed");
    s.send({ t: "pub", ch, e: "e", d: 1, id: "while-granted" });
    expect(await s.expect("ack")).toMatchObject({ id: "while-granted" });
    // Alarms may come late (the sweep's promise is "within a minute"): this one does not come.
    await runInDurableObject(edgeOf(poolEdgeName("conn", 0)), (_edge, state) => state.storage.deleteAlarm());
    await pastExp(exp);
    s.send({ t: "pub", ch, e: "e", d: 2, id: "late" });
    const [answer] = await s.answers(1);
    expect(answer).toMatchObject({ t: "err", ch, code: "unauthorized", id: "late" });
    const frames = await s.settle(300);
    expect(frames.filter((f) => f.t === "msg").map((f) => (f as { d: unknown }).d)).not.toContain(2);
    s.close();
    await s.closed;
  });
});
