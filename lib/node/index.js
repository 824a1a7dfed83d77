"use strict";
// pgsnap for Node.js: a fresh PostgreSQL database per test from the pgsnap
// service (docs/protocol.md of pgsnap), with the standard library only.

const { Client, startService } = require("./src/client.js");
const { newDatabase, Database } = require("./src/database.js");
const { PgsnapError } = require("./src/errors.js");

// One client per process (per worker thread: each has its own modules).
let shared = null;
function client() {
  if (!shared) shared = new Client(process.env);
  return shared;
}

module.exports = {
  // newDatabase(opts): a Promise of a Database (url, conninfo, host, port,
  // user, password, database, log, id; drop()/close() removes it, keep()
  // lets it outlive this process until `pgsnap rm`).
  newDatabase: (opts) => newDatabase(client(), opts),
  // request(verb, args): any request of the protocol; resolves with the answer.
  request: (verb, args) => client().call(verb, args),
  // serviceInfo(): the service's socket, pid and version; the connection
  // stays, which keeps the service running while this process lives.
  serviceInfo: () => client().info(),
  // close(): ends this process's connection (the next request reconnects).
  close: () => (shared ? shared.close() : Promise.resolve()),
  startService,
  Database,
  PgsnapError,
};
