import { log } from "../server/log.js";

/** A job the alarm runs; answers when it next has work (ms since the epoch), or null. */
export type AlarmJob = (now: number) => number | null | Promise<number | null>;

/** A job that threw is tried again this much later (the runtime's own alarm retry is not used). */
const FAILED_JOB_RETRY_MS = 30_000;
/** The furthest ahead the alarm is set. */
const MAX_AHEAD_MS = 86_400_000;

/**
 * The room's one alarm, shared by named jobs (log retention, token expiry, presence liveness).
 * Storage is read once per wake and written only to move the alarm earlier.
 *
 * Callers interleave freely (several `by()` in one turn, a job's `by()` while the alarm runs):
 * every decision reads `at` after its last await and writes it before its next one, so an
 * earlier wake-up is never overwritten by a later one, or by a stale read of storage.
 */
export class Alarm {
  /** Pending alarm time: undefined until read from storage once per wake. */
  private at: number | null | undefined;
  /** The one storage read of this wake, shared by every caller that needs `at` meanwhile. */
  private reading: Promise<void> | null = null;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly jobs: Record<string, AlarmJob>,
  ) {}

  /** Makes sure `at` is known. The stored value is taken only if nothing set `at` meanwhile. */
  private async known(): Promise<void> {
    if (this.at !== undefined) return;
    await (this.reading ??= this.storage.getAlarm().then((stored) => {
      this.at ??= stored;
    }).finally(() => {
      this.reading = null;
    }));
  }

  /** Makes sure the alarm fires by `at`. */
  async by(wanted: number): Promise<void> {
    // A token's exp may be any number: one the runtime cannot take would leave `at` set with no
    // alarm behind it. A day at most: the jobs say again when they are next due.
    const at = Math.min(wanted, Date.now() + MAX_AHEAD_MS);
    await this.known();
    // Read after the await: another call may have moved the alarm while this one waited.
    const pending = this.at ?? null;
    if (pending !== null && pending <= at) return;
    this.at = at;
    await this.storage.setAlarm(at);
  }

  /** Runs `job` now to learn when it is next due, but only when no alarm is pending at all. */
  async ifNone(job: string): Promise<void> {
    await this.known();
    if (this.at !== null) return;
    const next = await this.jobs[job]!(Date.now());
    if (next !== null) await this.by(next);
  }

  /**
   * The alarm fired: run every job, then wake again for the earliest next one (≥ 1 s away). A job
   * that throws is logged and tried again later; it never costs the other jobs their wake-up.
   */
  async fire(now = Date.now()): Promise<void> {
    this.at = null;
    const names = Object.keys(this.jobs);
    const results = await Promise.allSettled(names.map(async (name) => this.jobs[name]!(now)));
    const due: number[] = [];
    results.forEach((result, i) => {
      if (result.status === "fulfilled") {
        if (result.value !== null) due.push(result.value);
        return;
      }
      log("error", { where: "alarm job", job: names[i], error: String(result.reason) });
      due.push(now + FAILED_JOB_RETRY_MS);
    });
    if (due.length > 0) await this.by(Math.max(Math.min(...due), now + 1000));
  }
}
