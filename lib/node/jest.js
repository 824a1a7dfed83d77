"use strict";
// Jest: useDatabase() at the top of a test file gives each test a fresh
// database (beforeEach) and removes it after (afterEach).  With
// testEnvironment "pgsnap/jest-environment" a failed test's database is
// kept when PGSNAP_KEEP_FAILED=1 (or { keepFailed: true }), its URL and
// server log shown with the failure.

const HOOK = Symbol.for("pgsnap.jest");

// The environment runs in the worker's own realm, test files each in a
// sandbox with their own modules: through it, the worker's test files share
// one connection, and it sees which test failed.
function withPgsnap(Base) {
  return class PgsnapEnvironment extends Base {
    constructor(config, context) {
      super(config, context);
      this.pgsnapTest = null;
      this.global[HOOK] = {
        api: require("./index.js"),
        failed: () => Boolean(this.pgsnapTest && this.pgsnapTest.errors.length > 0),
        // A line among the failure's errors: Jest shows it with them.
        report: (text) => {
          if (!this.pgsnapTest) return false;
          const e = new Error(text);
          e.stack = text;
          this.pgsnapTest.errors.push(e);
          return true;
        },
      };
    }

    async handleTestEvent(event, state) {
      if (super.handleTestEvent) await super.handleTestEvent(event, state);
      if (event.name === "test_start") this.pgsnapTest = event.test;
      else if (event.name === "test_done") this.pgsnapTest = null;
    }
  };
}

// A handle whose fields are the current test's database.
class DatabaseHandle {
  constructor() {
    Object.defineProperty(this, "current", { value: null, writable: true });
  }
  get() {
    if (!this.current) throw new Error("pgsnap: no database here: use it inside a test (useDatabase() makes one per test)");
    return this.current;
  }
}
for (const f of ["url", "conninfo", "host", "port", "user", "password", "database", "jdbcUrl", "log", "id", "clone"]) {
  Object.defineProperty(DatabaseHandle.prototype, f, {
    get() {
      return this.get()[f];
    },
    enumerable: true,
  });
}

// opts: newDatabase's, and hookTimeout (ms) for the hooks: a snapshot built
// on the first request takes longer than Jest's 5 s.
function useDatabase(opts = {}) {
  const { hookTimeout = 120000, ...dbOpts } = opts;
  const env = globalThis[HOOK];
  const api = env ? env.api : require("./index.js");
  const handle = new DatabaseHandle();
  let warned = false;

  beforeEach(async () => {
    handle.current = await api.newDatabase(dbOpts);
  }, hookTimeout);

  afterEach(async () => {
    const db = handle.current;
    handle.current = null;
    if (!db) return;
    if (db.keepFailed && !env && !warned) {
      warned = true;
      console.warn('pgsnap: keeping failed tests\' databases needs testEnvironment "pgsnap/jest-environment" in the Jest config: removing them');
    }
    const note = await db.finish(env ? env.failed() : false);
    if (note && !env.report(note)) console.error(note);
  }, hookTimeout);

  // Without the environment, each test file has its own connection.
  if (!env) afterAll(() => api.close());
  return handle;
}

module.exports = { useDatabase, withPgsnap, DatabaseHandle };
