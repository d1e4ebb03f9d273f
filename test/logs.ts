// Setup for the workerd projects: every structured log line (from the Worker and the rooms, which
// run in this same isolate) goes to `logged` instead of the console, so `npm test` prints test
// results. A failing test prints the lines it produced, to help explain the failure.
import { beforeEach } from "vitest";
import { setLogSink, type LogLine } from "../src/server/log";

export const logged: LogLine[] = [];

setLogSink((line) => void logged.push(line));

beforeEach((ctx) => {
  logged.length = 0;
  ctx.onTestFailed(() => {
    for (const line of logged) console.log(JSON.stringify(line));
  });
});

/** The lines logged so far in this test with this event name. */
export const loggedEvents = (event: LogLine["event"]) => logged.filter((l) => l.event === event);
