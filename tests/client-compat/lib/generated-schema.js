// The example's generated client schema (examples/todo/web/src/schema.ts,
// written by `todo-example codegen --typescript`), loaded in Node 20, which
// cannot import TypeScript: esbuild (the web client's, installed by its
// `npm ci`) strips the types, and the module is imported from the result.
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../examples/todo/web");

/** Path of the generated module. */
export const SCHEMA_PATH = path.join(webDir, "src/schema.ts");

/** Imports a TypeScript module that imports nothing at run time. */
export const importTypeScript = async (file) => {
  const esbuild = createRequire(path.join(webDir, "package.json"))("esbuild");
  const { code } = esbuild.transformSync(fs.readFileSync(file, "utf8"), {
    format: "esm",
    loader: "ts",
    sourcefile: file,
  });
  return import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`);
};

/** The generated module: `schema`, `SCHEMA_HASH`. */
export const { schema, SCHEMA_HASH } = await importTypeScript(SCHEMA_PATH);
