// The npm package as users get it: pack, install the tarball into a fresh project, import.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";

const work = mkdtempSync(path.join(tmpdir(), "hibercast-pack-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const npm = (args: string[], cwd: string) =>
  execFileSync("npm", args, { cwd, encoding: "utf8", env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" } });

it("packs the client, publisher and CLI (built, typed) and nothing of the repo's dev files", { timeout: 120_000 }, () => {
  const [packed] = JSON.parse(npm(["pack", "--json", "--ignore-scripts", "--pack-destination", work], process.cwd())) as {
    filename: string;
    files: { path: string }[];
  }[];
  const files = packed!.files.map((f) => f.path);
  for (const f of ["dist/client/index.js", "dist/client/index.d.ts", "dist/client/publisher.js", "dist/client/publisher.d.ts", "dist/cli.js", "docs/protocol.md", "package.json", "README.md", "CHANGELOG.md"]) {
    expect(files).toContain(f);
  }
  expect(files.filter((f) => /^(test|src|scripts|\.ci)\/|\.dev\.vars|wrangler\.toml|tsconfig/.test(f))).toEqual([]);

  const app = path.join(work, "app");
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  npm(["install", "--prefer-offline", "--no-package-lock", path.join(work, packed!.filename)], app);
  const probe = `
    const client = await import("hibercast/client");
    const publisher = await import("hibercast/publisher");
    console.log(JSON.stringify({
      subscribe: typeof client.subscribe, error: typeof client.HibercastError,
      createPublisher: typeof publisher.createPublisher,
    }));`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", probe], { cwd: app, encoding: "utf8" });
  expect(JSON.parse(out)).toEqual({ subscribe: "function", error: "function", createPublisher: "function" });
  // Only what the client side needs is installed: the Worker's router stays a dev dependency.
  expect(existsSync(path.join(app, "node_modules", "itty-router"))).toBe(false);
  expect(existsSync(path.join(app, "node_modules", "jose"))).toBe(true);
  const help = execFileSync(path.join(app, "node_modules", ".bin", "hibercast"), ["--help"], { cwd: app, encoding: "utf8" });
  expect(help).toMatch(/hibercast subscribe <channel>/);
});
