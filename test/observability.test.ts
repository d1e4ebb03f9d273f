import { expect, it } from "vitest";
import { channelName, eventually, PUBLISH_KEY, publish, publishOk, TestSocket, token } from "./helpers";
import { logged, loggedEvents } from "./logs";

it("writes one structured line per connect, publish, refusal and close, without secrets or bodies", async () => {
  const ch = channelName("private-obs");
  const t = await token({ sub: "obs-user", ch: [ch] });
  const [s] = await TestSocket.subscribe(ch, `?token=${t}`);
  await publishOk(ch, "secret-event", { body: "BODY-MUST-NOT-BE-LOGGED" });
  await s.next();
  await publish(ch, { event: "e", data: 1 }, { key: "wrong-key-must-not-be-logged" });
  s.close();
  await s.closed;
  await eventually(async () => loggedEvents("close"), (lines) => lines.length > 0);

  expect(loggedEvents("connect")[0]).toMatchObject({ channel: ch, transport: "ws", sub: "obs-user", replayed: 0, reset: false });
  expect(loggedEvents("publish")[0]).toMatchObject({ channel: ch, seq: 1, delivered: 1 });
  expect(loggedEvents("refused")[0]).toMatchObject({ method: "POST", status: 403, code: "forbidden", channel: ch });
  expect(loggedEvents("close")[0]).toMatchObject({ channel: ch, code: 1000 });
  const all = JSON.stringify(logged);
  for (const secret of [t, PUBLISH_KEY, "wrong-key-must-not-be-logged", "BODY-MUST-NOT-BE-LOGGED"]) expect(all).not.toContain(secret);
});

it("writes JSON lines to the console by default, errors to stderr", async () => {
  const { log, setLogSink } = await import("../src/server/log");
  const lines: string[][] = [];
  const [out, err] = [console.log, console.error];
  console.log = (...args: unknown[]) => void lines.push(["out", ...args.map(String)]);
  console.error = (...args: unknown[]) => void lines.push(["err", ...args.map(String)]);
  const test = setLogSink(null);
  try {
    log("publish", { channel: "c", seq: 1 });
    log("error", { where: "x" });
  } finally {
    setLogSink(test);
    [console.log, console.error] = [out, err];
  }
  expect(lines).toEqual([
    ["out", '{"event":"publish","channel":"c","seq":1}'],
    ["err", '{"event":"error","where":"x"}'],
  ]);
});

it("writes per-channel counters to Analytics Engine when bound, and is a no-op when not", async () => {
  const { count } = await import("../src/server/metrics");
  const points: AnalyticsEngineDataPoint[] = [];
  count({ ANALYTICS: { writeDataPoint: (p?: AnalyticsEngineDataPoint) => void points.push(p!) } }, "scores", "delivered", 42);
  expect(points).toEqual([{ blobs: ["scores", "delivered"], doubles: [42], indexes: ["scores"] }]);
  expect(() => count({}, "scores", "publish")).not.toThrow();
  const failing = { writeDataPoint: () => { throw new Error("dataset unavailable"); } };
  expect(() => count({ ANALYTICS: failing }, "scores", "publish")).not.toThrow();
});

it("sums up a storm of one event in one line instead of a line each", async () => {
  const { LogBudget } = await import("../src/server/log");
  const budget = new LogBudget("connect", 3, ["channel"]);
  const now = 7_000_999; // 1 ms before a second ends: the summary is written 1 ms later
  for (let i = 0; i < 8; i++) budget.log({ channel: "storm", cid: `c${i}` }, now);
  expect(loggedEvents("connect").map((l) => l.cid)).toEqual(["c0", "c1", "c2"]);
  await new Promise((r) => setTimeout(r, 20));
  expect(loggedEvents("connect").at(-1)).toEqual({ event: "connect", channel: "storm", suppressed: 5 });
  budget.log({ channel: "storm", cid: "next" }, now + 1);
  expect(loggedEvents("connect").at(-1)).toMatchObject({ cid: "next" });
});
