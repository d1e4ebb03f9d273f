import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { NODE_JWT_SECRET, NODE_PUBLISH_KEY } from "./server";
import { baseUrl, channelName, publisher } from "./helpers";

/** Runs the built CLI (dist/cli.js) like a user would. */
function cli(args: string[], opts: { env?: Record<string, string>; until?: (out: string) => boolean } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ["dist/cli.js", ...args], {
      env: { ...process.env, HIBERCAST_URL: baseUrl(), HIBERCAST_KEY: NODE_PUBLISH_KEY, ...opts.env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
      if (opts.until?.(stdout)) child.kill("SIGINT");
    });
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** An `until` for a subscribing CLI: runs `then` once its welcome is printed, and stops it at `last`. */
function onceWelcomed(then: () => void, last: string): (out: string) => boolean {
  let welcomed = false;
  return (out) => {
    if (!welcomed && out.includes('"t":"welcome"')) {
      welcomed = true;
      then();
    }
    return out.includes(last);
  };
}

describe("CLI", () => {
  it("publishes and reads history", async () => {
    const ch = channelName();
    const pub = await cli(["publish", ch, "greet", '{"hello":"world"}']);
    expect(pub.code).toBe(0);
    expect(JSON.parse(pub.stdout)).toMatchObject({ seq: 1, duplicate: false });
    const hist = await cli(["history", ch, "--limit", "5"]);
    expect(JSON.parse(hist.stdout).messages[0]).toMatchObject({ seq: 1, e: "greet", d: { hello: "world" } });
  });

  it("subscribes, prints frames as JSON lines, and stops on SIGINT", async () => {
    const ch = channelName();
    await publisher().publish(ch, "old", 1);
    // Publish once the CLI says it is subscribed (its welcome line), not after a guessed delay.
    const running = cli(["subscribe", ch, "--rewind", "1"], { until: onceWelcomed(() => void publisher().publish(ch, "new", 2), '"seq":2') });
    const { code, stdout } = await running;
    const lines = stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => l.t)).toEqual(["welcome", "msg", "msg"]);
    expect(lines.slice(1).map((l) => l.d)).toEqual([1, 2]);
    expect(code).toBe(0);
  });

  it("prints one line per frame under bursts, never a batch", async () => {
    const ch = channelName();
    const burst = () => void publisher().publishBatch(Array.from({ length: 30 }, (_, i) => ({ channel: ch, event: "burst", data: i + 1 })));
    const running = cli(["subscribe", ch], { until: onceWelcomed(burst, '"seq":30') });
    const lines = (await running).stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => l.t)).toEqual(["welcome", ...Array(30).fill("msg")]);
    expect(lines.slice(1).map((l) => l.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });

  it("mints a token that the server accepts", async () => {
    const ch = channelName("private-cli");
    const minted = await cli(["token", "--sub", "alice", "--ch", "private-cli-*", "--ttl", "5m", "--secret", NODE_JWT_SECRET]);
    expect(minted.code).toBe(0);
    const t = minted.stdout.trim();
    const res = await fetch(`${baseUrl()}/v1/channels/${ch}?token=${t}`);
    expect(res.status).toBe(200);
  });

  it("explains usage errors and server errors, with exit codes 2 and 1", async () => {
    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/hibercast publish <channel> <event>/);
    const unknown = await cli(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command: frobnicate/);
    const badJson = await cli(["publish", "c", "e", "{nope"]);
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toMatch(/not valid JSON/);
    const wrongKey = await cli(["publish", channelName(), "e", "1", "--key", "wrong"]);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/forbidden \(403\): wrong publish key/);
    // A refused subscribe reads the same way, with the close code that carried it.
    const refused = await cli(["subscribe", channelName("private-cli")]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^hibercast: unauthorized \(4401\): /m);
  });

  it("prints every presence frame whole, count included", async () => {
    const ch = channelName("presence-cli");
    const t = await cli(["token", "--sub", "carol", "--ch", ch, "--secret", NODE_JWT_SECRET]);
    const running = cli(["subscribe", ch, "--token", t.stdout.trim()], { until: (out) => out.includes('"members"') });
    const lines = (await running).stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.find((l) => l.t === "members")).toEqual({ t: "members", members: [{ id: "carol", info: null }], count: 1 });
  });
});
