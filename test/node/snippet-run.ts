// Runs the docs' code blocks (taken with snippet() from ./snippets) against the worker served for
// the Node-side tests. A block is written for a reader (`http://127.0.0.1:8787`, the dev keys of
// .dev.vars.example, `https://rt.example.com`); `localize` swaps those for the served worker's
// URL and keys and nothing else, so what runs is the block as printed.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { baseUrl } from "./helpers";
import { NODE_JWT_SECRET, NODE_PUBLISH_KEY, NODE_PUSHER } from "./server";

const root = process.cwd();
const outDir = path.join(root, "test-artifacts", "snippets");

/** The documented placeholders and what they are in this test run. */
export function localize(code: string, extra: Record<string, string> = {}): string {
  const url = baseUrl();
  const port = new URL(url).port;
  const swaps: [string, string][] = [
    ...Object.entries(extra),
    ["https://rt.example.com", url],
    ["http://127.0.0.1:8787", url],
    ["http://localhost:8787", url],
    ["ws://127.0.0.1:8787", url.replace(/^http/, "ws")],
    ["dev-only-publish-key", NODE_PUBLISH_KEY],
    ["dev-only-jwt-secret-change-me-0123456789", NODE_JWT_SECRET],
    ["dev-only-pusher-key", NODE_PUSHER.key],
    ["dev-only-pusher-secret", NODE_PUSHER.secret],
    ["wsPort: 8787", `wsPort: ${port}`],
    ['port: "8787"', `port: "${port}"`],
  ];
  for (const [from, to] of swaps) code = code.split(from).join(to);
  return code;
}

let loaded = 0;

/**
 * Compiles a TS/JS block (with `prelude` before it and `epilogue` after it, in one module) with
 * esbuild and imports it into this process: `hibercast/client` and `hibercast/publisher` are
 * this checkout's sources, other packages come from node_modules. Answers the module's exports.
 */
export async function importSnippet<T = Record<string, unknown>>(name: string, code: string, options: { prelude?: string; epilogue?: string; jsx?: boolean } = {}): Promise<T> {
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${name.replace(/[^\w-]+/g, "_")}-${loaded++}.mjs`);
  await build({
    stdin: { contents: [options.prelude ?? "", code, options.epilogue ?? ""].join("\n"), loader: options.jsx ? "tsx" : "ts", resolveDir: root, sourcefile: `${name}.ts` },
    outfile: file,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    alias: { "hibercast/client": "./src/client/index.ts", "hibercast/publisher": "./src/client/publisher.ts" },
    logLevel: "error",
  });
  return (await import(/* @vite-ignore */ pathToFileURL(file).href)) as T;
}

let cliFile: Promise<string> | undefined;

/** The CLI (src/cli.ts) built once with esbuild, as `npx hibercast` runs the built one. */
export function cliPath(): Promise<string> {
  cliFile ??= (async () => {
    mkdirSync(outDir, { recursive: true });
    const file = path.join(outDir, "cli.mjs");
    await build({ entryPoints: [path.join(root, "src/cli.ts")], outfile: file, bundle: true, platform: "node", format: "esm", target: "node20", packages: "external", logLevel: "error" });
    return file;
  })();
  return cliFile;
}

export interface ShellResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one shell command line: `npx hibercast` is the CLI built above, with the served worker's URL and key. */
export async function sh(line: string, options: { timeoutMs?: number; until?: (stdout: string) => boolean; env?: Record<string, string> } = {}): Promise<ShellResult> {
  const cli = await cliPath();
  const command = line.replace(/\bnpx hibercast\b/g, `"${process.execPath}" "${cli}"`);
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", command], {
      env: { ...process.env, HIBERCAST_URL: baseUrl(), HIBERCAST_KEY: NODE_PUBLISH_KEY, JWT_SECRET: NODE_JWT_SECRET, ...options.env },
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    const stop = () => {
      try {
        process.kill(-child.pid!, "SIGINT");
      } catch {
        /* gone already */
      }
    };
    const timer = setTimeout(stop, options.timeoutMs ?? 15_000);
    child.stdout.on("data", (d) => {
      stdout += d;
      if (options.until?.(stdout)) stop();
    });
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * The commands of a shell block and the output each promises: a line `# {...}` (or `# text`)
 * right after a command is what that command prints. Continuation lines (`\`) are joined.
 */
export function commands(block: string): { line: string; expected: string[] }[] {
  const out: { line: string; expected: string[] }[] = [];
  let pending = "";
  for (const raw of block.split("\n")) {
    if (pending) {
      pending += " " + raw.trim();
    } else if (/^\s*#/.test(raw)) {
      out.at(-1)?.expected.push(raw.replace(/^\s*#\s?/, ""));
      continue;
    } else if (raw.trim() === "") {
      continue;
    } else {
      pending = raw.trim();
    }
    if (pending.endsWith("\\")) {
      pending = pending.slice(0, -1).trim();
      continue;
    }
    out.push({ line: pending.replace(/\s+#\s.*$/, ""), expected: [] });
    pending = "";
  }
  return out;
}

/**
 * Whether `actual` has the shape a documented output promises: the same keys at every level, and
 * the same values, except where the doc writes "…" or names a value that differs per run (the
 * listed keys: epochs, ids, times).
 */
export function sameShape(expected: unknown, actual: unknown, loose: string[] = ["epoch", "ts", "cid"], key = ""): string | null {
  if (expected === "…" || loose.includes(key)) return typeof actual === typeof expected || expected === "…" ? null : `${key}: ${JSON.stringify(actual)} is not a ${typeof expected}`;
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return `${key}: ${JSON.stringify(actual)} is not an array of ${expected.length}`;
    for (let i = 0; i < expected.length; i++) {
      const wrong = sameShape(expected[i], actual[i], loose, key);
      if (wrong) return wrong;
    }
    return null;
  }
  if (expected && typeof expected === "object") {
    if (!actual || typeof actual !== "object") return `${key}: ${JSON.stringify(actual)} is not an object`;
    const want = Object.keys(expected).sort();
    const have = Object.keys(actual).sort();
    if (want.join() !== have.join()) return `${key}: keys ${have.join(",")} instead of ${want.join(",")}`;
    for (const k of want) {
      const wrong = sameShape((expected as Record<string, unknown>)[k], (actual as Record<string, unknown>)[k], loose, k);
      if (wrong) return wrong;
    }
    return null;
  }
  return Object.is(expected, actual) ? null : `${key}: ${JSON.stringify(actual)} instead of ${JSON.stringify(expected)}`;
}
