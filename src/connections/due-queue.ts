// Deadlines an alarm job works through (token expiries, idle connections), in order, so a run
// looks at what is due and nothing else: walking every connection on each run cost O(connections)
// about once a second on an edge whose connections' tokens expire at many different times. Built
// once per wake from the sockets' attachments; entries that changed since are checked and
// skipped when they come up.

export class DueQueue<K> {
  private items: { at: number; key: K }[] | null = null;

  /** `build` lists every deadline as the attachments hold them (once per wake, on first use). */
  constructor(private readonly build: () => { at: number; key: K }[]) {}

  private list(): { at: number; key: K }[] {
    return (this.items ??= this.build().sort((a, b) => a.at - b.at));
  }

  add(at: number, key: K): void {
    const list = this.list();
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.at <= at) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, { at, key });
  }

  /** Takes the entries due by `now` (the caller checks each is still current). */
  due(now: number): { at: number; key: K }[] {
    const list = this.list();
    let n = 0;
    while (n < list.length && list[n]!.at <= now) n++;
    return list.splice(0, n);
  }

  /** The next deadline, or null. */
  next(): number | null {
    return this.list()[0]?.at ?? null;
  }
}
