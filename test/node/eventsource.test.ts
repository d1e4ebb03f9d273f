// A real EventSource client (the `eventsource` package, which behaves like browsers'): it
// reconnects by itself after a TCP cut and sends Last-Event-ID, and the stream resumes exactly.
import { EventSource } from "eventsource";
import { expect, it } from "vitest";
import { channelName, publisher, sleep, TcpProxy, baseUrl, until } from "./helpers";

it("resumes exactly through EventSource's own reconnect with Last-Event-ID", { timeout: 30_000 }, async () => {
  const ch = channelName("es");
  const proxy = await TcpProxy.start(baseUrl());
  const es = new EventSource(`${proxy.url}/v1/channels/${ch}/sse`);
  const seqs: number[] = [];
  const ids: string[] = [];
  let welcomes = 0;
  es.onmessage = (e) => {
    seqs.push(JSON.parse(e.data).seq);
    ids.push(e.lastEventId);
  };
  es.addEventListener("welcome", () => welcomes++);
  try {
    await until(() => welcomes === 1);
    const pub = publisher();
    for (let i = 1; i <= 3; i++) await pub.publish(ch, "m", i);
    await until(() => seqs.length === 3);
    proxy.cut(); // a real drop: EventSource reconnects after `retry:` (2 s)
    for (let i = 4; i <= 6; i++) await pub.publish(ch, "m", i);
    await until(() => welcomes === 2, 10_000, "the reconnect");
    await pub.publish(ch, "m", 7);
    await until(() => seqs.length === 7, 5_000, "the replay and the live message");
    await sleep(100);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const epoch = ids[0]!.split(":")[0];
    expect(ids).toEqual(seqs.map((s) => `${epoch}:${s}`));
  } finally {
    es.close();
    await proxy.close();
  }
});
