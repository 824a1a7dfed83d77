"use strict";

// What pgsnap refused or failed to do: `errno` is the symbolic errno the
// service answered (ENOENT, EINVAL, ...) or the connection's error code,
// `status` the exit status `pgsnap` would use (2: a bad request, 1: else).
class PgsnapError extends Error {
  constructor(message, { errno = "EIO", status = 1, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = "PgsnapError";
    this.errno = errno;
    this.status = status;
  }
}

module.exports = { PgsnapError };
