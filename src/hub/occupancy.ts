// Whether a channel has subscribers, as its hub sees it (its own sockets, and edges that hold
// some), with Pusher's debounce: a channel is vacated only after VACATE_AFTER_MS with none, so a
// quick refill (a page reload) changes nothing. Kept in storage, so an evicted or restarted hub
// neither repeats nor misses a change. Only hubs that need it (Pusher's channel list, webhooks)
// track it, and only accepts and closes touch it: never the publish path.
import { OCCUPANCY_KEY } from "../schema.js";

/** How long a channel stays occupied after its last subscriber leaves. */
export const VACATE_AFTER_MS = 5000;


interface Stored {
  /** The channel (a hub may wake in an alarm, before anything names it). */
  channel: string;
  occupied: boolean;
  /** When the channel was last seen empty while still occupied (ms), or null. */
  emptySince: number | null;
}

export class Occupancy {
  private state: Stored | undefined;

  /** `changed` runs in the same step as the stored change, so what it writes is written with it. */
  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly changed: (channel: string, occupied: boolean, now: number) => void,
  ) {}

  private read(): Stored {
    return (this.state ??= this.storage.kv.get<Stored>(OCCUPANCY_KEY) ?? { channel: "", occupied: false, emptySince: null });
  }

  private write(next: Stored): void {
    this.state = next;
    this.storage.kv.put(OCCUPANCY_KEY, next);
  }

  /** The hub keeps no storage any more (nothing to report): the stored state goes too. */
  forget(): void {
    this.state = undefined;
    this.storage.kv.delete(OCCUPANCY_KEY);
  }

  get occupied(): boolean {
    return this.read().occupied;
  }

  /** A subscriber of `channel` arrived. */
  arrived(channel: string, now: number): void {
    const s = this.read();
    if (s.occupied && s.emptySince === null) return;
    this.write({ channel, occupied: true, emptySince: null });
    if (!s.occupied) this.changed(channel, true, now);
  }

  /**
   * A subscriber left and the channel may be empty now (a close handler cannot count exactly:
   * the closing socket may still be listed). Answers when to look (the alarm's `check`), or null.
   */
  mayBeEmpty(now: number): number | null {
    const s = this.read();
    if (!s.occupied) return null;
    if (s.emptySince === null) this.write({ ...s, emptySince: now });
    return (s.emptySince ?? now) + VACATE_AFTER_MS;
  }

  /** The alarm's job, with an exact count: vacates a channel empty for VACATE_AFTER_MS. */
  check(subscribers: number, now: number): number | null {
    const s = this.read();
    if (!s.occupied || s.emptySince === null) return null;
    if (subscribers > 0) {
      this.write({ ...s, emptySince: null });
      return null;
    }
    if (now - s.emptySince < VACATE_AFTER_MS) return s.emptySince + VACATE_AFTER_MS;
    this.write({ ...s, occupied: false, emptySince: null });
    this.changed(s.channel, false, now);
    return null;
  }
}
