// `npm run check:config [-- --config path/to/wrangler.toml]`: checks the vars of every
// environment in wrangler.toml offline, with the Worker's own parser (src/settings/config.ts), so a
// broken CHANNEL_OPTIONS or a typo in a numeric var is found before a deploy. Exit 1 names each
// mistake. CI runs it.
import { build } from "esbuild";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { experimental_readRawConfig } from "wrangler";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = process.argv.indexOf("--config");
const configPath = arg > 0 ? process.argv[arg + 1] : path.join(root, "wrangler.toml");

const { rawConfig } = experimental_readRawConfig({ config: configPath });
const environments = [["(top level: production)", rawConfig.vars ?? {}], ...Object.entries(rawConfig.env ?? {}).map(([name, e]) => [name, e.vars ?? {}])];

const dir = mkdtempSync(path.join(os.tmpdir(), "hibercast-check-config-"));
let failed = 0;
try {
  const out = path.join(dir, "config.mjs");
  const entry = 'export { configFor } from "./src/settings/config.ts"; export { setLogSink } from "./src/server/log.ts";';
  await build({ stdin: { contents: entry, resolveDir: root, loader: "ts" }, outfile: out, bundle: true, format: "esm", platform: "neutral", logLevel: "warning" });
  const { configFor, setLogSink } = await import(pathToFileURL(out).href);
  setLogSink(() => {}); // the mistakes are printed below, once each
  for (const [name, vars] of environments) {
    try {
      configFor({ ...vars }, "");
      console.log(`ok    ${name}`);
    } catch (err) {
      failed++;
      console.error(`error ${name}: ${err.message}`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (failed > 0) {
  console.error(`${failed} environment(s) of ${path.relative(process.cwd(), configPath) || configPath} have configuration errors`);
  process.exit(1);
}
