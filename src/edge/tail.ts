// An edge's tail of one channel: the last frames the hub sent it, in memory, so a resume or a
// rewind on the edge is served without asking the hub when the tail covers it. It keeps the
// replay contract (test/replay-log.case.ts): it answers `reset` whenever it cannot serve a cursor
// exactly, and the edge then asks the hub's log instead.
import type { Cursor } from "../protocol/index.js";
import type { LoggedMessage, Replay, ReplaySource } from "../hub/replay-log.js";

export class ChannelTail implements ReplaySource {
  private frames: LoggedMessage[] = [];

  constructor(
    /** The epoch of the frames kept. */
    public epoch: string,
    /** The last seq the edge has delivered (frames up to it, as many as kept). */
    public lastSeq: number,
    private readonly capacity: number,
  ) {}

  /** Appends the next message; it must follow `lastSeq` (the edge repairs gaps first). */
  push(m: LoggedMessage): void {
    if (m.seq !== this.lastSeq + 1) throw new Error(`tail: seq ${m.seq} does not follow ${this.lastSeq}`);
    this.frames.push(m);
    if (this.frames.length > this.capacity) this.frames.splice(0, this.frames.length - this.capacity);
    this.lastSeq = m.seq;
  }

  /** Starts over after a reset: nothing kept, live continues after `seq`. */
  restart(seq: number, epoch: string): void {
    this.frames = [];
    this.lastSeq = seq;
    this.epoch = epoch;
  }

  /** The first seq the tail can serve (lastSeq + 1 when it keeps nothing). */
  private get first(): number {
    return this.frames[0]?.seq ?? this.lastSeq + 1;
  }

  since(cursor: Cursor, _now: number, limit = -1): Replay {
    if (cursor.epoch !== null && cursor.epoch !== this.epoch) return { reset: true };
    if (cursor.seq > this.lastSeq || cursor.seq + 1 < this.first) return { reset: true };
    const from = cursor.seq + 1 - this.first;
    const messages = this.frames.slice(from, limit < 0 ? undefined : from + limit);
    return { reset: false, messages };
  }

  last(n: number, _now: number): LoggedMessage[] {
    return n <= 0 ? [] : this.frames.slice(-n);
  }

  /** Whether the last `n` messages of the channel are all here. */
  holdsLast(n: number): boolean {
    return this.frames.length >= Math.min(n, this.lastSeq);
  }
}
