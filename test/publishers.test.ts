// One rule set for every publisher (DESIGN v1.3): idempotency ids are scoped by publisher, and a
// token's HTTP publishes are rate limited like a socket's; the publish key is neither.
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { TABLES } from "../src/schema";
import { call, channelName, hubOf, publish, token, type HistoryPage } from "./helpers";

const history = async (ch: string) => (await call(`/v1/channels/${ch}/messages`, { headers: { authorization: "Bearer test-publish-key" } })).json<HistoryPage>();

describe("idempotency ids are scoped by publisher", () => {
  it("a client cannot pre-claim the origin's id: the origin's message is published and delivered", async () => {
    const ch = channelName("orders");
    const client = await token({ sub: "mallory", ch: [ch], pub: [ch] });
    const forged = await publish(ch, { event: "paid", data: "fake", id: "order-1001" }, { key: client });
    expect(await forged.json()).toMatchObject({ seq: 1, duplicate: false });
    const real = await publish(ch, { event: "paid", data: { amount: 12 }, id: "order-1001" });
    expect(await real.json()).toMatchObject({ seq: 2, id: "order-1001", duplicate: false });
    const page = await history(ch);
    expect(page.messages.map((m) => [m.d, m.u ?? null])).toEqual([["fake", "mallory"], [{ amount: 12 }, null]]);
  });

  it("a retry by the same publisher is still a duplicate (the key's, and a token user's)", async () => {
    const ch = channelName("orders");
    const client = await token({ sub: "ann", ch: [ch], pub: [ch] });
    for (const key of [undefined, client]) {
      const first = await (await publish(ch, { event: "e", data: 1, id: "retry-me" }, { key })).json<{ seq: number }>();
      const again = await (await publish(ch, { event: "e", data: 1, id: "retry-me" }, { key })).json<{ seq: number; duplicate: boolean }>();
      expect(again).toMatchObject({ seq: first.seq, duplicate: true });
    }
    // Another token of the same user is the same publisher; a different user is not.
    const sameUser = await token({ sub: "ann", ch: [ch], pub: [ch] }, { expiresIn: "2h" });
    expect(await (await publish(ch, { event: "e", data: 1, id: "retry-me" }, { key: sameUser })).json()).toMatchObject({ duplicate: true });
    const other = await token({ sub: "bob", ch: [ch], pub: [ch] });
    expect(await (await publish(ch, { event: "e", data: 1, id: "retry-me" }, { key: other })).json()).toMatchObject({ duplicate: false });
  });
});

describe("HTTP publishes with a token are rate limited per token user", () => {
  it("refuses a token past clientPubPerS (429 rate_limited) while the publish key goes on", async () => {
    const ch = channelName("flood");
    const client = await token({ sub: "flooder", ch: [ch], pub: [ch] });
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => publish(ch, { event: "e", data: i }, { key: client })));
    const statuses = answers.map((r) => r.status);
    // CLIENT_PUB_PER_S is 10: however the 30 fall across a second boundary, at most 20 are accepted.
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(20);
    const refused = answers.find((r) => r.status === 429)!;
    expect(await refused.json()).toMatchObject({ error: { code: "rate_limited" } });
    const byKey = await Promise.all(Array.from({ length: 30 }, (_, i) => publish(ch, { event: "k", data: i })));
    expect(byKey.every((r) => r.status === 200)).toBe(true);
  });

  it("counts a batch's items against the same limit", async () => {
    const ch = channelName("flood");
    const client = await token({ sub: "batcher", ch: [ch], pub: [ch] });
    const messages = Array.from({ length: 50 }, (_, i) => ({ channel: ch, event: "e", data: i }));
    const res = await call("/v1/publish", { method: "POST", headers: { authorization: `Bearer ${client}`, "content-type": "application/json" }, body: JSON.stringify({ messages }) });
    const { results } = await res.json<{ results: { error?: { code: string } }[] }>();
    expect(results.every((r) => r.error?.code === "rate_limited")).toBe(true);
    expect((await history(ch)).messages).toEqual([]);
  });
});

describe("schema migration", () => {
  it("brings a 0.3.0 log (ids without a scope) to the current version once, keeping its messages and their dedupe", async () => {
    const ch = channelName("migrate");
    await runInDurableObject(hubOf(ch), (_room, state) => {
      // 0.3.0's tables, as it made them.
      state.storage.sql.exec(`CREATE TABLE meta (k INTEGER PRIMARY KEY CHECK (k = 0), channel TEXT NOT NULL, epoch TEXT NOT NULL, last_seq INTEGER NOT NULL);
CREATE TABLE log (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL, ts INTEGER NOT NULL, sender TEXT);
CREATE UNIQUE INDEX log_id ON log (id);
CREATE TABLE dedupe (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, ts INTEGER NOT NULL) WITHOUT ROWID;`);
      state.storage.sql.exec("INSERT INTO meta VALUES (0, ?, 'e0e0e0e0e0e0', 2)", ch);
      state.storage.sql.exec("INSERT INTO log VALUES (2, 'kept', 'e', '1', ?, NULL)", Date.now());
      state.storage.sql.exec("INSERT INTO dedupe VALUES ('trimmed', 1, ?)", Date.now());
    });
    // The next wake finds 0.3.0's storage, as after a deploy.
    await evictDurableObject(hubOf(ch));
    const answers = await Promise.all(["kept", "trimmed", "fresh"].map(async (id) => (await publish(ch, { event: "e", data: 1, id })).json<{ seq: number; duplicate: boolean }>()));
    expect(answers).toEqual([
      expect.objectContaining({ seq: 2, duplicate: true }),
      expect.objectContaining({ seq: 1, duplicate: true }),
      expect.objectContaining({ seq: 3, duplicate: false }),
    ]);
    const shape = await runInDurableObject(hubOf(ch), (_room, state) => ({
      version: state.storage.kv.get("schema-version"),
      log: state.storage.sql.exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE name = 'log'").one().sql,
    }));
    expect(shape.version).toBe(3);
    expect(shape.log).toContain("scope");
    expect(TABLES.log).toContain("scope");
  });

  it.each([true, false])("brings a 0.4.0 log (version 2, stamped: %s) to version 3: its messages can grow by appends", async (stamped) => {
    const ch = channelName("migrate");
    await runInDurableObject(hubOf(ch), (_room, state) => {
      // 0.4.0's tables, as it made them, stamped version 2.
      state.storage.sql.exec(`CREATE TABLE meta (k INTEGER PRIMARY KEY CHECK (k = 0), channel TEXT NOT NULL, epoch TEXT NOT NULL, last_seq INTEGER NOT NULL);
CREATE TABLE log (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL, ts INTEGER NOT NULL, sender TEXT, scope TEXT NOT NULL DEFAULT '', skip TEXT);
CREATE UNIQUE INDEX log_scope_id ON log (scope, id);
CREATE TABLE dedupe (scope TEXT NOT NULL DEFAULT '', id TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (scope, id)) WITHOUT ROWID;`);
      state.storage.sql.exec("INSERT INTO meta VALUES (0, ?, 'e0e0e0e0e0e0', 1)", ch);
      state.storage.sql.exec(`INSERT INTO log VALUES (1, 'answer', 'token', '"Hel"', ?, NULL, '', NULL)`, Date.now());
      // Stamped or not: a log made after its object's first wake was never stamped.
      if (stamped) state.storage.kv.put("schema-version", 2);
    });
    await evictDurableObject(hubOf(ch));
    const res = await publish(ch, { append: "answer", data: "lo", id: "a1" });
    expect(await res.json()).toMatchObject({ seq: 2, ref: 1, duplicate: false });
    const page = await (await call(`/v1/channels/${ch}/messages`)).json<{ messages: { d: unknown; v?: number }[] }>();
    expect(page.messages).toEqual([expect.objectContaining({ d: "Hello", v: 2 })]);
    expect(await runInDurableObject(hubOf(ch), (_room, state) => state.storage.kv.get("schema-version"))).toBe(3);
  });

  it("writes nothing for a hub that never had a publish (reads never create storage)", async () => {
    const ch = channelName("migrate");
    await call(`/v1/channels/${ch}`);
    const stored = await runInDurableObject(hubOf(ch), (room, state) => ({ name: (room as unknown as { channel: string }).channel, keys: [...state.storage.kv.list()].length }));
    // Its name comes from the runtime (ctx.id.name), not from anything stored.
    expect(stored).toEqual({ name: ch, keys: 0 });
  });
});
