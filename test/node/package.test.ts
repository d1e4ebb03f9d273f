// The npm package as users get it: pack, install the tarball into a fresh project, import.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";

const work = mkdtempSync(path.join(tmpdir(), "hibercast-pack-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const npm = (args: string[], cwd: string) =>
  execFileSync("npm", args, { cwd, encoding: "utf8", env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" } });

it("packs the client, publisher, React hooks and CLI (built, typed) and nothing of the repo's dev files", { timeout: 120_000 }, () => {
  const [packed] = JSON.parse(npm(["pack", "--json", "--ignore-scripts", "--pack-destination", work], process.cwd())) as {
    filename: string;
    files: { path: string }[];
  }[];
  const files = packed!.files.map((f) => f.path);
  for (const f of ["dist/client/index.js", "dist/client/index.d.ts", "dist/client/publisher.js", "dist/client/publisher.d.ts", "dist/react/index.js", "dist/react/index.d.ts", "dist/cli.js", "docs/protocol.md", "package.json", "README.md", "CHANGELOG.md"]) {
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
  // hibercast/react with the app's own React (a peer dependency, not installed with the package):
  // rendered on a server it shows the first state and opens no socket.
  expect(existsSync(path.join(app, "node_modules", "react"))).toBe(false);
  for (const dep of ["react", "react-dom", "scheduler"]) symlinkSync(path.resolve("node_modules", dep), path.join(app, "node_modules", dep));
  const ssr = `
    const { createElement: h } = await import("react");
    const { renderToString } = await import("react-dom/server");
    const { HibercastProvider, useChannel } = await import("hibercast/react");
    let made = 0;
    class WebSocket { constructor() { made++; } }
    function Score() {
      const { state, messages } = useChannel("scores");
      return h("p", null, state + " " + messages.length);
    }
    const html = renderToString(h(HibercastProvider, { url: "http://127.0.0.1:1", options: { WebSocket } }, h(Score)));
    console.log(JSON.stringify({ html, made }));`;
  const rendered = execFileSync(process.execPath, ["--input-type=module", "-e", ssr], { cwd: app, encoding: "utf8" });
  expect(JSON.parse(rendered)).toEqual({ html: "<p>subscribing 0</p>", made: 0 });
  const help = execFileSync(path.join(app, "node_modules", ".bin", "hibercast"), ["--help"], { cwd: app, encoding: "utf8" });
  expect(help).toMatch(/hibercast subscribe <channel>/);
});
