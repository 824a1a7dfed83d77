"use strict";
// One connection to the service (docs/protocol.md): lines out, one JSON
// line back per line, in order.  It knows nothing of starting the service
// or retrying: client.js does that.

const net = require("node:net");
const { PgsnapError } = require("./errors.js");

const LINE_MAX = 16384;

// A value as the protocol wants it: percent-encoded (encodeURIComponent is
// one of the encodings the protocol names), booleans as 1 and 0.
function encodeValue(v) {
  if (v === true) return "1";
  if (v === false) return "0";
  return encodeURIComponent(String(v));
}

// "VERB key=value ...": undefined and null values are left out.
function requestLine(verb, args = {}) {
  const words = [verb];
  for (const [k, v] of Object.entries(args)) {
    if (v === undefined || v === null) continue;
    words.push(`${k}=${encodeValue(v)}`);
  }
  const line = words.join(" ");
  if (Buffer.byteLength(line) + 1 > LINE_MAX) {
    throw new PgsnapError(`pgsnap: request '${verb}' is longer than the protocol's ${LINE_MAX} bytes`, {
      errno: "E2BIG",
      status: 2,
    });
  }
  return line;
}

// The error of a connection that is gone: the service was killed, left, or
// is not there.  `gone` tells the client to start the service and retry.
function goneError(path, cause) {
  const code = (cause && cause.code) || "EOF";
  const why = code === "EOF" ? "the service closed the connection" : cause.message;
  const e = new PgsnapError(`pgsnap: service at ${path}: ${why}`, { errno: code, status: 1 });
  e.gone = ["EOF", "ENOENT", "ECONNREFUSED", "ECONNRESET", "EPIPE"].includes(code);
  return e;
}

class Connection {
  constructor(path) {
    this.path = path;
    this.pending = []; // {resolve, reject} per line sent, in order
    this.buf = "";
    this.dead = null; // the error that ended it
    this.hello = null;
    this.sock = null;
  }

  // Connects and says hello; resolves with the hello answer.
  open() {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(this.path);
      this.sock = sock;
      sock.setEncoding("utf8");
      sock.on("data", (d) => this._data(d));
      sock.on("error", (err) => this._end(goneError(this.path, err)));
      sock.on("close", () => this._end(goneError(this.path, null)));
      this._send("pgsnap 1").then((hello) => {
        if (hello.protocol !== 1) {
          const e = new PgsnapError(
            `pgsnap: the service at ${this.path} speaks protocol ${hello.protocol}, this package 1`,
            { errno: "EPROTO", status: 1 },
          );
          this.close();
          reject(e);
          return;
        }
        this.hello = hello;
        resolve(hello);
      }, reject);
    });
  }

  // Sends one request line; resolves with the answer object, ok or not.
  send(line) {
    return this._send(line);
  }

  _send(line) {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      // Ref'd only while an answer is due: an idle connection must not
      // keep a test process alive.
      this.sock.ref();
      this.sock.write(line + "\n");
    });
  }

  _data(chunk) {
    this.buf += chunk;
    let nl;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const text = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const p = this.pending.shift();
      if (!p) {
        this._end(new PgsnapError(`pgsnap: the service sent a line nobody asked for: ${text}`, {
          errno: "EPROTO",
          status: 1,
        }));
        return;
      }
      let answer;
      try {
        answer = JSON.parse(text);
      } catch {
        p.reject(new PgsnapError(`pgsnap: the service answered with malformed JSON: ${text}`, {
          errno: "EPROTO",
          status: 1,
        }));
        continue;
      }
      p.resolve(answer);
    }
    if (this.pending.length === 0 && !this.dead) this.sock.unref();
  }

  _end(err) {
    if (this.dead) return;
    this.dead = err;
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) p.reject(err);
    this.sock.destroy();
  }

  close() {
    this._end(new PgsnapError("pgsnap: connection closed", { errno: "ESHUTDOWN", status: 1 }));
  }
}

module.exports = { Connection, requestLine, encodeValue, LINE_MAX };
