// Rates from counters: the stats route answers a channel's `seq` (every publish and append takes
// one) and its `subscribers`, not a rate, so the page samples them every second and works out
// what was delivered per second in between. Nothing on the server counts for the console.
import { WINDOW_MS, type Point } from "./chart.js";

/** What the page reads of one channel's stats (`GET /v1/channels/:channel`). */
export interface Counts {
  channel: string;
  seq: number;
  subscribers: number;
}

export class Rates {
  readonly delivered: Point[] = [];
  readonly subscribers: Point[] = [];
  /** Messages per second at the last sample (before multiplying by subscribers). */
  messages = 0;
  /** When the first sample was taken. */
  since = Number.NaN;
  private last = new Map<string, { t: number; seq: number }>();

  /**
   * One sample of every watched channel at time `t`. Each message reaches each subscriber, so
   * delivered/s is messages/s times subscribers, summed over the channels (approximate where
   * subscribers came or went in between, or a publish excluded a connection).
   */
  add(t: number, counts: Counts[]): void {
    let delivered = 0;
    let messages = 0;
    let subscribers = 0;
    let rated = false;
    if (Number.isNaN(this.since)) this.since = t;
    for (const c of counts) {
      const before = this.last.get(c.channel);
      this.last.set(c.channel, { t, seq: c.seq });
      subscribers += c.subscribers;
      if (before === undefined || t <= before.t) continue;
      const perSecond = (Math.max(0, c.seq - before.seq) * 1000) / (t - before.t);
      messages += perSecond;
      delivered += perSecond * c.subscribers;
      rated = true;
    }
    this.messages = messages;
    if (rated) this.delivered.push({ t, v: delivered });
    this.subscribers.push({ t, v: subscribers });
    for (const series of [this.delivered, this.subscribers]) {
      while (series.length > 0 && series[0]!.t < t - WINDOW_MS) series.shift();
    }
  }

  now(series: Point[]): number {
    return series[series.length - 1]?.v ?? 0;
  }
}
