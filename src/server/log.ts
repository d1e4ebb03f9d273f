/**
 * Structured logs: one JSON line per event, so Workers Logs can filter and aggregate on fields.
 * Callers pass counts, ids and durations only; tokens, keys and message bodies never reach a
 * log line.
 *
 * Every line goes through one sink. In production it is the console (Workers Logs reads it);
 * tests install their own sink to keep the output quiet and to assert on what was logged.
 */
export type LogEvent = "connect" | "refused" | "publish" | "append" | "purge" | "close" | "expired" | "swept" | "slow" | "config" | "gap" | "sync" | "webhook" | "error";

export type LogFields = Record<string, string | number | boolean | null | undefined>;
export type LogLine = { event: LogEvent } & LogFields;
export type LogSink = (line: LogLine) => void;

const consoleSink: LogSink = (line) => {
  const text = JSON.stringify(line);
  if (line.event === "error" || line.event === "config") console.error(text);
  else console.log(text);
};

let sink: LogSink = consoleSink;

/** Replaces where log lines go; `null` restores the console. Answers the previous sink. */
export function setLogSink(next: LogSink | null): LogSink {
  const previous = sink;
  sink = next ?? consoleSink;
  return previous;
}

export function log(event: LogEvent, fields: LogFields): void {
  try {
    sink({ event, ...fields });
  } catch {
    // a broken sink must never break the request it describes
  }
}

/**
 * At most `perSecond` lines of one event in full; past that, the lines of the second are counted
 * and one summary line `{event, <kept fields>, suppressed: n}` says how many were left out. A mass
 * reconnect of a full room would otherwise write (and bill) one line per socket, and the
 * logging alone made accepting sockets markedly slower.
 */
export class LogBudget {
  private window = 0;
  private used = 0;
  private suppressed = 0;
  private flush: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly event: LogEvent,
    private readonly perSecond: number,
    /** Fields of the last suppressed line that the summary repeats (e.g. the channel). */
    private readonly keep: string[],
  ) {}
  private summary: LogFields = {};

  log(fields: LogFields, now = Date.now()): void {
    const second = Math.floor(now / 1000);
    if (second !== this.window) {
      this.window = second;
      this.used = 0;
    }
    if (++this.used <= this.perSecond) return log(this.event, fields);
    this.suppressed++;
    this.summary = Object.fromEntries(this.keep.map((k) => [k, fields[k]]));
    this.flush ??= setTimeout(() => this.report(), 1000 - (now % 1000));
  }

  private report(): void {
    this.flush = null;
    if (this.suppressed === 0) return;
    log(this.event, { ...this.summary, suppressed: this.suppressed });
    this.suppressed = 0;
  }
}

/** An error as a log field: its message and, where it has one, its cause's (never a stack). */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.cause === undefined ? String(err) : `${String(err)} (cause: ${errorText(err.cause)})`;
}
