"use strict";
// The protocol client against a fake service (no PostgreSQL, no pgsnap):
// encoding, answers in order, errors, and the restart of a service that
// went away.  `node --test test/unit/` in lib/node.

const { test } = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { execFileSync } = require("node:child_process");
const { Client } = require("../../src/client.js");
const { requestLine } = require("../../src/connection.js");
const { newArgs, newDatabase } = require("../../src/database.js");

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgsnap-node-unit-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

// A fake service on a Unix socket: answers hello, then whatever
// answer(line, conn) returns (an object to send, or null to hang up).
function fakeService(name, answer) {
  const sock = path.join(tmp, name);
  const seen = [];
  const conns = new Set();
  const server = net.createServer((c) => {
    conns.add(c);
    c.on("close", () => conns.delete(c));
    let buf = "";
    c.setEncoding("utf8");
    c.on("data", (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        seen.push(line);
        const a = line === "pgsnap 1" ? { ok: true, protocol: 1, version: "test", pid: 1 } : answer(line, c);
        if (a === null) c.destroy();
        else c.write(JSON.stringify(a) + "\n");
      }
    });
  });
  const listen = () => new Promise((r) => server.listen(sock, r));
  // A killed service: connections cut, socket gone.
  const kill = () =>
    new Promise((r) => {
      for (const c of conns) c.destroy();
      server.close(r);
    });
  return { sock, seen, listen, kill, server };
}

// A fake `pgsnap`: `service start` prints the socket and counts its calls.
function fakeBin(name, sock, { fail } = {}) {
  const bin = path.join(tmp, name);
  const count = bin + ".calls";
  const body = fail
    ? `echo "pgsnap: ${fail}" >&2; exit 1`
    : `[ "$1 $2" = "service start" ] || exit 2\necho x >> '${count}'\necho '${sock}'`;
  fs.writeFileSync(bin, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return { bin, calls: () => (fs.existsSync(count) ? fs.readFileSync(count, "utf8").split("\n").length - 1 : 0) };
}

test("values are percent-encoded, booleans are 1 and 0, absent ones left out", () => {
  assert.strictEqual(
    requestLine("new", { options: "-c work_mem=64MB", now: "2021-06-06 12:00:00+00", tcp: true, keep: false, owner: undefined, worker: null }),
    "new options=-c%20work_mem%3D64MB now=2021-06-06%2012%3A00%3A00%2B00 tcp=1 keep=0",
  );
  assert.strictEqual(requestLine("ls"), "ls");
});

test("a line longer than the protocol allows is refused before it is sent", () => {
  assert.throws(() => requestLine("new", { options: "x".repeat(16384) }), { errno: "E2BIG", status: 2 });
});

test("new's defaults: a shared database, owned by this process, the runner's worker", () => {
  const a = newArgs({}, { JEST_WORKER_ID: "3", PGSNAP_POOL: "0" });
  assert.deepStrictEqual(
    { shared: a.shared, owner: a.owner, worker: a.worker, pool: a.pool, timeout: a.timeout },
    { shared: 16, owner: process.pid, worker: "jest-3", pool: "0", timeout: undefined },
  );
  assert.strictEqual(newArgs({}, { VITEST_POOL_ID: "2" }).worker, "vitest-2");
  assert.strictEqual(newArgs({ shared: 0, buildIfStale: true }, {}).build_if_stale, true);
  assert.strictEqual(newArgs({ shared: 0 }, {}).shared, 0);
});

test("keeping failed tests' databases: still owned by this process, the service's time limit", () => {
  for (const [opts, env] of [
    [{ keepFailed: true }, {}],
    [{}, { PGSNAP_KEEP_FAILED: "1" }],
  ]) {
    const a = newArgs(opts, env);
    assert.strictEqual(a.owner, process.pid);
    assert.strictEqual(a.timeout, undefined);
  }
  assert.strictEqual(newArgs({ owner: false }, {}).owner, undefined);
  assert.strictEqual(newArgs({ owner: 1234 }, {}).owner, 1234);
});

test("a test's end: rm, or keep when it failed and keeping was asked", async (t) => {
  const svc = fakeService("keep.sock", (line) => {
    if (line === "keep id=gone") return { ok: false, error: "no clone 'gone' in this store", errno: "ENOENT", status: 1 };
    if (line === "keep id=stuck") return { ok: false, error: "cannot keep 'stuck'", errno: "EIO", status: 1 };
    const id = line.startsWith("new ") ? /snapshot=(\w+)/.exec(line)?.[1] || "c1" : line.split("=")[1];
    return { ok: true, id, url: `postgresql://x/${id}`, log: `/tmp/${id}.log` };
  });
  await svc.listen();
  const c = new Client({ PGSNAP_SOCKET: svc.sock });
  t.after(async () => {
    await c.close();
    await svc.kill();
  });
  const kept = /kept the failed test's database: postgresql:\/\/x\/c1\n.*server log: \/tmp\/c1.log\n.*pgsnap rm c1/s;
  for (const [opts, env, failed, last, note] of [
    [{ keepFailed: true }, {}, true, "keep id=c1", kept],
    [{}, { PGSNAP_KEEP_FAILED: "1" }, true, "keep id=c1", kept],
    [{ keepFailed: true }, {}, false, "rm id=c1", null],
    [{ keepFailed: false }, { PGSNAP_KEEP_FAILED: "1" }, true, "rm id=c1", null],
    [{}, {}, true, "rm id=c1", null],
    // Removed by the test itself: nothing to keep, nothing to remove.
    [{ keepFailed: true, snapshot: "gone" }, {}, true, "keep id=gone", null],
    // Refused: an error, and it stays this process's (it ends with it).
    [{ keepFailed: true, snapshot: "stuck" }, {}, true, "keep id=stuck", /cannot keep 'stuck'/],
  ]) {
    const what = `${JSON.stringify(opts)} ${JSON.stringify(env)} failed=${failed}`;
    const before = svc.seen.length;
    const db = await newDatabase(c, opts, env);
    let got;
    try {
      got = await db.finish(failed);
    } catch (e) {
      got = e;
    }
    const after = svc.seen.length;
    const lines = svc.seen.slice(before).filter((l) => l !== "pgsnap 1");
    assert.strictEqual(lines.length, 2, `${what}: ${lines}`);
    assert.match(lines[0], new RegExp(`^new .*owner=${process.pid}( |$)`), what);
    assert.doesNotMatch(lines[0], /timeout=/, what);
    assert.strictEqual(lines[1], last, what);
    if (got instanceof Error) assert.match(got.message, note, what);
    else if (note) assert.match(got, note, what);
    else assert.strictEqual(got, null, what);
    if (got instanceof Error) continue;
    // Kept or removed, it is not removed again.
    assert.strictEqual(await db.finish(false), null, what);
    assert.strictEqual(svc.seen.length, after, what);
  }
});

test("keep(): the service's keep, its answer the clone's fields", async (t) => {
  const svc = fakeService("keep2.sock", (line) =>
    line.startsWith("new ")
      ? { ok: true, id: "k1", url: "postgresql://x/k1", log: "/tmp/k1.log", owner: process.pid, timeout: 60 }
      : { ok: true, id: "k1", url: "postgresql://x/k1", log: "/tmp/k1.log" },
  );
  await svc.listen();
  const c = new Client({ PGSNAP_SOCKET: svc.sock });
  t.after(async () => {
    await c.close();
    await svc.kill();
  });
  const db = await newDatabase(c, {}, {});
  assert.strictEqual(db.clone.owner, process.pid);
  const clone = await db.keep();
  assert.strictEqual(svc.seen.at(-1), "keep id=k1");
  assert.strictEqual(clone.owner, undefined);
  assert.strictEqual(db.clone.owner, undefined);
  assert.strictEqual(await db.finish(true), null); // kept: the test's end leaves it be
  assert.strictEqual(svc.seen.at(-1), "keep id=k1");
  await db.drop(); // but it can still be removed on purpose
  assert.strictEqual(svc.seen.at(-1), "rm id=k1");
});

test("an unknown option is an error, as in the protocol", () => {
  assert.throws(() => newArgs({ snapshots: "app" }, {}), { errno: "EINVAL", status: 2, message: /unknown option 'snapshots'/ });
});

test("one connection; requests sent together are answered in order", async () => {
  const svc = fakeService("order.sock", (line) => ({ ok: true, echo: line }));
  await svc.listen();
  const c = new Client({ PGSNAP_SOCKET: svc.sock, PGSNAP_BIN: "/nonexistent" });
  const answers = await Promise.all([1, 2, 3, 4, 5].map((i) => c.call("ping", { n: i })));
  assert.deepStrictEqual(
    answers.map((a) => a.echo),
    ["ping n=1", "ping n=2", "ping n=3", "ping n=4", "ping n=5"],
  );
  assert.strictEqual(svc.seen.filter((l) => l === "pgsnap 1").length, 1, "one hello: one connection");
  await c.close();
  await svc.kill();
});

test("an error answer rejects with its errno and status, and is not retried", async () => {
  const svc = fakeService("err.sock", () => ({ ok: false, error: "no clone 'x1' in this store", errno: "ENOENT", status: 1 }));
  await svc.listen();
  const c = new Client({ PGSNAP_SOCKET: svc.sock });
  await assert.rejects(c.call("rm", { id: "x1" }), { name: "PgsnapError", errno: "ENOENT", status: 1, message: "pgsnap rm: no clone 'x1' in this store" });
  assert.deepStrictEqual(svc.seen, ["pgsnap 1", "rm id=x1"]);
  // The connection stays usable.
  await assert.rejects(c.call("rm", { id: "x2" }), { errno: "ENOENT" });
  await c.close();
  await svc.kill();
});

test("PGSNAP_SOCKET gone: `service start` is run and its socket used", async () => {
  const svc = fakeService("moved.sock", () => ({ ok: true }));
  await svc.listen();
  const bin = fakeBin("pgsnap-moved", svc.sock);
  const c = new Client({ PGSNAP_SOCKET: path.join(tmp, "nothing-here.sock"), PGSNAP_BIN: bin.bin });
  assert.deepStrictEqual(await c.call("ping"), { ok: true });
  assert.strictEqual(bin.calls(), 1);
  await c.close();
  await svc.kill();
});

test("no PGSNAP_SOCKET: `service start` once per client, its path kept", async () => {
  const svc = fakeService("start.sock", () => ({ ok: true }));
  await svc.listen();
  const bin = fakeBin("pgsnap-start", svc.sock);
  const c = new Client({ PGSNAP_BIN: bin.bin });
  await c.call("ping");
  await c.close();
  await c.call("ping"); // reconnects to the path it knows
  assert.strictEqual(bin.calls(), 1);
  const info = await c.info();
  assert.strictEqual(info.socket, svc.sock);
  assert.strictEqual(info.version, "test");
  await c.close();
  await svc.kill();
});

test("a service killed mid-request: started again, the request retried once", async () => {
  let first = true;
  const svc = fakeService("killed.sock", (line) => {
    if (line.startsWith("new") && first) {
      first = false;
      return null; // hangs up without an answer, as a killed service
    }
    return { ok: true, id: "c1" };
  });
  await svc.listen();
  const bin = fakeBin("pgsnap-killed", svc.sock);
  const c = new Client({ PGSNAP_SOCKET: svc.sock, PGSNAP_BIN: bin.bin });
  await c.call("ping");
  const a = await c.call("new", { shared: 16 });
  assert.strictEqual(a.id, "c1");
  assert.strictEqual(bin.calls(), 1, "service start ran once");
  assert.strictEqual(svc.seen.filter((l) => l === "new shared=16").length, 2);
  await c.close();
  await svc.kill();
});

test("a service killed between requests, then back: the next request goes through", async () => {
  const svc = fakeService("between.sock", () => ({ ok: true }));
  await svc.listen();
  const bin = fakeBin("pgsnap-between", svc.sock);
  const c = new Client({ PGSNAP_SOCKET: svc.sock, PGSNAP_BIN: bin.bin });
  await c.call("ping");
  await svc.kill();
  await svc.listen();
  await c.call("ping");
  assert.strictEqual(bin.calls(), 1);
  await c.close();
  await svc.kill();
});

test("a service that leaves before it is reached is started again", async () => {
  const svc = fakeService("leaves.sock", () => ({ ok: true }));
  await svc.listen();
  // First `service start` fails (the service left before answering it),
  // the second prints a socket nobody listens on, the third the real one.
  const bin = path.join(tmp, "pgsnap-leaves");
  const n = bin + ".n";
  fs.writeFileSync(
    bin,
    `#!/bin/sh\necho x >> '${n}'\ncase $(wc -l < '${n}') in\n` +
      `1) echo "pgsnap: the service went away before it answered" >&2; exit 1 ;;\n` +
      `2) echo '${path.join(tmp, "left.sock")}' ;;\n*) echo '${svc.sock}' ;;\nesac\n`,
    { mode: 0o755 },
  );
  const c = new Client({ PGSNAP_BIN: bin });
  assert.deepStrictEqual(await c.call("ping"), { ok: true });
  assert.strictEqual(fs.readFileSync(n, "utf8").split("\n").length - 1, 3);
  await c.close();
  await svc.kill();
});

test("a service that cannot be reached: the error says where and why", async () => {
  const bin = fakeBin("pgsnap-nowhere", path.join(tmp, "never.sock"));
  const c = new Client({ PGSNAP_BIN: bin.bin }, { startWaitMs: 300 });
  await assert.rejects(c.call("ping"), { errno: "ENOENT", message: /never\.sock.*\(started it [0-9]+ times in 0\.3 s\)$/ });
});

test("`service start` failing: its message is the error's", async () => {
  const bin = fakeBin("pgsnap-fails", "", { fail: "store /x is writable by others" });
  const c = new Client({ PGSNAP_BIN: bin.bin }, { startWaitMs: 300 });
  await assert.rejects(c.call("ping"), { message: /cannot start the service .*: pgsnap: store \/x is writable by others \(started it [0-9]+ times in 0\.3 s\)$/ });
  const none = new Client({ PGSNAP_BIN: path.join(tmp, "no-such-pgsnap") });
  await assert.rejects(none.call("ping"), { errno: "ENOENT", message: /not found \(install pgsnap, or set PGSNAP_BIN\)/ });
});

test("an idle connection does not keep the process alive", () => {
  const sock = path.join(tmp, "idle.sock");
  // The service runs in this process; the client in a child that must exit.
  const child = `
    const net = require("node:net");
    const { Client } = require(${JSON.stringify(path.join(__dirname, "../../src/client.js"))});
    const c = new Client({ PGSNAP_SOCKET: ${JSON.stringify(sock)} });
    c.call("ping").then((a) => console.log(JSON.stringify(a)));`;
  const server = `
    const net = require("node:net");
    const s = net.createServer((c) => { c.setEncoding("utf8"); let b = "";
      c.on("data", (d) => { b += d; let i; while ((i = b.indexOf("\\n")) >= 0) { b = b.slice(i + 1);
        c.write(JSON.stringify({ ok: true, protocol: 1 }) + "\\n"); } }); });
    s.listen(${JSON.stringify(sock)}, () => {
      require("node:child_process").execFile(process.execPath, ["-e", ${JSON.stringify(child)}],
        { encoding: "utf8", timeout: 20000 }, (err, out) => {
          console.log(!err && out.trim() === '{"ok":true,"protocol":1}' ? "exited" : "hung: " + err);
          process.exit(0);
        });
    });`;
  assert.strictEqual(execFileSync(process.execPath, ["-e", server], { encoding: "utf8" }).trim(), "exited");
});

test("package.json: every export is a file the package ships", () => {
  const root = path.join(__dirname, "../..");
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
  assert.deepStrictEqual(Object.keys(pkg.dependencies || {}), [], "no dependencies");
  const targets = [];
  for (const v of Object.values(pkg.exports)) targets.push(...(typeof v === "string" ? [v] : Object.values(v)));
  for (const t of targets) {
    const f = t.replace(/^\.\//, "");
    assert.ok(fs.existsSync(path.join(root, f)), `${f} exists`);
    if (f === "package.json") continue; // npm always ships it
    assert.ok(pkg.files.some((p) => f === p || (p.endsWith("/") && f.startsWith(p))), `${f} is in "files"`);
  }
});
