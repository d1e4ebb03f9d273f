/** What to do with one more socket publish: take it, refuse it, or cut the socket off. */
export type RateVerdict = "ok" | "refuse" | "cut";

/** Windows kept before those of past seconds are swept. */
const SWEEP_AT = 1024;

/**
 * Socket publishes per connection per second. Over the limit a publish is refused; a client that
 * keeps going to twice the limit within the second is cut off. Kept in memory: losing the
 * counts on hibernation is harmless (a hibernated room had no publishes this second).
 */
export class PublishRate {
  private readonly windows = new Map<string, { second: number; count: number }>();

  take(cid: string, perSecond: number, now = Date.now()): RateVerdict {
    const second = Math.floor(now / 1000);
    const w = this.windows.get(cid);
    if (w === undefined || w.second !== second) {
      // One entry per publisher seen this second, not per publisher ever: past seconds go when
      // there are many (HTTP publishers, unlike sockets, never say they are gone).
      if (w === undefined && this.windows.size >= SWEEP_AT) for (const [k, v] of this.windows) if (v.second !== second) this.windows.delete(k);
      this.windows.set(cid, { second, count: 1 });
      return "ok";
    }
    w.count++;
    if (w.count <= perSecond) return "ok";
    return w.count > 2 * perSecond ? "cut" : "refuse";
  }

  forget(cid: string): void {
    this.windows.delete(cid);
  }
}
