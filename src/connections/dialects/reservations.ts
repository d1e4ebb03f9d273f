// Subscriptions a connection is setting up right now (not in its attachment yet): several
// subscribe frames may be handled at once, and each must count toward MAX_SUBSCRIPTIONS, and an
// unsubscribe that arrives while its subscribe is on its way must win (DESIGN v1.3 "Nothing
// outlives its owner").
import { ServiceError } from "../../server/service-error.js";

export class Reservations {
  /** cid → channel → cancelled (an unsubscribe came while subscribing). */
  private readonly pending = new Map<string, Map<string, boolean>>();

  /**
   * Runs a connection's subscribe to `ch` while holding its place. Answers false, doing nothing,
   * when the connection is subscribed to `ch` already or on its way; refuses one over `max`.
   */
  async hold(cid: string, ch: string, subscribed: Record<string, unknown>, max: number, subscribe: () => Promise<void>): Promise<boolean> {
    const mine = this.pending.get(cid) ?? new Map<string, boolean>();
    if (subscribed[ch] !== undefined || mine.has(ch)) return false;
    if (Object.keys(subscribed).length + mine.size >= max) throw new ServiceError("too_large", `at most ${max} channels per connection (MAX_SUBSCRIPTIONS)`);
    mine.set(ch, false);
    this.pending.set(cid, mine);
    try {
      await subscribe();
      return true;
    } finally {
      mine.delete(ch);
      if (mine.size === 0) this.pending.delete(cid);
    }
  }

  /** An unsubscribe for a channel still being subscribed: marks it; answers whether it was pending. */
  cancel(cid: string, ch: string): boolean {
    const mine = this.pending.get(cid);
    if (mine?.has(ch) !== true) return false;
    mine.set(ch, true);
    return true;
  }

  /** Whether an unsubscribe overtook this subscribe (checked right before it takes effect). */
  cancelled(cid: string, ch: string): boolean {
    return this.pending.get(cid)?.get(ch) === true;
  }
}
