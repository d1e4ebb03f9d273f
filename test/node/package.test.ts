// The npm package as users get it: pack, install the tarball into a fresh project, import.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { afterAll, expect, it } from "vitest";

const work = mkdtempSync(path.join(tmpdir(), "hibercast-pack-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
/**
 * The sources hibercast/server ships (src/mount.ts): every module it imports, types included
 * (the host's TypeScript reads them), and nothing else of src/.
 */
function serverSources(): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const [, spec] of readFileSync(file, "utf8").matchAll(/(?:from|import\()\s*"(\.[^"]+)"/g)) {
      visit(path.posix.normalize(path.posix.join(path.posix.dirname(file), spec!)).replace(/\.js$/, ".ts"));
    }
  };
  visit("src/mount.ts");
  return [...seen].sort();
}

const npm = (args: string[], cwd: string) =>
  execFileSync("npm", args, { cwd, encoding: "utf8", env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" } });

it("packs the client, publisher, React hooks and CLI (built, typed), the server entry's sources and nothing of the repo's dev files", { timeout: 120_000 }, async () => {
  const [packed] = JSON.parse(npm(["pack", "--json", "--ignore-scripts", "--pack-destination", work], process.cwd())) as {
    filename: string;
    files: { path: string }[];
  }[];
  const files = packed!.files.map((f) => f.path);
  for (const f of ["dist/client/index.js", "dist/client/index.d.ts", "dist/client/publisher.js", "dist/client/publisher.d.ts", "dist/react/index.js", "dist/react/index.d.ts", "dist/cli.js", "docs/protocol.md", "package.json", "README.md", "CHANGELOG.md"]) {
    expect(files).toContain(f);
  }
  expect(files.filter((f) => /^(test|scripts|\.ci)\/|\.dev\.vars|wrangler\.toml|tsconfig/.test(f))).toEqual([]);
  // hibercast/server is TypeScript source (src/mount.ts says why): exactly the modules it reaches.
  expect(files.filter((f) => f.startsWith("src/")).sort()).toEqual(serverSources());

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
  // A host Worker that mounts hibercast bundles (as wrangler bundles it) from the package alone.
  writeFileSync(
    path.join(app, "worker.ts"),
    `import { hibercast, DirectoryObject, EdgeObject, RoomObject } from "hibercast/server";
     export { DirectoryObject, EdgeObject, RoomObject };
     const rt = hibercast({ prefix: "/rt" });
     export default { fetch: (request: Request, env: unknown, ctx: ExecutionContext) => rt.fetch(request, env, ctx) };`,
  );
  const bundled = await build({ entryPoints: [path.join(app, "worker.ts")], absWorkingDir: app, bundle: true, format: "esm", platform: "neutral", mainFields: ["module", "main"], conditions: ["workerd", "worker"], external: ["cloudflare:*"], write: false, logLevel: "silent" });
  expect(bundled.outputFiles[0]!.text).toMatch(/RoomObject = class extends/);
  for (const dependency of ["jose", "itty-router"]) expect(existsSync(path.join(app, "node_modules", dependency))).toBe(true);
  const help = execFileSync(path.join(app, "node_modules", ".bin", "hibercast"), ["--help"], { cwd: app, encoding: "utf8" });
  expect(help).toMatch(/hibercast subscribe <channel>/);
});
