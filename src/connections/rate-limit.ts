/** What to do with one more socket publish: take it, refuse it, or cut the socket off. */
export type RateVerdict = "ok" | "refuse" | "cut";

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
