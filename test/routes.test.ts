import { describe, expect, it } from "vitest";
import { asServiceError, ServiceError } from "../src/server/service-error";
import { call, channelName, PUBLISH_KEY } from "./helpers";

async function errorOf(res: Response) {
  return { status: res.status, ...(await res.json<{ error: { code: string; message: string } }>()).error };
}

describe("routes", () => {
  it("GET /healthz answers ok", async () => {
    const res = await call("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
  });

  it("HEAD answers wherever GET does, with GET's status and headers and no body", async () => {
    const ch = channelName();
    for (const path of ["/healthz", "/", "/console", `/v1/channels/${ch}`, `/v1/channels/${ch}/messages`, `/v1/channels/${ch}/sse`]) {
      const [get, head] = [await call(path), await call(path, { method: "HEAD" })];
      expect([path, head.status]).toEqual([path, get.status]);
      expect(head.headers.get("content-type")).toBe(get.headers.get("content-type"));
      expect(await head.text()).toBe("");
      await get.body?.cancel();
    }
    // HEAD of a stream opens nothing in the room.
    expect(await (await call(`/v1/channels/${ch}`)).json()).toMatchObject({ subscribers: 0 });
    expect((await call("/v2/nothing", { method: "HEAD" })).status).toBe(404);
    expect((await call("/v1/publish", { method: "HEAD" })).status).toBe(405);
  });

  it("the Pusher endpoint is off unless PUSHER_APP_ID, PUSHER_KEY and PUSHER_SECRET are set: its routes are 404", async () => {
    const socket = await call("/app/some-key?protocol=7");
    expect(await errorOf(socket)).toMatchObject({ status: 404, code: "not_found", message: expect.stringContaining("PUSHER_SECRET") });
    expect(await errorOf(await call("/apps/1/events", { method: "POST", body: "{}" }))).toMatchObject({ status: 404, code: "not_found" });
    expect(await errorOf(await call("/apps/1/channels"))).toMatchObject({ status: 404, code: "not_found" });
  });

  it("GET /v1/channels takes the publish key, and says the directory of occupied channels is kept only with the Pusher endpoint on", async () => {
    const key = { authorization: `Bearer ${PUBLISH_KEY}` };
    expect(await errorOf(await call("/v1/channels"))).toMatchObject({ status: 401, code: "unauthorized" });
    expect(await errorOf(await call("/v1/channels", { headers: { authorization: "Bearer not-the-key" } }))).toMatchObject({ status: 403, code: "forbidden" });
    expect(await errorOf(await call("/v1/channels", { headers: key }))).toMatchObject({ status: 404, code: "not_found", message: expect.stringContaining("PUSHER_SECRET") });
    expect(await errorOf(await call("/v1/channels", { method: "POST", headers: key }))).toMatchObject({ status: 405, code: "method_not_allowed" });
  });

  it("an unknown route is 404 not_found", async () => {
    expect(await errorOf(await call("/v2/nothing"))).toMatchObject({ status: 404, code: "not_found" });
    expect(await errorOf(await call(`/v1/channels/${channelName()}/nope`))).toMatchObject({ status: 404, code: "not_found" });
  });

  it("a wrong method is 405 method_not_allowed", async () => {
    const ch = channelName();
    expect(await errorOf(await call(`/v1/channels/${ch}/messages`, { method: "PUT", body: "x" }))).toMatchObject({ status: 405, code: "method_not_allowed" });
    expect(await errorOf(await call(`/v1/channels/${ch}/ws`, { method: "POST" }))).toMatchObject({ status: 405, code: "method_not_allowed" });
    expect(await errorOf(await call(`/v1/channels/${ch}`, { method: "PATCH" }))).toMatchObject({ status: 405, code: "method_not_allowed" });
    expect(await errorOf(await call("/healthz", { method: "POST" }))).toMatchObject({ status: 405, code: "method_not_allowed" });
  });

  it("the ws route without Upgrade: websocket is 426 upgrade_required", async () => {
    expect(await errorOf(await call(`/v1/channels/${channelName()}/ws`))).toMatchObject({ status: 426, code: "upgrade_required" });
  });

  const badNames = ["bad%20name", "a".repeat(129), "%C3%A9t%C3%A9", "..%2F..%2Fetc", "slash%2Fname", "%E0%A4%A"];
  for (const name of badNames) {
    it(`rejects the channel name ${name.slice(0, 20)}${name.length > 20 ? "…" : ""} with 400`, async () => {
      const res = await call(`/v1/channels/${name}`);
      expect(await errorOf(res)).toMatchObject({ status: 400, code: "bad_request" });
    });
  }

  it("accepts every allowed character, percent-encoded or not", async () => {
    const name = "Az09_-.:=@,;";
    const plain = await call(`/v1/channels/${name}`);
    expect(plain.status).toBe(200);
    expect((await plain.json<{ channel: string }>()).channel).toBe(name);
    const encoded = await call(`/v1/channels/${encodeURIComponent(name)}`);
    expect((await encoded.json<{ channel: string }>()).channel).toBe(name);
    expect((await call(`/v1/channels/${"a".repeat(128)}`)).status).toBe(200);
  });

  it("sends CORS headers and answers preflights (ALLOWED_ORIGINS defaults to *)", async () => {
    const pre = await call(`/v1/channels/${channelName()}/messages`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization" },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    expect(pre.headers.get("access-control-allow-headers")).toMatch(/authorization/);
    const res = await call(`/v1/channels/${channelName()}`, { headers: { origin: "https://app.example" } });
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    const err = await call("/nothing", { headers: { origin: "https://app.example" } });
    expect(err.headers.get("access-control-allow-origin")).toBe("*");
  });
});

describe("runtime errors", () => {
  it("answers an overloaded or retryable room with 503 unavailable, anything unknown as a 500", () => {
    expect(asServiceError(Object.assign(new Error("Durable Object is overloaded"), { overloaded: true }))?.status).toBe(503);
    expect(asServiceError(Object.assign(new Error("Network connection lost"), { retryable: true }))?.code).toBe("unavailable");
    expect(asServiceError(new Error("boom"))).toBeNull();
    const own = new ServiceError("forbidden", "no");
    expect(asServiceError(own)).toBe(own);
  });
});

describe("console page", () => {
  it("is served at / and /console with a strict CSP when CONSOLE=on", async () => {
    for (const path of ["/", "/console"]) {
      const res = await call(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/html/);
      expect(res.headers.get("content-security-policy")).toMatch(/default-src 'none'; script-src 'sha256-[^']+'/);
      const html = await res.text();
      expect(html).toContain("<title>hibercast console</title>");
      expect(html).not.toMatch(/test-publish-key|test-jwt-secret/);
    }
  });
});
