import { listDurableObjectIds } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, channelName, publish, publishOk, TestSocket, token } from "./helpers";

/** An `alg: none` token: unsigned, must never pass. */
function unsignedToken(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => btoa(JSON.stringify(o)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
  return `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`;
}

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

/** Opens a socket that the Worker must refuse; answers the err frame and the close code. */
async function refused(path: string, headers: Record<string, string> = {}) {
  const s = await TestSocket.open(path, headers);
  const err = await s.next();
  const { code } = await s.closed;
  return { err, code };
}

async function roomExists(ch: string): Promise<boolean> {
  const id = env.ROOMS.idFromName(ch);
  return (await listDurableObjectIds(env.ROOMS)).some((other) => other.equals(id));
}

describe("subscribe auth", () => {
  it("public channels need no token", async () => {
    const [, w] = await TestSocket.subscribe(channelName("public"));
    expect(w.t).toBe("welcome");
  });

  it("private channels need a token that grants them, by name or prefix", async () => {
    const ch = channelName("private-room");
    expect(await refused(`/v1/channels/${ch}/ws`)).toMatchObject({ err: { t: "err", code: "unauthorized" }, code: 4401 });
    const exact = await token({ sub: "u1", ch: [ch] });
    const prefix = await token({ sub: "u1", ch: ["private-room-*"] });
    expect((await TestSocket.subscribe(ch, `?token=${exact}`))[1].t).toBe("welcome");
    expect((await TestSocket.subscribe(ch, "", { authorization: `Bearer ${prefix}` }))[1].t).toBe("welcome");
    const other = await token({ sub: "u1", ch: ["private-other"] });
    expect(await refused(`/v1/channels/${ch}/ws?token=${other}`)).toMatchObject({ err: { code: "forbidden" }, code: 4403 });
  });

  it("presence channels need a token with sub", async () => {
    const ch = channelName("presence-lobby");
    const noSub = await token({ ch: [ch] });
    expect(await refused(`/v1/channels/${ch}/ws?token=${noSub}`)).toMatchObject({ err: { code: "forbidden" }, code: 4403 });
    const ok = await token({ sub: "alice", ch: ["presence-*"] });
    expect((await TestSocket.subscribe(ch, `?token=${ok}`))[1].t).toBe("welcome");
  });

  const bad: [string, () => Promise<string>, RegExp][] = [
    ["an expired token", () => token({ sub: "u", ch: ["private-*"] }, { expiresIn: Math.floor(Date.now() / 1000) - 10 }), /expired/],
    ["a token signed with another secret", () => token({ sub: "u", ch: ["private-*"] }, { secret: "not-the-secret" }), /signature/],
    ["an unsigned alg:none token", async () => unsignedToken({ sub: "u", ch: ["private-*"], exp: inAnHour() }), /algorithm|malformed/],
    ["a token whose ch claim is not an array", () => token({ sub: "u", ch: "private-*" }), /"ch" must be an array/],
    ["garbage", async () => "not.a.jwt", /malformed/],
  ];
  for (const [what, make, message] of bad) {
    it(`refuses ${what} with 4401, without waking the room`, async () => {
      const ch = channelName("private-x");
      const { err, code } = await refused(`/v1/channels/${ch}/ws?token=${await make()}`);
      expect(code).toBe(4401);
      expect(err).toMatchObject({ t: "err", code: "unauthorized" });
      expect(err).toMatchObject({ message: expect.stringMatching(message) });
      expect(await roomExists(ch)).toBe(false);
    });
  }

  it("requires exp even on a correctly signed token", async () => {
    const { SignJWT } = await import("jose");
    const noExp = await new SignJWT({ sub: "u", ch: ["private-*"] }).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode("test-jwt-secret-current-0123456789"));
    const { err, code } = await refused(`/v1/channels/${channelName("private-y")}/ws?token=${noExp}`);
    expect(code).toBe(4401);
    expect(err).toMatchObject({ message: expect.stringMatching(/exp/) });
  });

  it("accepts tokens signed with any secret of the JWT_SECRET list (rotation)", async () => {
    const ch = channelName("private-rot");
    const old = await token({ sub: "u", ch: [ch] }, { secret: "test-jwt-secret-previous-0123456789" });
    expect((await TestSocket.subscribe(ch, `?token=${old}`))[1].t).toBe("welcome");
  });

  it("refuses a bad channel name on the socket with 4400", async () => {
    expect(await refused("/v1/channels/bad%20name/ws")).toMatchObject({ err: { code: "bad_request" }, code: 4400 });
  });

  it("a room the refusal never reached does not exist, one that was reached does", async () => {
    const ch = channelName("public");
    await TestSocket.subscribe(ch);
    expect(await roomExists(ch)).toBe(true);
  });
});

describe("publish auth", () => {
  it("needs a credential: 401 without one", async () => {
    const res = await publish(channelName(), { event: "e", data: 1 }, { key: null });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code: "unauthorized" } });
  });

  it("refuses a wrong publish key with 403, without waking the room", async () => {
    const ch = channelName();
    const res = await publish(ch, { event: "e", data: 1 }, { key: "wrong-key" });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: "forbidden", message: "wrong publish key" } });
    expect(await roomExists(ch)).toBe(false);
  });

  it("refuses a malformed Authorization header with 401", async () => {
    const res = await call(`/v1/channels/${channelName()}/messages`, { method: "POST", headers: { authorization: "Basic abc" }, body: "x" });
    expect(res.status).toBe(401);
  });

  it("accepts every key of the PUBLISH_KEY list (rotation)", async () => {
    expect((await publish(channelName(), { event: "e", data: 1 }, { key: "test-publish-key-previous" })).status).toBe(200);
  });

  it("accepts a token whose pub claim grants the channel, and names the sender as u", async () => {
    const ch = channelName("private-chat");
    const [s] = await TestSocket.subscribe(ch, `?token=${await token({ sub: "reader", ch: [ch] })}`);
    const writer = await token({ sub: "writer", ch: [ch], pub: ["private-chat-*"] });
    expect((await publish(ch, { event: "say", data: "hi" }, { key: writer })).status).toBe(200);
    expect(await s.next()).toMatchObject({ t: "msg", e: "say", d: "hi", u: "writer" });
    const readOnly = await token({ sub: "reader", ch: [ch] });
    const res = await publish(ch, { event: "say", data: "hi" }, { key: readOnly });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: "forbidden" } });
  });

  it("refuses an expired token with a pub grant with 401", async () => {
    const ch = channelName();
    const expired = await token({ sub: "w", pub: ["*"] }, { expiresIn: Math.floor(Date.now() / 1000) - 5 });
    expect((await publish(ch, { event: "e", data: 1 }, { key: expired })).status).toBe(401);
  });
});

describe("stats auth", () => {
  it("needs the subscribe token or the publish key on a private channel", async () => {
    const ch = channelName("private-stats");
    await publishOk(ch, "e", 1);
    expect((await call(`/v1/channels/${ch}`)).status).toBe(401);
    expect((await call(`/v1/channels/${ch}`, { headers: { authorization: "Bearer test-publish-key" } })).status).toBe(200);
    const t = await token({ sub: "u", ch: [ch] });
    expect((await call(`/v1/channels/${ch}?token=${t}`)).status).toBe(200);
    expect((await call(`/v1/channels/${ch}`, { headers: { authorization: "Bearer wrong" } })).status).toBe(403);
  });
});
