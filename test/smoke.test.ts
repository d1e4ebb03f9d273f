import { expect, it } from "vitest";
import { call, channelName, publishOk, TestSocket } from "./helpers";

it("smoke", async () => {
  const h = await call("/healthz");
  expect(h.status).toBe(200);
  const ch = channelName();
  const [s, w] = await TestSocket.subscribe(ch);
  expect(w).toMatchObject({ t: "welcome", v: 1, ch, seq: 0, epoch: null });
  const r = await publishOk(ch, "greet", { hi: 1 });
  expect(r).toMatchObject({ seq: 1, delivered: 1, duplicate: false });
  expect(await s.next()).toMatchObject({ t: "msg", seq: 1, e: "greet", d: { hi: 1 } });
});
