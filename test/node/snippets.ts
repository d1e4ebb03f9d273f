// Code in the docs is code a test runs: every fenced block in README.md and docs/ is named by a
// `<!-- snippet: NAME -->` line just before it, and a test takes it by that name from here (not
// a copy), so a snippet that stops working fails a test. test/node/snippets.test.ts checks
// that every block is named and every name is taken by some test.
import { readFileSync } from "node:fs";

export interface Snippet {
  /** The file it is in, from the project root. */
  file: string;
  name: string;
  /** The fence's info string (`ts`, `tsx`, `sh`, `toml`, ...). */
  lang: string;
  code: string;
}

const MARKER = /^<!-- snippet: ([\w./-]+) -->\n```([\w-]*)[^\n]*\n([\s\S]*?)\n```$/gm;

/** Every named block of one markdown file, in order. */
export function snippetsOf(file: string): Snippet[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(MARKER)].map((m) => ({ file, name: m[1]!, lang: m[2]!, code: m[3]! }));
}

/** The block named `name` in `file`; throws when there is none (a renamed or removed snippet). */
export function snippet(file: string, name: string): string {
  const found = snippetsOf(file).find((s) => s.name === name);
  if (!found) throw new Error(`${file} has no block named "${name}" (<!-- snippet: ${name} --> before a fence)`);
  return found.code;
}
