"use strict";
// The process's client of the service: finds the socket as the protocol
// page says (PGSNAP_SOCKET, else `pgsnap service start`), keeps one
// connection, sends one request at a time, and when the service is gone
// (killed, or left) starts it again and retries the request once.

const { execFile } = require("node:child_process");
const { Connection, requestLine } = require("./connection.js");
const { PgsnapError } = require("./errors.js");

// How long one connect keeps running `service start` before it gives up.
// A service with nothing to watch leaves as soon as no client is on, which
// can be between its start and our connect, or before `service start` got
// its own answer: then it is started again, until it is reached.
const START_WAIT_MS = 10000;

// `pgsnap service start` ($PGSNAP_BIN, else pgsnap on PATH): starts the
// store's service unless it runs; resolves with its socket's path.
function startService(env = process.env) {
  const bin = env.PGSNAP_BIN || "pgsnap";
  return new Promise((resolve, reject) => {
    execFile(bin, ["service", "start"], { env, encoding: "utf8" }, (err, stdout, stderr) => {
      const path = (stdout || "").trim();
      if (!err && path) {
        resolve(path);
        return;
      }
      let why;
      if (err && err.code === "ENOENT") why = `${bin} not found (install pgsnap, or set PGSNAP_BIN)`;
      else why = (stderr || "").trim().split("\n").pop() || (err ? err.message : "it printed no socket path");
      reject(new PgsnapError(`pgsnap: cannot start the service (${bin} service start): ${why}`, {
        errno: err && err.code === "ENOENT" ? "ENOENT" : "EIO",
      }));
    });
  });
}

class Client {
  constructor(env = process.env, { startWaitMs = START_WAIT_MS } = {}) {
    this.env = env;
    this.startWaitMs = startWaitMs;
    this.socket = null; // the path that last worked
    this.conn = null;
    this.tail = Promise.resolve();
  }

  // One request at a time, in the order asked: one connection, and a
  // service restart done once rather than by every waiting request.
  call(verb, args) {
    const run = this.tail.then(() => this._call(verb, args));
    this.tail = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  // The service's hello (pid, version) and socket; connects if need be,
  // and the connection stays (a service keeps running while a client is on).
  info() {
    const run = this.tail.then(async () => {
      const conn = await this._connect(false);
      return { socket: conn.path, ...conn.hello };
    });
    this.tail = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  close() {
    const run = this.tail.then(() => {
      if (this.conn) this.conn.close();
      this.conn = null;
    });
    this.tail = run;
    return run;
  }

  async _call(verb, args) {
    const line = requestLine(verb, args);
    let retried = false;
    for (;;) {
      const conn = await this._connect(retried);
      let answer;
      try {
        answer = await conn.send(line);
      } catch (e) {
        if (!e.gone || retried) throw e;
        retried = true;
        continue;
      }
      if (!answer.ok) {
        const e = new PgsnapError(`pgsnap ${verb}: ${answer.error}`, {
          errno: answer.errno || "EIO",
          status: answer.status || 1,
        });
        e.retried = retried;
        throw e;
      }
      return answer;
    }
  }

  async _connect(restart) {
    if (this.conn && !this.conn.dead && !restart) return this.conn;
    if (this.conn) this.conn.close();
    this.conn = null;
    let path = restart ? null : this.socket || this.env.PGSNAP_SOCKET || null;
    const deadline = Date.now() + this.startWaitMs;
    let starts = 0;
    let last;
    for (;;) {
      if (!path) {
        if (starts > 0 && Date.now() > deadline) break;
        starts++;
        try {
          path = await startService(this.env);
        } catch (e) {
          if (e.errno === "ENOENT") throw e; // no pgsnap to run
          last = e;
          continue;
        }
      }
      const conn = new Connection(path);
      try {
        await conn.open();
      } catch (e) {
        if (!e.gone) throw e;
        last = e;
        path = null;
        continue;
      }
      this.conn = conn;
      this.socket = path;
      return conn;
    }
    last.message += ` (started it ${starts} times in ${this.startWaitMs / 1000} s)`;
    throw last;
  }
}

module.exports = { Client, startService };
