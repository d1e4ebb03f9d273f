// The replay contract as one suite that any ReplaySource runs (as hono's router tests share
// common.case.test.ts): the channel's SQLite log now, an edge's tail cache later. Each
// implementation supplies a harness that keeps `maxMessages` and appends messages 1, 2, 3, ….
import { describe, expect, it } from "vitest";
import type { ReplaySource } from "../src/hub/replay-log";

export interface ReplayHarness {
  source: ReplaySource;
  /** Appends `n` more messages (data = their seq), in order. */
  append(n: number): void;
}

/** Runs `body` against a fresh source that keeps at most `maxMessages`. */
export type WithSource = (maxMessages: number, body: (h: ReplayHarness) => void) => Promise<void>;

const seqs = (r: ReturnType<ReplaySource["since"]>) => (r.reset ? "reset" : r.messages.map((m) => m.seq));

export function replaySourceContract(name: string, withSource: WithSource): void {
  describe(`${name}: the replay contract`, () => {
    it("serves what came after a cursor, oldest first, and nothing at the head", () =>
      withSource(100, ({ source, append }) => {
        append(5);
        const now = Date.now();
        expect(seqs(source.since({ seq: 2, epoch: source.epoch }, now))).toEqual([3, 4, 5]);
        expect(seqs(source.since({ seq: 0, epoch: source.epoch }, now))).toEqual([1, 2, 3, 4, 5]);
        expect(seqs(source.since({ seq: 5, epoch: source.epoch }, now))).toEqual([]);
        expect(source.lastSeq).toBe(5);
      }));

    it("keeps data as stored, with ids, events and timestamps", () =>
      withSource(100, ({ source, append }) => {
        append(2);
        const r = source.since({ seq: 1, epoch: source.epoch }, Date.now());
        expect(r.reset).toBe(false);
        if (r.reset) return;
        expect(r.messages[0]).toMatchObject({ seq: 2, data: "2", event: expect.any(String), id: expect.any(String), ts: expect.any(Number) });
      }));

    it("honours a limit", () =>
      withSource(100, ({ source, append }) => {
        append(10);
        expect(seqs(source.since({ seq: 3, epoch: source.epoch }, Date.now(), 2))).toEqual([4, 5]);
      }));

    it("answers reset, never a gap: a cursor past the head, from another epoch, or older than kept", () =>
      withSource(3, ({ source, append }) => {
        append(10);
        const now = Date.now();
        expect(seqs(source.since({ seq: 11, epoch: source.epoch }, now))).toBe("reset");
        expect(seqs(source.since({ seq: 9, epoch: "another-epoch" }, now))).toBe("reset");
        expect(seqs(source.since({ seq: 6, epoch: source.epoch }, now))).toBe("reset");
        expect(seqs(source.since({ seq: 7, epoch: source.epoch }, now))).toEqual([8, 9, 10]);
      }));

    it("checks no epoch when the cursor has none", () =>
      withSource(100, ({ source, append }) => {
        append(3);
        expect(seqs(source.since({ seq: 1, epoch: null }, Date.now()))).toEqual([2, 3]);
      }));

    it("answers the last n messages still kept, oldest first", () =>
      withSource(4, ({ source, append }) => {
        append(6);
        const now = Date.now();
        expect(source.last(2, now).map((m) => m.seq)).toEqual([5, 6]);
        expect(source.last(100, now).map((m) => m.seq)).toEqual([3, 4, 5, 6]);
        expect(source.last(0, now)).toEqual([]);
      }));

    it("names an epoch before anything was appended, and keeps it for the first message", () =>
      withSource(100, ({ source, append }) => {
        const before = source.epoch;
        expect(before).toMatch(/\S/);
        append(1);
        expect(source.epoch).toBe(before);
        expect(seqs(source.since({ seq: 0, epoch: before }, Date.now()))).toEqual([1]);
      }));
  });
}
