// `npm run check:bundle`: builds the Worker as `wrangler deploy` would (no account needed) and
// fails when its gzip size is over the budget. Keeping the bundle small keeps cold starts fast.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

// 0.4.0: 48 → 64 KiB. The one rule set (paging, windows, secrets) took 0.3.0's 38 KiB to 48, and
// Durable Streams and appends come next; 64 KiB of minified code still parses in a few ms.
const BUDGET_GZIP_KIB = 64;
const outdir = "dist-worker";
rmSync(outdir, { recursive: true, force: true });
const wrangler = fileURLToPath(new URL("../node_modules/wrangler/bin/wrangler.js", import.meta.url));
for (const env of [[], ["--env", "staging"]]) {
  execFileSync(process.execPath, [wrangler, "deploy", "--dry-run", "--outdir", outdir, ...env], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
  });
}
const code = readFileSync(`${outdir}/worker.js`);
const raw = code.byteLength / 1024;
const gzip = gzipSync(code, { level: 9 }).byteLength / 1024;
console.log(`worker bundle: ${raw.toFixed(1)} KiB raw, ${gzip.toFixed(1)} KiB gzip (budget ${BUDGET_GZIP_KIB} KiB gzip)`);
if (gzip > BUDGET_GZIP_KIB) {
  console.error(`worker bundle is over budget by ${(gzip - BUDGET_GZIP_KIB).toFixed(1)} KiB gzip`);
  process.exit(1);
}
