// Deadlines an alarm job works through (token expiries, idle connections), in order, so a run
// looks at what is due and nothing else: walking every connection on each run cost O(connections)
// about once a second on an edge whose connections' tokens expire at many different times. Built
// once per wake from the sockets' attachments. One deadline per key: a new one for a key replaces
// the old, and a key whose deadline no longer applies is deleted, so the queue holds no more than
// the live keys however often a client subscribes and leaves (each of which sets or clears one).

interface Entry<K> {
  at: number;
  key: K;
}

export class DueQueue<K> {
  private items: (Entry<K> & { id: string })[] | null = null;
  /** The deadline each key has in `items`. */
  private readonly ats = new Map<string, number>();

  /** `build` lists every deadline as the attachments hold them (once per wake, on first use); `idOf` names a key. */
  constructor(
    private readonly build: () => Entry<K>[],
    private readonly idOf: (key: K) => string = String,
  ) {}

  private list(): (Entry<K> & { id: string })[] {
    if (this.items === null) {
      // One sort, not an insert each: a wake may list a deadline for every subscription.
      const byId = new Map<string, Entry<K> & { id: string }>();
      for (const { at, key } of this.build()) {
        const id = this.idOf(key);
        byId.set(id, { at, key, id });
      }
      this.items = [...byId.values()].sort((a, b) => a.at - b.at);
      for (const { id, at } of this.items) this.ats.set(id, at);
    }
    return this.items;
  }

  /** The first index whose deadline is after `at`, or the first at `at` when `first`. */
  private bound(at: number, first: boolean): number {
    const list = this.items!;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.at < at || (!first && list[mid]!.at === at)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Sets the key's deadline (replacing the one it had). */
  add(at: number, key: K): void {
    const list = this.list();
    const id = this.idOf(key);
    this.remove(id);
    list.splice(this.bound(at, false), 0, { at, key, id });
    this.ats.set(id, at);
  }

  /** The key has no deadline any more. */
  delete(key: K): void {
    this.list();
    this.remove(this.idOf(key));
  }

  private remove(id: string): void {
    const at = this.ats.get(id);
    if (at === undefined) return;
    const list = this.items!;
    for (let i = this.bound(at, true); i < list.length && list[i]!.at === at; i++) {
      if (list[i]!.id === id) {
        list.splice(i, 1);
        break;
      }
    }
    this.ats.delete(id);
  }

  /** Takes the entries due by `now` (the caller checks each is still current). */
  due(now: number): Entry<K>[] {
    const list = this.list();
    const taken = list.splice(0, this.bound(now, false));
    for (const { id } of taken) this.ats.delete(id);
    return taken.map(({ at, key }) => ({ at, key }));
  }

  /** The next deadline, or null. */
  next(): number | null {
    return this.list()[0]?.at ?? null;
  }

  /** How many deadlines are kept. */
  get size(): number {
    return this.list().length;
  }
}
