// hibercast mounted by a host Worker of its own (test/mount/worker.ts): under /rt, beside the
// host's own routes, with the host's cookie sessions granting channels through `authorize`.
import { createExecutionContext, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { hibercast } from "hibercast/server";
import { loggedEvents } from "../logs";
import { BASE, call, channelName, hubOf, PUBLISH_KEY, SseReader, TestSocket, token } from "../helpers";

const ALICE = { cookie: "session=s-alice" };
/** Bob's session grant lasts two seconds (test/mount/worker.ts). */
const BOB = { cookie: "session=s-bob" };

const publishUnder = (channel: string, body: unknown, headers: Record<string, string>) =>
  call(`/rt/v1/channels/${channel}/messages`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

/** A socket under the prefix, and its first frame. */
async function open(path: string, headers: Record<string, string> = {}) {
  const s = await TestSocket.open(`/rt${path}`, headers);
  return [s, await s.next()] as const;
}

describe("the host's own routes", () => {
  it("answer beside hibercast, which keeps to its prefix", async () => {
    expect(await (await call("/hello", { headers: ALICE })).text()).toBe("hello, alice");
    for (const path of ["/v1/channels/news/messages", "/rtx/v1/channels/news/messages", "/healthz"]) {
      const res = await call(path);
      expect([path, res.status, await res.text()]).toEqual([path, 404, "not found"]);
    }
    expect(await (await call("/rt/healthz")).json()).toEqual({ ok: true });
  });

  it("the bare prefix is the console page's, at prefix + /", async () => {
    const res = await call("/rt?channel=news", { redirect: "manual" });
    expect([res.status, res.headers.get("location")]).toEqual([308, `${BASE}/rt/?channel=news`]);
    expect((await call("/rt/console")).headers.get("content-type")).toMatch(/^text\/html/);
  });
});

describe("publishing and reading under the prefix", () => {
  it("publishes with the publish key and reads history back", async () => {
    const ch = channelName("news");
    const res = await publishUnder(ch, { event: "e", data: 1, id: "first" }, { authorization: `Bearer ${PUBLISH_KEY}` });
    expect(await res.json()).toMatchObject({ seq: 1, id: "first", duplicate: false });
    const page = (await (await call(`/rt/v1/channels/${ch}/messages`)).json()) as { messages: unknown[] };
    expect(page.messages).toMatchObject([{ t: "msg", seq: 1, id: "first", d: 1 }]);
  });

  it("a session's pub grant publishes over HTTP, where it grants and nowhere else", async () => {
    const ch = channelName("chat");
    const [s] = await open(`/v1/channels/${ch}/ws`);
    expect(await (await publishUnder(ch, { event: "said", data: "hi" }, ALICE)).json()).toMatchObject({ seq: 1 });
    expect(await s.expect("msg")).toMatchObject({ e: "said", d: "hi", seq: 1 });
    expect((await publishUnder(ch, { event: "said", data: "hi" }, {})).status).toBe(401);
    expect((await publishUnder(channelName("news"), { event: "said", data: "hi" }, ALICE)).status).toBe(403);
    s.close();
  });

  it("a session does not vouch for a request from another site (cookies go with those too)", async () => {
    const ch = channelName("chat");
    const from = (origin: string) => publishUnder(ch, { event: "said", data: "hi" }, { ...ALICE, origin });
    expect((await from("https://evil.example")).status).toBe(401);
    expect((await from(BASE)).status).toBe(200);
    const [, frame] = await open(`/v1/channels/private-user-alice/ws`, { ...ALICE, origin: "https://evil.example" });
    expect(frame).toMatchObject({ t: "err", code: "unauthorized" });
    // No Origin (an iframe or img from a sibling subdomain): the browser's Sec-Fetch-Site tells.
    const bare = (site: string) => call(`/rt/v1/channels/private-user-alice/messages`, { headers: { ...ALICE, "sec-fetch-site": site } });
    expect((await bare("same-site")).status).toBe(401);
    expect((await bare("cross-site")).status).toBe(401);
    expect((await bare("same-origin")).status).toBe(200);
  });

  it("Durable Streams hand out their paths under the prefix", async () => {
    const ch = channelName("doc");
    const key = { authorization: `Bearer ${PUBLISH_KEY}`, "content-type": "text/plain" };
    const made = await call(`/rt/v1/stream/${ch}`, { method: "PUT", headers: key });
    expect([made.status, made.headers.get("location")]).toEqual([201, `${BASE}/rt/v1/stream/${ch}`]);
    const fork = await call(`/rt/v1/stream/${ch}-fork`, { method: "PUT", headers: { ...key, "stream-forked-from": `/rt/v1/stream/${ch}` } });
    expect(fork.status).toBe(201);
  });
});

describe("subscribing with the host's session", () => {
  it("a private channel the session grants: over a socket and SSE with the cookie alone", async () => {
    const [s, welcome] = await open("/v1/channels/private-user-alice/ws", ALICE);
    expect(welcome).toMatchObject({ t: "welcome", ch: "private-user-alice" });
    const sse = await SseReader.open("/rt/v1/channels/private-user-alice/sse", ALICE);
    expect((await sse.expect("welcome")).frame).toMatchObject({ ch: "private-user-alice" });
    await publishUnder("private-user-alice", { event: "note", data: 7 }, { authorization: `Bearer ${PUBLISH_KEY}` });
    expect(await s.expect("msg")).toMatchObject({ e: "note", d: 7 });
    expect((await sse.expect("msg")).frame).toMatchObject({ e: "note", d: 7 });
    await sse.cancel();
    s.close();
  });

  it("refuses as the standalone Worker does: no session 4401, a channel it does not grant 4403", async () => {
    const [none, noneFrame] = await open("/v1/channels/private-user-alice/ws");
    expect(noneFrame).toMatchObject({ t: "err", code: "unauthorized" });
    expect((await none.closed).code).toBe(4401);
    const [other, otherFrame] = await open("/v1/channels/private-user-alice/ws", BOB);
    expect(otherFrame).toMatchObject({ t: "err", code: "forbidden" });
    expect((await other.closed).code).toBe(4403);
    expect((await call("/rt/v1/channels/private-user-alice/messages")).status).toBe(401);
    expect((await call("/rt/v1/channels/private-user-alice/messages", { headers: ALICE })).status).toBe(200);
  });

  it("presence takes the session's sub and info", async () => {
    const [s] = await open("/v1/channels/presence-lobby/ws", ALICE);
    expect(await s.expect("members")).toMatchObject({ members: [{ id: "alice", info: { name: "alice" } }] });
    expect(await (await call("/rt/v1/channels/presence-lobby/presence", { headers: ALICE })).json()).toMatchObject({ count: 1 });
    s.close();
  });

  it("a bearer credential wins over the session: the hook is not asked", async () => {
    const other = await token({ sub: "carol", ch: ["private-carol"] });
    const [, frame] = await open(`/v1/channels/private-user-alice/ws?token=${other}`, ALICE);
    expect(frame).toMatchObject({ t: "err", code: "forbidden" });
  });

  it("the session grant ends at its exp: the socket is closed with 4401, as a token's is", async () => {
    const [s, welcome] = await open("/v1/channels/private-user-bob/ws", BOB);
    expect(welcome).toMatchObject({ t: "welcome" });
    await new Promise((r) => setTimeout(r, 2500));
    await runDurableObjectAlarm(hubOf("private-user-bob"));
    expect(await s.next()).toMatchObject({ t: "err", code: "unauthorized" });
    expect((await s.closed).code).toBe(4401);
  });

  it("/v1/ws: the connection's grant is the session's, per channel", async () => {
    const [s, welcome] = await open("/v1/ws", ALICE);
    expect(welcome).toMatchObject({ t: "welcome", v: 2 });
    s.send({ t: "sub", ch: "private-user-alice" });
    expect(await s.expect("subscribed")).toMatchObject({ ch: "private-user-alice" });
    s.send({ t: "sub", ch: "private-user-bob" });
    expect(await s.expect("err")).toMatchObject({ ch: "private-user-bob", code: "forbidden" });
    s.close();
  });
});

describe("the hook and the options", () => {
  const request = (path: string, init?: RequestInit) => new Request(`${BASE}${path}`, init);
  const post = (path: string) => request(path, { method: "POST", headers: { "content-type": "text/plain", cookie: "session=secret-cookie" }, body: "hi" });

  it("a hook that throws answers 500 and grants nothing; the cookie stays out of the logs", async () => {
    const rt = hibercast({ prefix: "/rt", authorize: () => { throw new Error("session store down"); } });
    const res = await rt.fetch(post(`/rt/v1/channels/${channelName("chat")}/messages`), env, createExecutionContext());
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({ error: { code: "internal", message: expect.stringMatching(/authorize hook failed/) } });
    expect(loggedEvents("error")).toMatchObject([{ where: "authorize hook", error: expect.stringMatching(/session store down/) }]);
    expect(JSON.stringify(loggedEvents("error"))).not.toMatch(/secret-cookie/);
  });

  it("a grant that is not one answers 500; an expired one is refused as an expired token (401)", async () => {
    const answer = async (grant: unknown) => {
      const rt = hibercast({ prefix: "/rt", authorize: () => grant as never });
      const res = await rt.fetch(post(`/rt/v1/channels/${channelName("chat")}/messages`), env, createExecutionContext());
      return [res.status, ((await res.json()) as { error: { message: string } }).error.message];
    };
    const soon = Math.floor(Date.now() / 1000) + 60;
    expect(await answer({ sub: "u", pub: ["*"] })).toEqual([500, expect.stringMatching(/"exp" is required/)]);
    expect(await answer({ sub: "u", pub: "chat-*", exp: soon })).toEqual([500, 'session grant claim "pub" must be an array of strings']);
    expect(await answer({ sub: "", exp: soon })).toEqual([500, 'session grant claim "sub" must be a non-empty string']);
    expect(await answer(undefined)).toEqual([500, expect.stringMatching(/must answer a grant/)]);
    expect(await answer({ sub: "u", pub: ["*"], exp: soon - 120 })).toEqual([401, "session grant expired"]);
    // exp in ms (Date.now() + ...), or a grant that would outlive any session: the host's bug.
    expect(await answer({ sub: "u", pub: ["*"], exp: Date.now() + 60_000 })).toEqual([500, expect.stringMatching(/more than 7 days ahead: seconds since epoch \(not ms\)/)]);
  });

  it("a grant with no sub is one publisher however its exp moves: a retry is a duplicate", async () => {
    const ch = channelName("chat");
    const publishWith = async (exp: number) => {
      const rt = hibercast({ prefix: "/rt", authorize: () => ({ pub: [ch], exp }) });
      const body = JSON.stringify({ event: "said", data: "hi", id: "guest-1" });
      const res = await rt.fetch(request(`/rt/v1/channels/${ch}/messages`, { method: "POST", headers: { "content-type": "application/json" }, body }), env, createExecutionContext());
      return (await res.json()) as { seq: number; duplicate: boolean };
    };
    const now = Math.floor(Date.now() / 1000);
    expect(await publishWith(now + 60)).toMatchObject({ seq: 1, duplicate: false });
    expect(await publishWith(now + 61)).toMatchObject({ seq: 1, duplicate: true });
  });

  it("a host Worker without the bindings is told which it lacks", async () => {
    const res = await hibercast({ prefix: "/rt" }).fetch(request("/rt/healthz"), { ROOMS: env.ROOMS }, createExecutionContext());
    expect([res.status, ((await res.json()) as { error: { message: string } }).error.message]).toEqual([500, expect.stringMatching(/lacks the Durable Object bindings EDGES, DIRECTORY/)]);
  });

  it("bad options fail when the host's module loads, saying what is wrong", () => {
    expect(() => hibercast({ prefix: "rt" })).toThrow(/prefix must start with \//);
    expect(() => hibercast({ prefix: "/rt/" })).toThrow(/must not end with \/ \(use "\/rt"\)/);
    expect(() => hibercast({ prefix: "" })).toThrow(/must start with \//);
    for (const prefix of ["/a//b", "/rt?x", "/../rt", "/r t"]) expect(() => hibercast({ prefix })).toThrow(/path segments/);
    expect(() => hibercast({ prefix: "/rt", authorize: "yes" as never })).toThrow(/authorize must be a function/);
    expect(hibercast({ prefix: "/api/rt" }).handles(request("/api/rt/v1/ws"))).toBe(true);
  });
});
