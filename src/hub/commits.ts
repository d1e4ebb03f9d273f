// Group commit for a hub's Durable Streams appends. An append that finds none in progress runs at
// once; appends that come while one is running or its commit is pending wait, then run together,
// in the order they came, and share the next commit. A durable write costs its commit more than
// its row, and each caller is still answered only once its own write is durable (the output gate
// holds every answer until then). No timer: a lone append never waits.
/** Writes that may wait at most: past them a write is answered `full()` at once (a stuck one holds up the rest). */
export const MAX_WAITING = 1024;

export class Commits {
  private busy = false;
  private queue: Array<() => Promise<void>> = [];

  constructor(private readonly storage: DurableObjectStorage) {}

  run<T>(write: () => Promise<T>, full: () => T): Promise<T> {
    if (this.busy && this.queue.length >= MAX_WAITING) return Promise.resolve(full());
    if (this.busy) return new Promise<T>((resolve, reject) => this.queue.push(() => write().then(resolve, reject)));
    this.busy = true;
    const done = write();
    void done.catch(() => {}).then(() => this.committed());
    return done;
  }

  /** Once what ran is durable, the appends that waited run, then their own commit is awaited. */
  private async committed(): Promise<void> {
    for (;;) {
      await this.storage.sync().catch(() => {});
      const jobs = this.queue;
      this.queue = [];
      if (jobs.length === 0) break;
      for (const job of jobs) await job();
    }
    this.busy = false;
  }
}
