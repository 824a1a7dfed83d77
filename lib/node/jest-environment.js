"use strict";
// testEnvironment: "pgsnap/jest-environment": Jest's node environment that
// tells pgsnap/jest which test failed (so that PGSNAP_KEEP_FAILED keeps its
// database) and shares one service connection per worker process.
// Another base environment: require("pgsnap/jest").withPgsnap(Base).

const { withPgsnap } = require("./jest.js");

function nodeEnvironment() {
  // Beside us (npm hoists it), else where the project's Jest is.
  for (const paths of [undefined, [process.cwd()]]) {
    try {
      const m = require(require.resolve("jest-environment-node", paths && { paths }));
      return m.TestEnvironment || m.default || m;
    } catch (e) {
      if (e.code !== "MODULE_NOT_FOUND") throw e;
    }
  }
  throw new Error(
    "pgsnap/jest-environment: jest-environment-node not found (it comes with jest; or use " +
      'require("pgsnap/jest").withPgsnap(YourEnvironment))',
  );
}

const Environment = withPgsnap(nodeEnvironment());
module.exports = Environment;
module.exports.TestEnvironment = Environment;
module.exports.default = Environment;
