"use strict";
// newDatabase(): a fresh database (or a whole server) from the service,
// and its end: removed, or kept when its test failed and that was asked
// (the service's `keep`: until then it is this process's like any other,
// so a killed test process leaves nothing behind).

const { PgsnapError } = require("./errors.js");

// Option name -> protocol key (docs/protocol.md, `new`).
const KEYS = {
  snapshot: "snapshot",
  shared: "shared",
  timeout: "timeout",
  owner: "owner",
  tcp: "tcp",
  ipv6: "ipv6",
  now: "now",
  options: "options",
  method: "method",
  keep: "keep",
  pool: "pool",
  buildIfStale: "build_if_stale",
  worker: "worker",
  user: "user",
};
// Options of this package, not of the protocol.
const OWN = new Set(["keepFailed"]);

const DEFAULT_SHARED = 16;

function truthy(v) {
  return v !== undefined && /^(1|true|yes|on)$/i.test(String(v));
}

// The test runner's worker, from the runner's own variable.
function runnerWorker(env) {
  if (env.JEST_WORKER_ID) return `jest-${env.JEST_WORKER_ID}`;
  if (env.VITEST_POOL_ID) return `vitest-${env.VITEST_POOL_ID}`;
  if (env.NODE_TEST_WORKER_ID) return `node-${env.NODE_TEST_WORKER_ID}`;
  return undefined;
}

function keepFailedWanted(opts, env) {
  return opts.keepFailed !== undefined ? Boolean(opts.keepFailed) : truthy(env.PGSNAP_KEEP_FAILED);
}

// The `new` request for opts: a typo is an error, as in the protocol.
function newArgs(opts, env) {
  for (const k of Object.keys(opts)) {
    if (!(k in KEYS) && !OWN.has(k)) {
      throw new PgsnapError(`pgsnap: unknown option '${k}' (${Object.keys(KEYS).concat([...OWN]).join(", ")})`, {
        errno: "EINVAL",
        status: 2,
      });
    }
  }
  const o = { shared: DEFAULT_SHARED, worker: runnerWorker(env), owner: process.pid, ...opts };
  if (o.owner === false) o.owner = undefined;
  // As the CLI does: the caller's pool size, not the service's.
  if (o.pool === undefined && env.PGSNAP_POOL) o.pool = env.PGSNAP_POOL;
  const args = {};
  for (const [k, key] of Object.entries(KEYS)) args[key] = o[k];
  return args;
}

class Database {
  constructor(client, clone, keepFailed) {
    this.url = clone.url;
    this.conninfo = clone.conninfo;
    this.host = clone.host;
    this.port = clone.port;
    this.user = clone.user;
    this.password = clone.password === undefined ? null : clone.password;
    this.database = clone.database;
    this.jdbcUrl = clone.jdbc_url === undefined ? null : clone.jdbc_url;
    this.log = clone.log;
    this.id = clone.id;
    this.clone = clone; // every field the service answered
    this.keepFailed = keepFailed;
    this.removed = false;
    this.kept = false; // kept: the test's end leaves it be
    Object.defineProperty(this, "_client", { value: client });
  }

  // Removes it (the service answers at once; the server stops in the
  // background).  A database already gone is fine.
  async drop() {
    if (this.removed) return;
    this.removed = true;
    try {
      await this._client.call("rm", { id: this.id });
    } catch (e) {
      if (e.errno !== "ENOENT") throw e;
    }
  }

  close() {
    return this.drop();
  }

  // Lets it outlive its owner (this process) and time limit: it stays
  // until `pgsnap rm`.  Resolves with the service's answer.
  async keep() {
    const clone = await this._client.call("keep", { id: this.id });
    this.kept = true;
    this.clone = clone;
    return clone;
  }

  // Where the test ends: removed, unless the test failed and failed tests
  // keep theirs; then it is kept and the lines to show are returned.
  async finish(failed) {
    if (this.removed || this.kept) return null;
    if (failed && this.keepFailed) {
      try {
        await this.keep();
      } catch (e) {
        if (e.errno !== "ENOENT") throw e; // still this process's: it ends with it
        this.removed = true; // the test removed it itself
        return null;
      }
      return this.keptMessage();
    }
    await this.drop();
    return null;
  }

  keptMessage() {
    return (
      `pgsnap: kept the failed test's database: ${this.url}\n` +
      `pgsnap: server log: ${this.log}\n` +
      `pgsnap: remove it with: pgsnap rm ${this.id}`
    );
  }

  toString() {
    return this.url;
  }
}

async function newDatabase(client, opts = {}, env = process.env) {
  if (opts === null || typeof opts !== "object") {
    throw new PgsnapError("pgsnap: newDatabase takes an object of options", { errno: "EINVAL", status: 2 });
  }
  const args = newArgs(opts, env);
  const clone = await client.call("new", args);
  return new Database(client, clone, keepFailedWanted(opts, env));
}

module.exports = { newDatabase, newArgs, Database, runnerWorker, keepFailedWanted };
