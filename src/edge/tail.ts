// An edge's tail of one channel: the last frames the hub sent it, in memory, so a resume or a
// rewind on the edge is served without asking the hub when the tail covers it. It keeps the
// replay contract (test/replay-log.case.ts): it answers `reset` whenever it cannot serve a cursor
// exactly, and the edge then asks the hub's log instead.
import type { Cursor } from "../protocol/index.js";
import type { LoggedMessage, Replay, ReplaySource } from "../hub/replay-log.js";

/** What one kept frame costs in memory, about: its data and names, and a little for the object. */
const sizeOf = (m: LoggedMessage) => m.data.length + m.id.length + m.event.length + 64;

export class ChannelTail implements ReplaySource {
  private frames: LoggedMessage[] = [];
  /** Bytes of the frames kept (see sizeOf). */
  private size = 0;
  /** Appends among the frames kept: a rewind must then be compacted, which the hub's log does. */
  private appends = 0;

  constructor(
    /** The epoch of the frames kept. */
    public epoch: string,
    /** The last seq the edge has delivered (frames up to it, as many as kept). */
    public lastSeq: number,
    private readonly capacity: number,
    /** Bytes the kept frames may take now (the edge shares its budget over its channels). */
    private readonly maxBytes: () => number = () => Infinity,
    /** The channel's LOG_MAX_AGE_S: an older frame is not served from here, as the log would not serve it. */
    private readonly maxAgeS: () => number = () => Infinity,
  ) {}

  /** Drops frames past the channel's retention, so the tail never serves what the log no longer does. */
  private expire(now: number): void {
    const cutoff = now - this.maxAgeS() * 1000;
    let drop = 0;
    while (drop < this.frames.length && this.frames[drop]!.ts < cutoff) this.forget(this.frames[drop++]!);
    if (drop > 0) this.frames.splice(0, drop);
  }

  private forget(m: LoggedMessage): void {
    this.size -= sizeOf(m);
    if (m.ref !== undefined) this.appends--;
  }

  /** Bytes the kept frames take. */
  get bytes(): number {
    return this.size;
  }

  /**
   * Appends the next message; it must follow `lastSeq` (the edge repairs gaps first). The oldest
   * frames go past the frame count or the byte budget: a resume older than what is kept is
   * served by the hub's log instead, so a smaller tail costs a round trip, never a message.
   */
  push(m: LoggedMessage): void {
    if (m.seq !== this.lastSeq + 1) throw new Error(`tail: seq ${m.seq} does not follow ${this.lastSeq}`);
    this.frames.push(m);
    this.size += sizeOf(m);
    if (m.ref !== undefined) this.appends++;
    this.lastSeq = m.seq;
    const maxBytes = this.maxBytes();
    let drop = 0;
    while (this.frames.length - drop > this.capacity || (this.size > maxBytes && drop < this.frames.length)) this.forget(this.frames[drop++]!);
    if (drop > 0) this.frames.splice(0, drop);
  }

  /** Starts over after a reset: nothing kept, live continues after `seq`. */
  restart(seq: number, epoch: string): void {
    this.frames = [];
    this.size = 0;
    this.appends = 0;
    this.lastSeq = seq;
    this.epoch = epoch;
  }

  /** The first seq the tail can serve (lastSeq + 1 when it keeps nothing). */
  private get first(): number {
    return this.frames[0]?.seq ?? this.lastSeq + 1;
  }

  since(cursor: Cursor, now: number, limit = -1): Replay {
    this.expire(now);
    if (cursor.epoch !== null && cursor.epoch !== this.epoch) return { reset: true };
    if (cursor.seq > this.lastSeq || cursor.seq + 1 < this.first) return { reset: true };
    const from = cursor.seq + 1 - this.first;
    const messages = this.frames.slice(from, limit < 0 ? undefined : from + limit);
    return { reset: false, messages };
  }

  last(n: number, now: number): LoggedMessage[] {
    this.expire(now);
    return n <= 0 ? [] : this.frames.slice(-n);
  }

  /** Whether the last `n` messages of the channel are all here (none expired: else the hub answers). */
  holdsLast(n: number, now: number): boolean {
    const kept = this.frames.length;
    this.expire(now);
    return this.appends === 0 && this.frames.length === kept && kept >= Math.min(n, this.lastSeq);
  }
}
