import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, channelName, type HistoryPage, publishOk, seqsOf, TestSocket, token, hubOf } from "./helpers";

type History = HistoryPage;
const history = async (ch: string, query = "", headers: Record<string, string> = {}) => {
  const res = await call(`/v1/channels/${ch}/messages${query}`, { headers });
  return { status: res.status, body: await res.json<History & { error?: { code: string; message: string } }>() };
};
const seqs = (h: History) => seqsOf(h.messages);
const purge = (ch: string, key: string | null = "test-publish-key") =>
  call(`/v1/channels/${ch}/messages`, { method: "DELETE", headers: key === null ? {} : { authorization: `Bearer ${key}` } });

describe("history", () => {
  it("answers the last messages oldest first by default, as msg frames", async () => {
    const ch = channelName();
    for (let i = 1; i <= 5; i++) await publishOk(ch, "m", { i });
    const { status, body } = await history(ch, "?limit=3");
    expect(status).toBe(200);
    expect(seqs(body)).toEqual([3, 4, 5]);
    expect(body.messages[0]).toMatchObject({ t: "msg", ch, seq: 3, e: "m", d: { i: 3 } });
    expect(body).toMatchObject({ seq: 5, reset: false });
    expect(body.epoch).toMatch(/^[0-9a-f]{12}$/);
  });

  it("pages forward with since/epoch/limit and back with before/limit (newest first)", async () => {
    const ch = channelName();
    for (let i = 1; i <= 10; i++) await publishOk(ch, "m", i);
    const { body: first } = await history(ch, "?since=0&limit=4");
    expect(seqs(first)).toEqual([1, 2, 3, 4]);
    const { body: next } = await history(ch, `?since=4&epoch=${first.epoch}&limit=4`);
    expect(seqs(next)).toEqual([5, 6, 7, 8]);
    const { body: back } = await history(ch, "?before=8&limit=3");
    expect(seqs(back)).toEqual([7, 6, 5]);
    const { body: start } = await history(ch, "?before=2&limit=3");
    expect(seqs(start)).toEqual([1]);
  });

  it("answers reset: true with no messages when the cursor cannot be served", async () => {
    const ch = channelName();
    await publishOk(ch, "m", 1);
    const { body } = await history(ch, "?since=0&epoch=ffffffffffff");
    expect(body).toMatchObject({ messages: [], seq: 1, reset: true });
    expect((await history(ch, "?since=9")).body.reset).toBe(true);
  });

  it("answers an unused channel without creating it", async () => {
    const ch = channelName();
    const { body } = await history(ch);
    expect(body).toEqual({ messages: [], seq: 0, epoch: expect.stringMatching(/^[0-9a-f]{12}$/), reset: false });
    expect(await (await call(`/v1/channels/${ch}`)).json()).toMatchObject({ seq: 0, log: { count: 0, oldestSeq: null } });
    const tables = await runInDurableObject(hubOf(ch), (_room, state) => state.storage.sql.exec("SELECT name FROM sqlite_master").toArray());
    expect(tables.filter((t) => !String(t.name).startsWith("_cf"))).toEqual([]);
  });

  const bad: [string, number][] = [
    ["?since=1&before=3", 400],
    ["?limit=0", 400],
    ["?limit=-5", 400],
    ["?limit=ten", 400],
    ["?before=x", 400],
    ["?since=-1", 400],
  ];
  for (const [query, status] of bad) {
    it(`refuses ${query} with ${status}`, async () => {
      const { status: got, body } = await history(channelName(), query);
      expect(got).toBe(status);
      expect(body.error?.code).toBe("bad_request");
    });
  }

  it("caps limit at 1000 instead of refusing it", async () => {
    const ch = channelName();
    await publishOk(ch, "m", 1);
    expect((await history(ch, "?limit=5000")).status).toBe(200);
  });

  it("needs the subscribe token or the publish key on a private channel", async () => {
    const ch = channelName("private-hist");
    await publishOk(ch, "m", 1);
    expect((await history(ch)).status).toBe(401);
    expect((await history(ch, "", { authorization: "Bearer test-publish-key" })).status).toBe(200);
    expect((await history(ch, `?token=${await token({ sub: "u", ch: [ch] })}`)).status).toBe(200);
    expect((await history(ch, `?token=${await token({ sub: "u", ch: ["private-other"] })}`)).status).toBe(403);
  });
});

describe("purge", () => {
  it("empties the log, starts a new epoch, keeps counting seqs and resets connected clients", async () => {
    const ch = channelName();
    for (let i = 1; i <= 3; i++) await publishOk(ch, "m", i, `p-${i}`);
    const [s] = await TestSocket.subscribe(ch);
    const before = (await history(ch)).body.epoch;
    const res = await purge(ch);
    expect(res.status).toBe(200);
    const answer = await res.json<{ seq: number; epoch: string }>();
    expect(answer.seq).toBe(3);
    expect(answer.epoch).not.toBe(before);
    expect(await s.next()).toEqual({ t: "reset", seq: 3, epoch: answer.epoch });

    expect((await history(ch)).body).toEqual({ messages: [], seq: 3, epoch: answer.epoch, reset: false });
    expect((await history(ch, `?since=1&epoch=${before}`)).body.reset).toBe(true);
    // Seqs are never reused, and a retried id is still recognised.
    expect(await publishOk(ch, "m", 4)).toMatchObject({ seq: 4 });
    expect(await publishOk(ch, "m", 1, "p-1")).toMatchObject({ seq: 1, duplicate: true });
    expect(await s.next()).toMatchObject({ t: "msg", seq: 4 });
  });

  it("needs the publish key: 401 without, 403 with a token or a wrong key", async () => {
    const ch = channelName();
    await publishOk(ch, "m", 1);
    expect((await purge(ch, null)).status).toBe(401);
    expect((await purge(ch, "nope")).status).toBe(403);
    const withToken = await purge(ch, await token({ sub: "u", pub: ["*"], ch: ["*"] }));
    expect(withToken.status).toBe(403);
    expect((await withToken.json<{ error: { message: string } }>()).error.message).toBe("this needs the publish key; a token cannot do it");
    expect((await history(ch)).body.messages).toHaveLength(1);
  });
});
