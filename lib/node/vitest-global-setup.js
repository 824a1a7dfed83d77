"use strict";
// globalSetup: ["pgsnap/vitest-global-setup"]: starts the store's service
// once for the run and gives its socket to the workers (PGSNAP_SOCKET); the
// connection it keeps holds the service up until the teardown.
// (A default export, the setup returning its teardown: a CommonJS module's
// default is the module itself.)

const pgsnap = require("./index.js");

module.exports = async function setup() {
  const info = await pgsnap.serviceInfo();
  process.env.PGSNAP_SOCKET = info.socket;
  return () => pgsnap.close();
};
