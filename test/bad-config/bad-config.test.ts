// A broken CHANNEL_OPTIONS (vitest.config.ts, project "bad-config"): never a silent fallback.
import { expect, it } from "vitest";
import { call, channelName, publish, TestSocket } from "../helpers";
import { loggedEvents } from "../logs";

const NAMED = 'configuration error: CHANNEL_OPTIONS rule 1 ("chat-*"): logMaxMessages must be a whole number ≥ 1 (got "ten")';

it("answers every request with 500 internal naming the rule and the field, and logs it once", async () => {
  for (const res of [await call("/healthz"), await call(`/v1/channels/${channelName("other")}`), await publish(channelName("chat"), { event: "e", data: 1 })]) {
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: { code: "internal", message: NAMED } });
  }
  const s = await TestSocket.open(`/v1/channels/${channelName()}/ws`);
  expect(await s.next()).toMatchObject({ t: "err", code: "internal", message: NAMED });
  expect((await s.closed).code).toBe(4500);
  // This file's isolate parsed the config once: one config line, however many requests.
  expect(loggedEvents("config")).toEqual([{ event: "config", error: NAMED }]);
});
