// `npm run check:config` finds configuration mistakes offline, in every environment.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";

const dir = mkdtempSync(path.join(tmpdir(), "hibercast-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function check(toml: string): { code: number; out: string } {
  const file = path.join(dir, `wrangler-${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(file, `name = "x"\nmain = "src/worker.ts"\ncompatibility_date = "2026-11-01"\n${toml}`);
  try {
    return { code: 0, out: execFileSync(process.execPath, ["scripts/check-config.mjs", "--config", file], { encoding: "utf8", stdio: "pipe" }) };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, out: e.stdout + e.stderr };
  }
}

it("passes the project's own wrangler.toml", () => {
  expect(check("").code).toBe(0);
  expect(execFileSync(process.execPath, ["scripts/check-config.mjs"], { encoding: "utf8" })).toMatch(/ok +\(top level: production\)\nok +staging/);
});

it("names every mistake with its environment, rule and field, and exits 1", { timeout: 30_000 }, () => {
  const { code, out } = check(`
[vars]
CHANNEL_OPTIONS = [ { match = "chat-*", logMaxMessages = 10 }, { match = "presence-*", shards = 4 } ]
[env.staging.vars]
CHANNEL_OPTIONS = '[{"match": "feed-*", "latest": "yes"}]'
[env.eu.vars]
MAX_SOCKETS = "30k"
[env.ok.vars]
CHANNEL_OPTIONS = [ { match = "price-*", latest = true } ]
`);
  expect(code).toBe(1);
  expect(out).toMatch(/error \(top level: production\): .*rule 2 \("presence-\*"\): shards: presence channels cannot be sharded/);
  expect(out).toMatch(/error staging: .*rule 1 \("feed-\*"\): latest must be true or false \(got "yes"\)/);
  expect(out).toMatch(/error eu: .*MAX_SOCKETS must be a whole number ≥ 1 \(got "30k"\)/);
  expect(out).toMatch(/ok +ok/);
});
