// Streaming an AI answer with appends, as an app does it: the origin publishes the message and
// appends each token (hibercast/publisher); browsers render it with the SDK (whole text after
// every append, also across drops, resumes and rewinds) or with pusher-js (`hibercast:append`).
import Pusher from "pusher-js";
import { afterAll, describe, expect, it } from "vitest";
import { connect, subscribe, type Message, type Subscription } from "../../src/client/index";
import { baseUrl, channelName, publisher, sleep, TcpProxy, until } from "./helpers";
import { NODE_PUSHER } from "./server";

const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

/** A model's answer: `n` tokens of a few characters, some of them not ASCII. */
const tokensOf = (n: number) => Array.from({ length: n }, (_, i) => (i % 7 === 3 ? ` é${i}` : ` t${i}`));

/** What a React app keeps: each message's latest text by id, as handlers hand it over. */
function render(sub: Subscription) {
  const answers = new Map<string, Message>();
  const fragments: number[] = [];
  sub.on("*", (_text, m) => {
    answers.set(m.id, m);
    fragments.push(m.v ?? m.seq);
  });
  return { answers, fragments };
}

describe("appends with the SDK", () => {
  it("hands the app each message's whole text after every append, and after a rewind", async () => {
    const pub = publisher();
    const ch = channelName("answer");
    const sub = subscribe({ url: baseUrl(), channel: ch });
    cleanup.push(() => sub.close());
    const { answers } = render(sub);
    const texts: string[] = [];
    sub.on("token", (text) => texts.push(text as string));
    await sub.ready();
    await pub.publish(ch, "token", "Hel", { id: "a1" });
    await pub.append(ch, "a1", "lo");
    await pub.append(ch, "a1", ", world", { done: true });
    await until(() => answers.get("a1")?.done === true);
    expect(texts).toEqual(["Hel", "Hello", "Hello, world"]);
    expect(answers.get("a1")).toMatchObject({ d: "Hello, world", appended: ", world", seq: 1, v: 3 });
    // A late joiner renders it once, whole.
    const late = subscribe({ url: baseUrl(), channel: ch, rewind: 10 });
    cleanup.push(() => late.close());
    const seen: string[] = [];
    late.on("token", (text) => seen.push(text as string));
    await until(() => seen.length === 1);
    await sleep(100);
    expect(seen).toEqual(["Hello, world"]);
  });

  it("grows a message over the socket with sub.append, acked with its ref", async () => {
    const ch = channelName("answer");
    const { token } = await import("./helpers");
    const sub = subscribe({ url: baseUrl(), channel: ch, token: await token({ sub: "bot", ch: [ch], pub: [ch] }) });
    cleanup.push(() => sub.close());
    const { answers } = render(sub);
    await sub.ready();
    const created = await sub.publish("token", "a", { id: "m" });
    const ack = await sub.append("m", "b", { done: true });
    expect(ack).toMatchObject({ seq: created.seq + 1, ref: created.seq, duplicate: false });
    await until(() => answers.get("m")?.done === true);
    expect(answers.get("m")!.d).toBe("ab");
  });
});

it("100 subscribers, an answer of 300 tokens, random TCP cuts: every subscriber ends with the exact text, each fragment once", { timeout: 120_000 }, async () => {
  const ch = channelName("chaos-answer");
  const proxy = await TcpProxy.start(baseUrl());
  cleanup.push(() => proxy.close());
  const tokens = tokensOf(300);
  const whole = "Answer:" + tokens.join("");
  const pub = publisher();
  await pub.publish(ch, "token", "Answer:", { id: "ans" });
  // Half on their own sockets, half on multiplexed connections; all from the cursor before the answer.
  const views: ReturnType<typeof render>[] = [];
  const subs: { close(): void; state: string }[] = [];
  for (let i = 0; i < 100; i++) {
    const options = { url: proxy.url, backoff: { initialMs: 20, maxMs: 500 }, connectTimeoutMs: 2000 };
    if (i % 2 === 0) {
      const sub = subscribe({ ...options, channel: ch, since: { seq: 0, epoch: null } });
      views.push(render(sub));
      subs.push(sub);
    } else {
      const conn = connect(options);
      views.push(render(conn.subscribe(ch, { since: { seq: 0, epoch: null } })));
      subs.push(conn);
    }
  }
  cleanup.push(() => subs.forEach((s) => s.close()));
  await until(() => subs.every((s) => s.state === "open"), 20_000, "all subscribers to connect");
  let cut = 0;
  const cutting = (async () => {
    while (views.some((v) => v.answers.get("ans")?.done !== true)) {
      await sleep(150);
      cut += proxy.cut(0.03);
    }
  })();
  // As a model yields them: one append after another, each with its own id (a retry appends once).
  for (const [i, t] of tokens.entries()) await pub.append(ch, "ans", t, { id: `tok-${i}`, ...(i === tokens.length - 1 ? { done: true } : {}) });
  await until(() => views.every((v) => v.answers.get("ans")?.done === true), 60_000, "every subscriber to get the whole answer");
  await cutting;
  console.log(`appends chaos: 100 subscribers, ${tokens.length} appends, ${cut} connections cut`);
  expect(cut).toBeGreaterThan(15);
  for (const v of views) {
    expect(v.answers.get("ans")!.d).toBe(whole);
    expect(v.answers.get("ans")!.partial).toBeUndefined();
    // Every entry once, in order: the message (seq 1), then each append's seq (joined ones skip seqs, never repeat them).
    expect(v.fragments[0]).toBe(1);
    for (let i = 1; i < v.fragments.length; i++) expect(v.fragments[i]!).toBeGreaterThan(v.fragments[i - 1]!);
    expect(v.fragments.at(-1)).toBe(tokens.length + 1);
  }
});

it("pusher-js receives appends as hibercast:append events ({id, d, done})", async () => {
  const port = Number(new URL(baseUrl()).port);
  const client = new Pusher(NODE_PUSHER.key, { cluster: "local", wsHost: "127.0.0.1", wsPort: port, forceTLS: false, enabledTransports: ["ws"] });
  cleanup.push(() => client.disconnect());
  const ch = channelName("answer");
  const channel = client.subscribe(ch);
  await new Promise<void>((resolve) => channel.bind("pusher:subscription_succeeded", () => resolve()));
  const texts = new Map<string, string>();
  let done = false;
  channel.bind("token", (data: string) => texts.set("ans", data));
  channel.bind("hibercast:append", (a: { id: string; d: string; done?: true }) => {
    texts.set(a.id, (texts.get(a.id) ?? "") + a.d);
    done ||= a.done === true;
  });
  const pub = publisher();
  await pub.publish(ch, "token", "Hi", { id: "ans" });
  await pub.append(ch, "ans", " there");
  await pub.append(ch, "ans", "!", { done: true });
  await until(() => done);
  expect(texts.get("ans")).toBe("Hi there!");
});
