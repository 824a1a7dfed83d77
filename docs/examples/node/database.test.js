// database.test.js - node:test (Jest's beforeEach/afterEach are the same)
// and node-postgres: a fresh server per test.
const { test, beforeEach, afterEach } = require("node:test");
const assert = require("node:assert");
const { execFileSync } = require("node:child_process");
const { Client } = require("pg");

let url, client;

beforeEach(async () => {
  url = execFileSync("pgsnap", ["new"], { encoding: "utf8" }).trim();
  client = new Client({ connectionString: url });
  await client.connect();
});

afterEach(async () => {
  await client.end();
  execFileSync("pgsnap", ["rm", url]);
});

test("creates a table", async () => {
  await client.query("create table todo (done boolean)");
  await client.query("insert into todo values (true)");
  const r = await client.query("select count(*)::int as n from todo");
  assert.strictEqual(r.rows[0].n, 1);
});

test("starts empty", async () => {
  const r = await client.query("select to_regclass('todo') as t");
  assert.strictEqual(r.rows[0].t, null);
});
