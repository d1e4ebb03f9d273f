// Work on one channel, one step at a time: a push that arrives while a socket is being attached,
// or while a gap is being fetched, waits its turn, so frames reach sockets in seq order and a new
// socket's replay is never overtaken. A channel's chain is dropped once its last step settled, so
// an edge that served many channels keeps none of them.
export class Serial {
  private readonly chains = new Map<string, Promise<unknown>>();

  /** Runs `step` after every earlier step for `key`. */
  run<T>(key: string, step: () => Promise<T>): Promise<T> {
    const next = (this.chains.get(key) ?? Promise.resolve()).then(step, step);
    const settled = next.then(
      () => {},
      () => {},
    );
    this.chains.set(key, settled);
    void settled.then(() => {
      if (this.chains.get(key) === settled) this.chains.delete(key);
    });
    return next;
  }

  /** Keys with steps still queued or running (for tests of boundedness). */
  get size(): number {
    return this.chains.size;
  }
}
