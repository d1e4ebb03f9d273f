// Type-checks the app with the guide's snippets in it, as a reader's editor would: the guide's
// code must compile against the package's types, not only run.
import path from "node:path";
import ts from "typescript";

const root = path.resolve(import.meta.dirname, "../../..");
/** Where the snippets appear to be, for the compiler (they are never written to disk). */
const virtual = path.join(import.meta.dirname, "guide");

/** The diagnostics of main.tsx with `sources` (`react/NAME` → code) as `guide:react/NAME`, formatted; empty when it compiles. */
export function typecheckApp(sources: Record<string, string>): string[] {
  const files = new Map(Object.entries(sources).map(([name, code]) => [path.join(virtual, `${name}.tsx`), code]));
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ES2022,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    types: [],
    jsx: ts.JsxEmit.ReactJSX,
    strict: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: true,
    noEmit: true,
    baseUrl: root,
    paths: {
      "guide:*": [path.join(virtual, "*")],
      "hibercast/client": ["src/client/index.ts"],
      "hibercast/publisher": ["src/client/publisher.ts"],
      "hibercast/react": ["src/react/index.ts"],
    },
  };
  const host = ts.createCompilerHost(options);
  const { fileExists, readFile, getSourceFile, directoryExists } = host;
  host.fileExists = (file) => files.has(file) || fileExists.call(host, file);
  host.directoryExists = (dir) => dir.startsWith(virtual) || (directoryExists?.call(host, dir) ?? true);
  host.readFile = (file) => files.get(file) ?? readFile.call(host, file);
  host.getSourceFile = (file, language, ...rest) => {
    const code = files.get(file);
    return code === undefined ? getSourceFile.call(host, file, language, ...rest) : ts.createSourceFile(file, code, language, true, ts.ScriptKind.TSX);
  };
  const program = ts.createProgram([path.join(import.meta.dirname, "main.tsx"), ...files.keys()], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${path.relative(root, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ` : "";
    return where + ts.flattenDiagnosticMessageText(d.messageText, "\n");
  });
}
