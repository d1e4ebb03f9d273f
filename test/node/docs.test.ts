// docs/errors.md and test/bad-input.test.ts describe the same matrix: keep them in step.
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";

it("lists in docs/errors.md exactly the rows that test/bad-input.test.ts runs", () => {
  const doc = readFileSync("docs/errors.md", "utf8");
  const documented = [...doc.matchAll(/^\| ([^|]+?) \| [^|]* \| [^|]+ \|$/gm)].map((m) => m[1]!).filter((name) => name !== "input");
  const tests = readFileSync("test/bad-input.test.ts", "utf8");
  const tested = [...tests.matchAll(/^ {2}\["([^"]+)",/gm)].map((m) => m[1]!);
  expect(tested.length).toBeGreaterThan(30);
  expect(documented).toEqual(tested);
});
