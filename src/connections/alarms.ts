/** A job the alarm runs; answers when it next has work (ms since the epoch), or null. */
export type AlarmJob = (now: number) => number | null | Promise<number | null>;

/**
 * The room's one alarm, shared by named jobs (log retention, token expiry, presence liveness).
 * Storage is read once per wake and written only to move the alarm earlier.
 */
export class Alarm {
  /** Pending alarm time: undefined until read from storage once per wake. */
  private at: number | null | undefined;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly jobs: Record<string, AlarmJob>,
  ) {}

  /** Makes sure the alarm fires by `at`. */
  async by(at: number): Promise<void> {
    this.at ??= await this.storage.getAlarm();
    if (this.at !== null && this.at <= at) return;
    this.at = at;
    await this.storage.setAlarm(at);
  }

  /** Runs `job` now to learn when it is next due, but only when no alarm is pending at all. */
  async ifNone(job: string): Promise<void> {
    this.at ??= await this.storage.getAlarm();
    if (this.at !== null) return;
    const next = await this.jobs[job]!(Date.now());
    if (next !== null) await this.by(next);
  }

  /** The alarm fired: run every job, then wake again for the earliest next one (≥ 1 s away). */
  async fire(now = Date.now()): Promise<void> {
    this.at = null;
    const due = (await Promise.all(Object.values(this.jobs).map((job) => job(now)))).filter((t): t is number => t !== null);
    if (due.length > 0) await this.by(Math.max(Math.min(...due), now + 1000));
  }
}
