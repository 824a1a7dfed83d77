"use strict";
// globalTeardown: "pgsnap/jest-global-teardown": lets go of the service.

const pgsnap = require("./index.js");

module.exports = async function pgsnapGlobalTeardown() {
  await pgsnap.close();
};
