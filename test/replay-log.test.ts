import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ReplayLog } from "../src/hub/replay-log";
import { channelName, hubOf } from "./helpers";
import { replaySourceContract } from "./replay-log.case";

/** Wraps the room's SQL storage to add up rowsWritten over every statement. */
function counting(sql: SqlStorage) {
  const counter = { written: 0 };
  const exec = (query: string, ...bindings: SqlStorageValue[]) => {
    const cursor = sql.exec(query, ...bindings);
    const rows = cursor.toArray();
    counter.written += cursor.rowsWritten;
    return { toArray: () => rows };
  };
  return { sql: { exec } as unknown as SqlStorage, counter };
}

const retention = { maxMessages: 1000, maxAgeS: 3600, dedupeWindowS: 300 };
const input = (i: number) => ({ event: "e", data: JSON.stringify({ i }), id: `id-${i}` });

replaySourceContract("the channel's SQLite log", (maxMessages, body) =>
  runInDurableObject(hubOf(channelName("contract")), (_room, state) => {
    const log = new ReplayLog(state.storage.sql, { ...retention, maxMessages });
    body({
      source: log,
      append: (n) => {
        for (let i = 0; i < n; i++) {
          const seq = log.lastSeq + 1;
          log.record("contract", { event: "e", data: String(seq), id: `contract-${seq}` }, null, Date.now());
        }
      },
    });
  }),
);

it("writes at most 2 SQLite rows per publish in steady state", async () => {
  const stub = hubOf(channelName());
  await runInDurableObject(stub, (_room, state) => {
    const { sql, counter } = counting(state.storage.sql);
    const log = new ReplayLog(sql, retention);
    const now = Date.now();
    log.append("c", input(0), null, now); // creates the schema and the meta row
    const before = counter.written;
    expect(before).toBeGreaterThan(0); // the counter sees writes at all
    for (let i = 1; i <= 100; i++) {
      expect(log.findId("", `id-${i}`, now)).toBeNull();
      log.append("c", input(i), null, now);
    }
    expect(counter.written - before).toBeGreaterThanOrEqual(100);
    expect((counter.written - before) / 100).toBeLessThanOrEqual(2);
    expect(log.lastSeq).toBe(101);
  });
});

it("creates no storage for reads of a channel that never had a publish", async () => {
  const stub = hubOf(channelName());
  await runInDurableObject(stub, (_room, state) => {
    const log = new ReplayLog(state.storage.sql, retention);
    expect(log.since({ seq: 0, epoch: null }, Date.now())).toEqual({ reset: false, messages: [] });
    expect(log.last(10, Date.now())).toEqual([]);
    expect(log.stats(Date.now())).toEqual({ count: 0, oldestSeq: null });
    expect(log.findId("", "x", Date.now())).toBeNull();
    log.purge(Date.now());
    expect(state.storage.sql.databaseSize).toBeLessThanOrEqual(4096 * 2);
    const tables = state.storage.sql.exec("SELECT name FROM sqlite_master WHERE name IN ('log', 'meta', 'dedupe')").toArray();
    expect(tables).toEqual([]);
  });
});

it("keeps seqs counting and the epoch new after a purge", async () => {
  const stub = hubOf(channelName());
  await runInDurableObject(stub, (_room, state) => {
    const log = new ReplayLog(state.storage.sql, retention);
    const now = Date.now();
    for (let i = 1; i <= 3; i++) log.append("c", input(i), null, now);
    const epoch = log.epoch;
    log.purge(now);
    expect(log.epoch).not.toBe(epoch);
    expect(log.stats(now)).toEqual({ count: 0, oldestSeq: null });
    expect(log.since({ seq: 3, epoch }, now)).toEqual({ reset: true });
    expect(log.findId("", "id-2", now)).toBe(2);
    expect(log.append("c", input(4), null, now).seq).toBe(4);
    // A fresh instance reads the same state back from storage.
    const again = new ReplayLog(state.storage.sql, retention);
    expect([again.lastSeq, again.epoch]).toEqual([4, log.epoch]);
  });
});

replaySourceContract("an edge's tail", async (maxMessages, body) => {
  const { ChannelTail } = await import("../src/edge/tail");
  const tail = new ChannelTail("tail-epoch", 0, maxMessages);
  body({
    source: tail,
    append: (n) => {
      for (let i = 0; i < n; i++) {
        const seq = tail.lastSeq + 1;
        tail.push({ seq, id: `tail-${seq}`, event: "e", data: String(seq), ts: Date.now(), sender: null });
      }
    },
  });
});

describe("an edge's tail is bounded in bytes", () => {
  it("keeps the newest frames within its byte budget, and answers reset for what it dropped", async () => {
    const { ChannelTail } = await import("../src/edge/tail");
    const tail = new ChannelTail("e", 0, 512, () => 256 * 1024);
    const big = "x".repeat(60 * 1024);
    for (let seq = 1; seq <= 20; seq++) tail.push({ seq, id: `b-${seq}`, event: "e", data: JSON.stringify(big), ts: Date.now(), sender: null });
    // 20 × 60 KiB would be 1.2 MiB: only the last few fit in 256 KiB.
    expect(tail.bytes).toBeLessThanOrEqual(256 * 1024);
    const kept = tail.last(20, Date.now()).map((m) => m.seq);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.at(-1)).toBe(20);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 21 - kept.length + i));
    // A cursor before the kept frames is the hub's to serve: the tail says reset, never a gap.
    expect(tail.since({ seq: 1, epoch: "e" }, Date.now())).toEqual({ reset: true });
    expect(tail.since({ seq: kept[0]! - 1, epoch: "e" }, Date.now())).toMatchObject({ reset: false });
  });
});

describe("an edge's tail keeps the channel's retention", () => {
  it("serves nothing older than LOG_MAX_AGE_S: a cursor or rewind into expired frames goes to the hub", async () => {
    const { ChannelTail } = await import("../src/edge/tail");
    const now = Date.now();
    const tail = new ChannelTail("e", 0, 512, () => Infinity, () => 60);
    for (let seq = 1; seq <= 4; seq++) tail.push({ seq, id: `r-${seq}`, event: "e", data: "1", ts: seq <= 2 ? now - 120_000 : now, sender: null });
    expect(tail.last(4, now).map((m) => m.seq)).toEqual([3, 4]);
    expect(tail.since({ seq: 1, epoch: "e" }, now)).toEqual({ reset: true });
    expect(tail.since({ seq: 2, epoch: "e" }, now)).toMatchObject({ reset: false, messages: [{ seq: 3 }, { seq: 4 }] });
    expect(tail.holdsLast(3, now)).toBe(false);
  });
});

describe("an alarm's due queue", () => {
  it("hands out what is due in deadline order, once, and says the next deadline", async () => {
    const { DueQueue } = await import("../src/connections/due-queue");
    const q = new DueQueue<string>(() => [
      { at: 30, key: "c" },
      { at: 10, key: "a" },
    ]);
    q.add(20, "b");
    q.add(10, "a2");
    expect(q.next()).toBe(10);
    expect(q.due(20).map((e) => e.key)).toEqual(["a", "a2", "b"]);
    expect(q.due(20)).toEqual([]);
    expect(q.next()).toBe(30);
  });

  it("keeps one deadline per key: a new one replaces the old, a deleted key has none", async () => {
    const { DueQueue } = await import("../src/connections/due-queue");
    const q = new DueQueue<{ cid: string; ch: string }>(() => [], ({ cid, ch }) => `${cid}\n${ch}`);
    for (let i = 0; i < 1000; i++) q.add(1000 + i, { cid: "c1", ch: "a" });
    q.add(500, { cid: "c1", ch: "b" });
    q.add(700, { cid: "c2", ch: "a" });
    expect(q.size).toBe(3);
    q.delete({ cid: "c2", ch: "a" });
    q.delete({ cid: "nobody", ch: "a" });
    expect(q.due(5000).map((e) => [e.at, e.key.ch])).toEqual([
      [500, "b"],
      [1999, "a"],
    ]);
    expect(q.size).toBe(0);
    q.add(10, { cid: "c1", ch: "a" }); // taken keys can come back
    expect(q.next()).toBe(10);
  });
});

describe("ids of signed Pusher HTTP API requests", () => {
  it("are remembered as long as a signed request can be replayed (1200 s), past DEDUPE_WINDOW_S", async () => {
    await runInDurableObject(hubOf(channelName()), (_room, state) => {
      const short = { maxMessages: 2, maxAgeS: 3600, dedupeWindowS: 300 };
      const log = new ReplayLog(state.storage.sql, short);
      const now = Date.now();
      const at = now - 400_000; // published 400 s ago: past the 300 s window, inside 1200 s
      log.record("c", { event: "e", data: "1", id: "pusher:abc:c:0" }, null, at);
      log.record("c", { event: "e", data: "2", id: "origin-1" }, null, at);
      for (let i = 0; i < 4; i++) log.record("c", { event: "e", data: "3", id: `later-${i}` }, null, now);
      log.trim(now);
      // Both were trimmed from the log; only the signed request's id is still a duplicate.
      expect(log.findId("", "pusher:abc:c:0", now)).toBe(1);
      expect(log.findId("", "origin-1", now)).toBeNull();
      // A client's id that looks the same is its own, with the ordinary window.
      expect(log.findId("u:mallory", "pusher:abc:c:0", now)).toBeNull();
      expect(log.findId("", "pusher:abc:c:0", now + 900_000)).toBeNull();
    });
  });
});
