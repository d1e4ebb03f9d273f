// The reference pages and the code describe the same things: keep them in step. docs/errors.md
// and test/bad-input.test.ts describe the same matrix.
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

// docs/configuration.md lists every var and secret the Worker reads, and every channel option.
it("lists in docs/configuration.md exactly the Worker's vars and channel options", () => {
  const doc = readFileSync("docs/configuration.md", "utf8");
  const column = (header: string) => {
    const table = doc.slice(doc.indexOf(header));
    return table
      .split("\n")
      .slice(2)
      .filter((l, i, all) => l.startsWith("|") && all.slice(0, i).every((p) => p.startsWith("|")))
      .flatMap((row) => [...row.split("|")[1]!.matchAll(/`(\w+)`/g)].map((m) => m[1]!));
  };
  const vars = [...readFileSync("src/settings/vars.ts", "utf8").matchAll(/^ {2}(\w+)\?: /gm)].map((m) => m[1]!);
  expect(vars.length).toBeGreaterThan(20);
  expect(column("| name | kind | default | meaning |").sort()).toEqual(vars.sort());
  const specs = /OPTION_SPECS[^{]*\{([\s\S]*?)\n\};/.exec(readFileSync("src/settings/channel-options.ts", "utf8"))![1]!;
  const options = [...specs.matchAll(/^ {2}(\w+):/gm)].map((m) => m[1]!);
  expect(options.length).toBeGreaterThan(8);
  expect(column("| option | default | what it does |").sort()).toEqual(options.sort());
});
