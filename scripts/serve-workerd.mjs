// Serves the worker on the npm `workerd` binary directly, with no dev proxy in front: the
// runtime as production runs it, and about two file handles per socket instead of four, so a
// load test can hold thousands of sockets. Used by scripts/load.mjs.
import { build } from "esbuild";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** wrangler.toml's compatibility date and flags and top-level [vars] (flat string values only). */
function wranglerConfig() {
  const toml = readFileSync(path.join(root, "wrangler.toml"), "utf8");
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1] ?? "2026-11-01";
  const flags = [...(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1] ?? "").matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  const varsBlock = /^\[vars\]\n([\s\S]*?)(?=^\[|$(?![\s\S]))/m.exec(toml)?.[1] ?? "";
  const vars = Object.fromEntries([...varsBlock.matchAll(/^(\w+)\s*=\s*"([^"]*)"/gm)].map((m) => [m[1], m[2]]));
  return { date, flags, vars };
}

/** CPU time (user + system) of a process so far, in ms, from /proc (Linux); null elsewhere. */
export function cpuMs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) * 10; // clock ticks of 10 ms
  } catch {
    return null;
  }
}

/** A port nothing listens on now. */
export async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts workerd; answers { url, pid, stop }. `vars` add to / override wrangler.toml's. */
export async function serveOnWorkerd(vars = {}, { logs = "ignore", v8Flags = [], entry = path.join(root, "src/worker.ts") } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "hibercast-workerd-"));
  await build({
    entryPoints: [entry], outfile: path.join(dir, "worker.mjs"), bundle: true,
    format: "esm", platform: "neutral", target: "es2022", external: ["cloudflare:*"],
    conditions: ["workerd", "worker", "browser"], mainFields: ["module", "main"], logLevel: "warning",
  });
  const { date, flags, vars: base } = wranglerConfig();
  const bindings = Object.entries({ ...base, ...vars }).map(([k, v]) => `(name = ${JSON.stringify(k)}, text = ${JSON.stringify(String(v))})`);
  const port = await freePort();
  writeFileSync(path.join(dir, "config.capnp"), `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  v8Flags = [${v8Flags.map((f) => JSON.stringify(f)).join(", ")}],
  services = [ (name = "main", worker = .w), (name = "do-disk", disk = (path = ${JSON.stringify(path.join(dir, "do"))}, writable = true)) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const w :Workerd.Worker = (
  modules = [ (name = "worker.mjs", esModule = embed "worker.mjs") ],
  compatibilityDate = ${JSON.stringify(date)},
  compatibilityFlags = [${flags.map((f) => JSON.stringify(f)).join(", ")}],
  durableObjectNamespaces = [
    (className = "RoomObject", uniqueKey = "hibercast-load", enableSql = true),
    (className = "EdgeObject", uniqueKey = "hibercast-load-edges", enableSql = true),
    (className = "DirectoryObject", uniqueKey = "hibercast-load-directory", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "do-disk"),
  bindings = [ (name = "ROOMS", durableObjectNamespace = "RoomObject"), (name = "EDGES", durableObjectNamespace = "EdgeObject"), (name = "DIRECTORY", durableObjectNamespace = "DirectoryObject"), ${bindings.join(", ")} ],
);
`);
  mkdirSync(path.join(dir, "do"));
  const bin = path.join(root, "node_modules", ".bin", "workerd");
  // Logs go nowhere: a JSON line per connect would dominate a load test's output.
  const child = spawn(bin, ["serve", path.join(dir, "config.capnp")], { stdio: ["ignore", logs, "inherit"] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
    if (i > 200 || child.exitCode !== null) throw new Error("workerd did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    pid: child.pid,
    stop: async () => {
      // SIGINT: workerd exits at once (SIGTERM drains sockets first).
      child.kill("SIGINT");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
