// Runs with small limits (see vitest.config.ts, project "strict"): REQUIRE_AUTH=true,
// ALLOWED_ORIGINS=https://app.example, LOG_MAX_MESSAGES=10, LOG_MAX_AGE_S=60,
// DEDUPE_WINDOW_S=120, MAX_MESSAGE_BYTES=1024, MAX_SOCKETS=3, CLIENT_PUB_PER_S=3,
// PRESENCE_MAX_MEMBERS=2.
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, channelName, eventually, hubOf, publish, publishOk, TestSocket, token } from "../helpers";

const stubOf = hubOf;
const grant = (ch: string, extra: Record<string, unknown> = {}) => token({ sub: "u", ch: [ch], ...extra });
const subscribe = async (ch: string, query = "") => TestSocket.subscribe(ch, `?token=${await grant(ch)}${query}`);
const statsOf = async (ch: string) =>
  (await call(`/v1/channels/${ch}`, { headers: { authorization: "Bearer test-publish-key" } })).json<{
    seq: number;
    epoch: string;
    subscribers: number;
    log: { count: number; oldestSeq: number | null };
  }>();
const rowCount = (ch: string, table: string) =>
  runInDurableObject(stubOf(ch), (_r, state) => state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`).one().n);

describe("REQUIRE_AUTH=true", () => {
  it("needs a token on public channels too", async () => {
    const ch = channelName();
    const s = await TestSocket.open(`/v1/channels/${ch}/ws`);
    expect(await s.next()).toMatchObject({ t: "err", code: "unauthorized" });
    expect((await s.closed).code).toBe(4401);
    const other = await TestSocket.open(`/v1/channels/${ch}/ws?token=${await grant("somewhere-else")}`);
    expect((await other.closed).code).toBe(4403);
    expect((await subscribe(ch))[1].t).toBe("welcome");
    expect((await call(`/v1/channels/${ch}`)).status).toBe(401);
  });
});

describe("ALLOWED_ORIGINS", () => {
  it("refuses socket upgrades from other origins with 4403, allows listed ones and non-browsers", async () => {
    const ch = channelName();
    const t = await grant(ch);
    const evil = await TestSocket.open(`/v1/channels/${ch}/ws?token=${t}`, { origin: "https://evil.example" });
    expect(await evil.next()).toMatchObject({ t: "err", code: "forbidden", message: /origin/ });
    expect((await evil.closed).code).toBe(4403);
    expect((await TestSocket.subscribe(ch, `?token=${t}`, { origin: "https://app.example" }))[1].t).toBe("welcome");
    expect((await TestSocket.subscribe(ch, `?token=${t}`))[1].t).toBe("welcome");
  });

  it("sends CORS headers only to listed origins", async () => {
    const ok = await call("/healthz", { headers: { origin: "https://app.example" } });
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const other = await call("/healthz", { headers: { origin: "https://evil.example" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("MAX_SOCKETS and MAX_MESSAGE_BYTES", () => {
  it("refuses the socket over MAX_SOCKETS with an unavailable err and 4503", async () => {
    const ch = channelName();
    for (let i = 0; i < 3; i++) await subscribe(ch);
    const s = await TestSocket.open(`/v1/channels/${ch}/ws?token=${await grant(ch)}`);
    expect(await s.next()).toMatchObject({ t: "err", code: "unavailable" });
    expect((await s.closed).code).toBe(4503);
  });

  it("keeps its socket count across closes and eviction: a freed place is taken again, no more", async () => {
    const ch = channelName();
    const sockets = [];
    for (let i = 0; i < 3; i++) sockets.push((await subscribe(ch))[0]);
    sockets[0]!.close();
    await sockets[0]!.closed;
    await eventually(() => statsOf(ch), (st) => st.subscribers === 2);
    const [again] = await subscribe(ch);
    const over = await TestSocket.open(`/v1/channels/${ch}/ws?token=${await grant(ch)}`);
    expect((await over.closed).code).toBe(4503);
    // A woken room counts its hibernated sockets once, then keeps the count.
    await evictDurableObject(stubOf(ch));
    const full = await TestSocket.open(`/v1/channels/${ch}/ws?token=${await grant(ch)}`);
    expect((await full.closed).code).toBe(4503);
    again.close();
    await again.closed;
    await eventually(() => statsOf(ch), (st) => st.subscribers === 2);
    await subscribe(ch);
  });

  it("answers 413 for a body of MAX_MESSAGE_BYTES + 1 and accepts one of exactly the limit", async () => {
    const ch = channelName();
    const body = (n: number) => `{"event":"e","data":"${"x".repeat(n - 23)}"}`;
    expect(body(1024).length).toBe(1024);
    expect((await publish(ch, body(1024))).status).toBe(200);
    const res = await publish(ch, body(1025));
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "too_large" } });
  });

  it("takes a socket frame under MAX_MESSAGE_BYTES, counted in UTF-8 bytes", async () => {
    const ch = channelName();
    const [s] = await TestSocket.subscribe(ch, `?token=${await grant(ch, { pub: [ch] })}`);
    // 700 ASCII characters: 3 × 700 is over 1024, the real size is not.
    s.send({ t: "pub", e: "e", d: "x".repeat(650), id: "ascii" });
    expect((await s.take("ack", 1))[0]).toMatchObject({ id: "ascii", seq: 1 });
    // 400 three-byte characters: 1200 bytes, over the limit though under 1024 characters.
    s.send({ t: "pub", e: "e", d: "€".repeat(400) });
    expect((await s.closed).code).toBe(1009);
  });

  it("closes a socket with 1009 on a frame over MAX_MESSAGE_BYTES", async () => {
    const ch = channelName();
    const [s] = await subscribe(ch);
    s.send({ t: "pub", e: "e", d: "x".repeat(1100) });
    expect((await s.closed).code).toBe(1009);
  });
});

describe("CLIENT_PUB_PER_S", () => {
  it("answers rate_limited, then closes with 4429 when the client keeps going", async () => {
    const ch = channelName();
    const [s] = await TestSocket.subscribe(ch, `?token=${await grant(ch, { pub: [ch] })}`);
    // 20 frames: however they split across a second boundary, one second sees more than 2x3.
    for (let i = 0; i < 20; i++) s.send({ t: "pub", e: "spam", d: i, id: `s-${i}` });
    const { code } = await s.closed;
    expect(code).toBe(4429);
    const frames = s.pending();
    expect(frames.some((f) => f.t === "err" && f.code === "rate_limited")).toBe(true);
    const acks = frames.filter((f) => f.t === "ack");
    expect(acks.length).toBeGreaterThanOrEqual(3);
    expect(acks.length).toBeLessThanOrEqual(6);
    // Every ack names a message that is in the log: nothing acknowledged is lost.
    expect((await statsOf(ch)).seq).toBe(acks.length);
  });
});

describe("retention", () => {
  it("keeps the last LOG_MAX_MESSAGES and resets cursors older than that", async () => {
    const ch = channelName();
    for (let i = 1; i <= 25; i++) await publishOk(ch, "m", i, `id-${i}`);
    expect((await statsOf(ch)).log).toEqual({ count: 10, oldestSeq: 16 });
    expect(await rowCount(ch, "log")).toBeLessThanOrEqual(11);

    const [old] = await subscribe(ch, "&since=14");
    expect(await old.next()).toMatchObject({ t: "reset", seq: 25 });
    const [edge] = await subscribe(ch, "&since=15");
    expect((await edge.take("msg", 10)).map((m) => m.seq)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
    const [rewound] = await subscribe(ch, "&rewind=100");
    expect((await rewound.take("msg", 10))[0]!.seq).toBe(16);
  });

  it("still answers a trimmed message's id as a duplicate within DEDUPE_WINDOW_S", async () => {
    const ch = channelName();
    await publishOk(ch, "m", 0, "first");
    for (let i = 1; i <= 20; i++) await publishOk(ch, "m", i);
    expect(await publishOk(ch, "m", 0, "first")).toMatchObject({ seq: 1, duplicate: true, delivered: 0 });
  });

  it("drops messages older than LOG_MAX_AGE_S on read at once and from storage by the alarm", async () => {
    const ch = channelName();
    for (let i = 1; i <= 5; i++) await publishOk(ch, "m", i);
    const { epoch } = await statsOf(ch);
    // Age the stored rows by 61 s; a fresh instance reads them as they are in storage.
    await runInDurableObject(stubOf(ch), (_r, state) => state.storage.sql.exec("UPDATE log SET ts = ts - 61000"));
    await evictDurableObject(stubOf(ch));

    expect(await statsOf(ch)).toMatchObject({ seq: 5, epoch, log: { count: 0, oldestSeq: null } });
    const [s] = await subscribe(ch, `&since=2&epoch=${epoch}`);
    expect(await s.next()).toMatchObject({ t: "reset", seq: 5, epoch });
    const [head] = await subscribe(ch, `&since=5&epoch=${epoch}`);
    expect(await head.settle()).toEqual([]);

    expect(await runDurableObjectAlarm(stubOf(ch))).toBe(true);
    expect(await rowCount(ch, "log")).toBe(0);
    // An emptied log keeps its epoch and keeps counting.
    expect(await publishOk(ch, "m", 6)).toMatchObject({ seq: 6 });
    expect(await statsOf(ch)).toMatchObject({ seq: 6, epoch, log: { count: 1, oldestSeq: 6 } });
  });

  it("forgets ids after DEDUPE_WINDOW_S once their message is gone", async () => {
    const ch = channelName();
    await publishOk(ch, "m", 1, "once");
    for (let i = 2; i <= 13; i++) await publishOk(ch, "m", i);
    // 13 messages, 10 kept: the ids of seqs 1-3 are remembered apart from the log.
    expect(await rowCount(ch, "dedupe")).toBe(3);
    await runInDurableObject(stubOf(ch), (_r, state) => state.storage.sql.exec("UPDATE dedupe SET ts = ts - 121000"));
    await evictDurableObject(stubOf(ch));
    await runDurableObjectAlarm(stubOf(ch));
    expect(await rowCount(ch, "dedupe")).toBe(0);
    expect(await publishOk(ch, "m", 1, "once")).toMatchObject({ seq: 14, duplicate: false });
  });
});

describe("PRESENCE_MAX_MEMBERS", () => {
  it("lists at most the cap and stops join/leave frames beyond it, counting still", async () => {
    const ch = channelName("presence-big");
    const join = async (sub: string) => {
      const [s] = await TestSocket.subscribe(ch, `?token=${await token({ sub, ch: [ch] })}`);
      return { s, members: await s.expect("members") };
    };
    const a = await join("a");
    await join("b");
    expect(await a.s.next()).toMatchObject({ t: "join", member: { id: "b" } });
    const c = await join("c");
    expect(c.members.members).toHaveLength(2);
    expect(c.members.count).toBe(3);
    expect(await a.s.settle()).toEqual([]); // no join for the third member
    expect(await statsOf(ch)).toMatchObject({ presence: 3 });
  });
});

describe("CONSOLE off (the production default)", () => {
  it("does not serve the console page", async () => {
    for (const path of ["/", "/console"]) {
      const res = await call(path);
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ error: { code: "not_found" } });
    }
  });
});
