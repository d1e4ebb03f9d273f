import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { channelName, PUBLISH_KEY, publish, publishOk, TestSocket, token } from "./helpers";

let lines: string[] = [];
beforeEach(() => {
  lines = [];
  const keep = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  vi.spyOn(console, "log").mockImplementation(keep);
  vi.spyOn(console, "error").mockImplementation(keep);
});
afterEach(() => vi.restoreAllMocks());

const events = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);

it("writes one JSON line per connect, publish, refusal and close, without secrets or bodies", async () => {
  const ch = channelName("private-obs");
  const t = await token({ sub: "obs-user", ch: [ch] });
  const [s] = await TestSocket.subscribe(ch, `?token=${t}`);
  await publishOk(ch, "secret-event", { body: "BODY-MUST-NOT-BE-LOGGED" });
  await s.next();
  await publish(ch, { event: "e", data: 1 }, { key: "wrong-key-must-not-be-logged" });
  s.close();
  await s.closed;
  await new Promise((r) => setTimeout(r, 50));

  const byEvent = (e: string) => events().filter((l) => l.event === e);
  expect(byEvent("connect")[0]).toMatchObject({ channel: ch, transport: "ws", sub: "obs-user", replayed: 0, reset: false });
  expect(byEvent("publish")[0]).toMatchObject({ channel: ch, seq: 1, delivered: 1 });
  expect(byEvent("refused")[0]).toMatchObject({ method: "POST", status: 403, code: "forbidden", channel: ch });
  expect(byEvent("close")[0]).toMatchObject({ channel: ch, code: 1000 });
  const all = lines.join("\n");
  for (const secret of [t, PUBLISH_KEY, "wrong-key-must-not-be-logged", "BODY-MUST-NOT-BE-LOGGED"]) expect(all).not.toContain(secret);
});

it("writes per-channel counters to Analytics Engine when bound, and is a no-op when not", async () => {
  const { count } = await import("../src/metrics");
  const points: AnalyticsEngineDataPoint[] = [];
  count({ ANALYTICS: { writeDataPoint: (p?: AnalyticsEngineDataPoint) => void points.push(p!) } }, "scores", "delivered", 42);
  expect(points).toEqual([{ blobs: ["scores", "delivered"], doubles: [42], indexes: ["scores"] }]);
  expect(() => count({}, "scores", "publish")).not.toThrow();
  const failing = { writeDataPoint: () => { throw new Error("dataset unavailable"); } };
  expect(() => count({ ANALYTICS: failing }, "scores", "publish")).not.toThrow();
});
