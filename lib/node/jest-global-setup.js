"use strict";
// globalSetup: "pgsnap/jest-global-setup": starts the store's service once
// for the run and gives its socket to the workers (PGSNAP_SOCKET); the
// connection it keeps holds the service up until globalTeardown.

const pgsnap = require("./index.js");

module.exports = async function pgsnapGlobalSetup() {
  const info = await pgsnap.serviceInfo();
  process.env.PGSNAP_SOCKET = info.socket;
};
