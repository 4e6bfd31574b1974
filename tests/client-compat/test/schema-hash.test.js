// The same schema hash on both sides: `computeSchemaHash` of the pinned
// @stratasync/core, run on the schema the server generated
// (examples/todo/web/src/schema.ts), gives the server's hash (the
// `SCHEMA_HASH` the server wrote beside it), and the server built from this
// checkout generates exactly the committed module.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { computeSchemaHash } from "@stratasync/core";
import { importTypeScript, SCHEMA_HASH, SCHEMA_PATH, schema } from "../lib/generated-schema.js";
import { resolveServerBinary } from "../lib/server.js";

test("the client's hash of the generated schema is the server's", () => {
  assert.match(SCHEMA_HASH, /^[0-9a-f]{16}$/);
  assert.equal(computeSchemaHash(schema), SCHEMA_HASH);
});

test("the hash covers what the generator emits", () => {
  // A schema that differs in one flag hashes differently, so the equality
  // above is not one every schema passes.
  const changed = structuredClone(schema);
  changed.models.Todo.fields.title.nullable = true;
  assert.notEqual(computeSchemaHash(changed), SCHEMA_HASH);
  const lazy = structuredClone(schema);
  lazy.models.Label.loadStrategy = "lazy";
  assert.notEqual(computeSchemaHash(lazy), SCHEMA_HASH);
});

test("the server generates the committed module", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stratasync-codegen-"));
  try {
    const file = path.join(dir, "schema.ts");
    const result = spawnSync(resolveServerBinary(), ["codegen", "--typescript", file], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(fs.readFileSync(file, "utf8"), fs.readFileSync(SCHEMA_PATH, "utf8"));
    const fresh = await importTypeScript(file);
    assert.equal(computeSchemaHash(fresh.schema), fresh.SCHEMA_HASH);
  } finally {
    fs.rmSync(dir, { force: true, recursive: true });
  }
});
