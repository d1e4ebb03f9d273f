// The import rules dpdm does not check (DESIGN.md "Layout"): nothing imports an object class but
// the entries (src/worker.ts, and src/mount.ts: hibercast/server, which a host Worker exports them
// from), and src/protocol/ (shipped in the client package) imports nothing outside itself.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const files = readdirSync(path.join(root, "src"), { recursive: true }).filter((f) => f.endsWith(".ts")).map((f) => `src/${f}`);
const ENTRIES = new Set(["src/worker.ts", "src/mount.ts"]);
const problems = [];
for (const file of files) {
  const text = readFileSync(path.join(root, file), "utf8");
  for (const [, spec] of text.matchAll(/(?:from|import\()\s*"(\.[^"]+)"/g)) {
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, ".ts");
    if (/^src\/[a-z-]+-object\.ts$/.test(target) && !ENTRIES.has(file)) problems.push(`${file} imports ${target}: only the entries (${[...ENTRIES].join(", ")}) may import an object class`);
    if (file.startsWith("src/protocol/") && !target.startsWith("src/protocol/")) problems.push(`${file} imports ${target}: protocol/ is the wire contract and imports nothing outside it`);
  }
}
for (const p of problems) console.error(p);
if (problems.length > 0) process.exit(1);
console.log(`imports: ${files.length} files, object classes imported only by the entries, protocol/ self-contained`);
