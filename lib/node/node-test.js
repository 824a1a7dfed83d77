"use strict";
// node:test: `const db = await useDatabase(t)` in a test gives it a fresh
// database, removed when the test ends (t.after), or kept when the test
// failed and PGSNAP_KEEP_FAILED=1 (or { keepFailed: true }): then its URL
// and server log are the test's diagnostics.

const pgsnap = require("./index.js");

async function useDatabase(t, opts = {}) {
  if (!t || typeof t.after !== "function") {
    throw new TypeError("pgsnap: useDatabase(t) takes the test's context (test('name', async (t) => ...))");
  }
  const db = await pgsnap.newDatabase(opts);
  t.after(async () => {
    // t.passed is false once the test's function threw or an assertion failed.
    const note = await db.finish(t.passed === false);
    if (note) for (const line of note.split("\n")) t.diagnostic(line);
  });
  return db;
}

exports.useDatabase = useDatabase;
exports.newDatabase = pgsnap.newDatabase;
