"use strict";
// Vitest: a fixture for test.extend, a fresh database per test that uses it:
//
//   import { test as base } from "vitest";
//   import { database } from "pgsnap/vitest";
//   const test = base.extend({ db: database() });
//   test("...", async ({ db }) => { ... db.url ... });
//
// Removed when the test ends; kept when it failed and PGSNAP_KEEP_FAILED=1
// (or { keepFailed: true }), its URL and server log added to the failure.

const pgsnap = require("./index.js");

function database(opts = {}) {
  // Vitest reads the fixture's first parameter: it must be destructured.
  return async ({ task }, use) => {
    const db = await pgsnap.newDatabase(opts);
    await use(db);
    const result = task.result;
    const note = await db.finish(Boolean(result && result.state === "fail"));
    if (note) {
      // Among the failure's errors, where Vitest's reporters print them.
      if (result.errors) result.errors.push({ name: "pgsnap", message: note.replace(/^pgsnap: /, ""), stack: "" });
      else console.error(note);
    }
  };
}

exports.database = database;
exports.newDatabase = pgsnap.newDatabase;
