// The hub's one alarm (DESIGN.md "One rule set for every surface": Alarms): scheduling an earlier
// wake-up never loses to a later one, however the calls interleave. Each test goes through a real
// RoomObject and reads the alarm the runtime holds (storage.getAlarm()), not the object's cache.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Alarm } from "../src/connections/alarms";
import { channelName, hubOf } from "./helpers";
import { loggedEvents } from "./logs";

// Far enough ahead that no alarm fires (and clears itself) while a test looks at it.
const MIN = 60_000;
const HOUR = 3600_000;

describe("Alarm", () => {
  it("keeps the earliest of several by() calls started in one turn, the latest one last", async () => {
    await runInDurableObject(hubOf(channelName("alarm-by")), async (room, state) => {
      const now = Date.now();
      // As a token's first subscriber does: by(now) for a webhook, then by(token exp). Every call
      // reads storage first (no alarm is pending yet), and the later ones must not win.
      await Promise.all([room.alarms.by(now + 2 * MIN), room.alarms.by(now + MIN), room.alarms.by(now + 5 * MIN), room.alarms.by(now + HOUR)]);
      expect(await state.storage.getAlarm()).toBe(now + MIN);
      // And afterwards: a later wake-up leaves it, an earlier one moves it.
      await room.alarms.by(now + 2 * HOUR);
      expect(await state.storage.getAlarm()).toBe(now + MIN);
      await room.alarms.by(now + MIN / 2);
      expect(await state.storage.getAlarm()).toBe(now + MIN / 2);
    });
  });

  it("sets a wake-up far ahead (a token's exp may be any number) at most a day away, and keeps it", async () => {
    await runInDurableObject(hubOf(channelName("alarm-far")), async (room, state) => {
      const before = Date.now();
      await room.alarms.by(1e16); // exp * 1000 of a token whose exp was written in ms
      const at = (await state.storage.getAlarm())!;
      expect(at).toBeGreaterThanOrEqual(before + 24 * HOUR);
      expect(at).toBeLessThanOrEqual(Date.now() + 24 * HOUR);
      // An earlier wake-up still moves it.
      await room.alarms.by(before + HOUR);
      expect(await state.storage.getAlarm()).toBe(before + HOUR);
    });
  });

  it("ifNone() sees a by() made while it read storage: the job is not run, the earlier alarm stands", async () => {
    await runInDurableObject(hubOf(channelName("alarm-ifnone")), async (_room, state) => {
      const now = Date.now();
      let runs = 0;
      // As a publish (ifNone "trim") racing a webhook's by(now): the alarm that by() set will run
      // the job anyway, so ifNone must not run it again (its contract: only when none is pending).
      const alarm = new Alarm(state.storage, { trim: () => (runs++, now + HOUR) });
      await Promise.all([alarm.by(now + MIN), alarm.ifNone("trim")]);
      await alarm.by(now + 2 * HOUR);
      expect(runs).toBe(0);
      expect(await state.storage.getAlarm()).toBe(now + MIN);
      // With no alarm pending at all, it runs the job and schedules what the job answers.
      const idle = new Alarm(state.storage, { trim: () => (runs++, now + HOUR) });
      await state.storage.deleteAlarm();
      await idle.ifNone("trim");
      expect(runs).toBe(1);
      expect(await state.storage.getAlarm()).toBe(now + HOUR);
    });
  });

  it("wakes again for the other jobs when one job throws, and logs it", async () => {
    await runInDurableObject(hubOf(channelName("alarm-fire")), async (_room, state) => {
      const now = Date.now();
      const alarm = new Alarm(state.storage, {
        broken: () => {
          throw new Error("outbox unreadable");
        },
        expiry: () => now + 10_000,
      });
      await alarm.fire(now);
      // The healthy job's wake-up stands (the broken one is tried again 30 s later).
      expect(await state.storage.getAlarm()).toBe(now + 10_000);
      expect(loggedEvents("error")).toEqual([expect.objectContaining({ where: "alarm job", job: "broken" })]);
    });
  });
});
