"""A client of the pgsnap service (docs/protocol.md), standard library only.

One Client keeps one connection to the store's service and speaks its line
protocol: a request line out, one JSON line back.  It finds the socket as the
protocol says (PGSNAP_SOCKET, else ``$PGSNAP_BIN service start``), and when
the service went away (killed, or left while idle) it starts it again,
reconnects and sends the request once more.
"""
import errno
import json
import os
import socket
import subprocess
import threading
import urllib.parse

PROTOCOL = "pgsnap 1"

# What a vanished service looks like from here: nothing listens on the path,
# the path is gone, or the connection ended under us.
_GONE = (ConnectionRefusedError, FileNotFoundError, ConnectionResetError,
         BrokenPipeError, ConnectionAbortedError, EOFError)

# An idle service leaves when nothing is left to do, so one may go between
# `service start` printing its path and our connect: a few tries, not one.
_CONNECT_TRIES = 5


class PgsnapError(Exception):
    """A request the service refused, or a service that cannot be reached.

    ``errno`` is the symbolic errno ("ENOENT", ...) and ``status`` the exit
    status pgsnap would use (2: a bad request, 1: anything else).
    """

    def __init__(self, message, errno=None, status=1, answer=None):
        super().__init__(message)
        self.errno = errno
        self.status = status
        self.answer = answer


class Clone:
    """A clone handed out by the service: a database of a shared server, or
    a server of its own.  The answer's fields are attributes (``url``,
    ``conninfo``, ``host``, ``port``, ``user``, ``password``, ``database``,
    ``log``, ``id``, ...); ``raw`` is the whole answer, and ``clone["url"]``
    works too."""

    def __init__(self, raw):
        self.raw = {k: v for k, v in raw.items() if k != "ok"}

    def __getattr__(self, name):
        # Only for fields absent from the answer (password without TCP).
        if name.startswith("_") or name == "raw":
            raise AttributeError(name)
        return self.raw.get(name)

    def __getitem__(self, key):
        return self.raw[key]

    def __contains__(self, key):
        return key in self.raw

    def get(self, key, default=None):
        return self.raw.get(key, default)

    def env(self):
        """DATABASE_URL and the libpq variables, for a child process."""
        e = {"DATABASE_URL": self.url, "PGHOST": str(self.host),
             "PGPORT": str(self.port), "PGUSER": self.user,
             "PGDATABASE": self.database}
        if self.password:
            e["PGPASSWORD"] = self.password
        return e

    def __repr__(self):
        return "Clone(id=%r, url=%r)" % (self.raw.get("id"), self.raw.get("url"))


def encode(verb, params):
    """The request line: VERB key=value..., values percent-encoded; None is
    left out, booleans are 1 or 0."""
    words = [verb]
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        words.append("%s=%s" % (key, urllib.parse.quote_plus(str(value))))
    return " ".join(words) + "\n"


class Client:
    """One connection to the store's service, opened on first use.

    socket: the socket's path (default: PGSNAP_SOCKET, else what
    ``pgsnap service start`` prints); pgsnap_bin: the program that starts the
    service (default: PGSNAP_BIN, else ``pgsnap`` on PATH); env: the
    environment it runs in (it selects the store: PGSNAP_HOME, ...).
    Safe to share between threads (one request at a time); a forked child
    opens its own connection.
    """

    def __init__(self, socket=None, pgsnap_bin=None, env=None):
        self._env = dict(os.environ if env is None else env)
        self._socket = socket or self._env.get("PGSNAP_SOCKET") or None
        self._bin = pgsnap_bin or self._env.get("PGSNAP_BIN") or "pgsnap"
        self._lock = threading.Lock()
        self._sock = None
        self._file = None
        self._pid = None
        self.hello = None

    # ---- the connection ------------------------------------------------

    def _start_service(self):
        try:
            r = subprocess.run([self._bin, "service", "start"], env=self._env,
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True)
        except OSError as e:
            raise PgsnapError("cannot run %s service start: %s" % (self._bin, e),
                              errno.errorcode.get(e.errno, "EIO")) from e
        if r.returncode != 0 or not r.stdout.strip():
            why = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
            raise PgsnapError("%s service start failed: %s" % (self._bin, why),
                              "EIO", answer=r.stderr)
        return r.stdout.strip().splitlines()[-1]

    def _open(self, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            f = s.makefile("rwb")
            self._sock, self._file, self._pid = s, f, os.getpid()
            self.hello = self._exchange(PROTOCOL + "\n")
        except BaseException:
            self._drop()
            s.close()
            raise

    def _connect(self, restart):
        """Connect and say hello.  The socket named by PGSNAP_SOCKET is tried
        first; after a failure, and when none is named, `service start`."""
        last = None
        for attempt in range(_CONNECT_TRIES):
            if self._socket and not restart and attempt == 0:
                path = self._socket
            else:
                try:
                    path = self._start_service()
                except PgsnapError as e:
                    # It may have been leaving as it answered: once more.
                    last = e
                    continue
            try:
                self._open(path)
                return
            except _GONE as e:
                last = e
        if isinstance(last, PgsnapError):
            raise last
        raise PgsnapError("cannot reach the pgsnap service: %s" % last, "ECONNREFUSED")

    def connect(self):
        """Connect now (else the first request does); returns the hello."""
        with self._lock:
            if self._file is None or self._pid != os.getpid():
                self._connect(restart=False)
            return self.hello

    def _drop(self):
        for x in (self._file, self._sock):
            if x is not None:
                try:
                    x.close()
                except OSError:
                    pass
        self._file = self._sock = None

    def close(self):
        with self._lock:
            self._drop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _exchange(self, line):
        self._file.write(line.encode("utf-8"))
        self._file.flush()
        answer = self._file.readline()
        if not answer.endswith(b"\n"):
            raise EOFError("the service closed the connection")
        a = json.loads(answer)
        if not a.get("ok"):
            raise PgsnapError(a.get("error") or "the service refused: %s" % line.strip(),
                              a.get("errno"), a.get("status", 1), a)
        return a

    # ---- requests ----------------------------------------------------------

    def call(self, verb, **params):
        """Send one request, return the answer (a dict); raise PgsnapError
        when it is refused.  A service that went away is started again and
        the request sent once more."""
        line = encode(verb, params)
        with self._lock:
            for attempt in (0, 1):
                try:
                    if self._file is None or self._pid != os.getpid():
                        self._connect(restart=attempt > 0)
                    return self._exchange(line)
                except _GONE as e:
                    self._drop()
                    if attempt:
                        raise PgsnapError("the pgsnap service went away twice "
                                          "during '%s': %s" % (verb, e),
                                          "ECONNRESET") from e
        raise AssertionError("unreachable")

    def new(self, **params):
        """A fresh clone (keys: snapshot, shared, timeout, owner, tcp, now,
        options, pool, worker, ...; see docs/protocol.md).  With count=N, a
        list of N."""
        a = self.call("new", **params)
        if "clones" in a:
            return [Clone(c) for c in a["clones"]]
        return Clone(a)

    def rm(self, ref=None, all=False, worker=None):
        """End one clone (its id, URL or a Clone), all, or one worker's;
        returns how many.  The answer comes at once."""
        if isinstance(ref, Clone):
            ref = ref.id
        a = self.call("rm", id=ref, all=1 if all else None, worker=worker)
        return a.get("removed", 0)

    def reset(self, ref):
        """The same clone, its data back to its snapshot."""
        return Clone(self.call("reset", id=ref.id if isinstance(ref, Clone) else ref))

    def keep(self, ref):
        """Let the clone outlive its owner and time limit: it stays until
        rm (a failed test's evidence).  Returns the clone."""
        return Clone(self.call("keep", id=ref.id if isinstance(ref, Clone) else ref))

    def ls(self, all=False, worker=None):
        a = self.call("ls", all=1 if all else None, worker=worker)
        return [Clone(c) for c in a.get("clones", [])]

    def logs(self, ref):
        """The path of a clone's server log."""
        return self.call("logs", id=ref.id if isinstance(ref, Clone) else ref)["log"]

    def ping(self):
        return self.call("ping")
