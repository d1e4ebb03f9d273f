// Builds code that imports the guide's snippets (`guide:NAME`, given as source by the test)
// and the package's entry points (`hibercast/react`, … from src/) with esbuild, and serves the
// React app of this folder to a browser on a local port.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import * as esbuild from "esbuild";

const root = path.resolve(import.meta.dirname, "../../..");
/** The package's entry points, as a user imports them, mapped to their sources. */
const ENTRIES: Record<string, string> = {
  "hibercast/client": "src/client/index.ts",
  "hibercast/publisher": "src/client/publisher.ts",
  "hibercast/react": "src/react/index.ts",
};

function modules(sources: Record<string, string>): esbuild.Plugin {
  return {
    name: "guide-and-package",
    setup(build) {
      build.onResolve({ filter: /^guide:/ }, (args) => ({ path: args.path.slice("guide:".length), namespace: "guide" }));
      build.onLoad({ filter: /.*/, namespace: "guide" }, (args) => {
        const contents = sources[args.path];
        if (contents === undefined) return { errors: [{ text: `no snippet ${args.path} was given to the build` }] };
        return { contents, loader: "tsx", resolveDir: root };
      });
      build.onResolve({ filter: /^hibercast\// }, (args) => {
        const entry = ENTRIES[args.path];
        return entry === undefined ? { errors: [{ text: `${args.path} is not an entry point of the package` }] } : { path: path.join(root, entry) };
      });
    },
  };
}

/** The app as a browser bundle: React's development build, so StrictMode mounts twice as in `npm run dev`. */
async function buildApp(sources: Record<string, string>): Promise<string> {
  const out = await esbuild.build({
    entryPoints: [path.join(import.meta.dirname, "main.tsx")],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    jsx: "automatic",
    define: { "process.env.NODE_ENV": '"development"' },
    plugins: [modules(sources)],
    logLevel: "silent",
  });
  return out.outputFiles[0]!.text;
}

export interface ServedApp {
  /** The page's URL, to add a query to. */
  url: string;
  close(): Promise<void>;
}

/** Builds the app and serves it (page and bundle) on a free local port. */
export async function serveApp(sources: Record<string, string>): Promise<ServedApp> {
  const js = await buildApp(sources);
  const html = '<!doctype html><html><head><meta charset="utf-8"><title>hibercast react</title></head><body><div id="root"></div><script type="module" src="/app.js"></script></body></html>';
  const server = http.createServer((req, res) => {
    const [type, body] = req.url === "/app.js" ? ["text/javascript", js] : ["text/html", html];
    res.writeHead(200, { "content-type": `${type}; charset=utf-8` }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Builds one snippet for Node and imports it: code from the guide, run as it is written. */
export async function importSnippet<T>(name: string, sources: Record<string, string>): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), "hibercast-snippet-"));
  try {
    const out = await esbuild.build({ entryPoints: [`guide:${name}`], bundle: true, write: false, format: "esm", platform: "node", target: "node20", plugins: [modules(sources)], logLevel: "silent" });
    const file = path.join(dir, "snippet.mjs");
    writeFileSync(file, out.outputFiles[0]!.text);
    return (await import(pathToFileURL(file).href)) as T;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
