"""pytest plugin: a fresh PostgreSQL database for every test, from the pgsnap
service.  Installed, it is active (the pytest11 entry point); README.md has
the fixtures and options.

One Client per process (per xdist worker) keeps one connection to the
service.  Clones are made with owner = this process, so a killed worker
leaves nothing behind, also when failed tests keep theirs: a failed test's
clone is kept on request with the service's `keep` (its owner and time limit
dropped, it outlives the run until `pgsnap rm`).
"""
import argparse
import os
import subprocess

import pytest

from .client import Client, PgsnapError

DEFAULT_SHARED = 16

# Marker keys: passed on to `new` as they are, but keep_failed.
MARKER_KEYS = ("snapshot", "shared", "now", "tcp", "ipv6", "options", "timeout",
               "method", "build_if_stale", "keep_failed")

_clones_key = pytest.StashKey()

KEPT_SECTION = "pgsnap: kept database"


def pytest_addoption(parser):
    group = parser.getgroup("pgsnap", "fresh PostgreSQL databases (pgsnap)")

    def option(name, help, ini_type=None, default=None, **kw):
        dest = "pgsnap_" + name.replace("-", "_")
        group.addoption("--pgsnap-" + name, dest=dest, help=help, **kw)
        parser.addini(dest, help, type=ini_type, default=default)

    option("snapshot", "snapshot the databases are cloned from (default: default)",
           metavar="NAME")
    option("recipe", "build the snapshot from this recipe file once per run "
           "(pgsnap snapshot build NAME --recipe FILE; nothing is done when it "
           "is up to date)", metavar="FILE")
    option("now", "mock now(): a timestamp, or 'clock'", metavar="TIME")
    option("shared", "databases per shared server, 1..1000; 0: a server per "
           "test (default %d)" % DEFAULT_SHARED, metavar="N")
    option("keep-failed", "keep the database of a failed test and show its URL "
           "and server log in the report", action="store_true", default=None,
           ini_type="bool")
    # Deprecated: kept clones were made without an owner and ended after this
    # idle time; now `keep` makes them last until `pgsnap rm`.  Still accepted
    # (and ignored) so that command lines and ini files naming it run.
    group.addoption("--pgsnap-keep-timeout", dest="pgsnap_keep_timeout",
                    help=argparse.SUPPRESS)
    parser.addini("pgsnap_keep_timeout", "deprecated and ignored: kept databases "
                  "last until pgsnap rm")


def _int_setting(name, value, lo, hi):
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = None
    if n is None or not lo <= n <= hi:
        raise pytest.UsageError("pgsnap: %s must be a number from %d to %d, not %r"
                                % (name, lo, hi, value))
    return n


class Settings:
    """The run's settings: command line first, then the ini file."""

    def __init__(self, config):
        def get(name):
            v = config.getoption("pgsnap_" + name)
            return v if v is not None else config.getini("pgsnap_" + name)

        self.snapshot = get("snapshot") or "default"
        self.now = get("now") or None
        self.shared = _int_setting("pgsnap_shared", get("shared") or DEFAULT_SHARED,
                                   0, 1000)
        self.keep_failed = bool(get("keep_failed"))
        self.keep_timeout_given = bool(get("keep_timeout"))
        self.recipe = None
        recipe = config.getoption("pgsnap_recipe")
        if recipe:
            self.recipe = os.path.join(str(config.invocation_params.dir), recipe)
        elif config.getini("pgsnap_recipe"):
            # Relative to the ini file, like pytest's own path options.
            base = config.inipath.parent if config.inipath else config.rootpath
            self.recipe = os.path.join(str(base), config.getini("pgsnap_recipe"))
        count = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
        self.worker = os.environ.get("PYTEST_XDIST_WORKER") or None
        # A warm server per worker, at least the service's usual two.
        self.pool = max(2, int(count) if count and count.isdigit() else 1)


class _State:
    """Per process: the settings, the one client (it connects on first use)
    and the kept databases to list at the end."""

    def __init__(self, config):
        self.settings = Settings(config)
        self.client = Client()
        self.kept = []

    def pytest_runtest_logreport(self, report):
        # Under xdist the workers' reports come to the controller too.
        for title, text in report.sections:
            if title == KEPT_SECTION:
                self.kept.append("%s\n%s" % (report.nodeid, text.rstrip()))

    def pytest_terminal_summary(self, terminalreporter):
        if self.kept:
            terminalreporter.section("pgsnap: databases kept for failed tests")
            for text in self.kept:
                terminalreporter.write_line(text)


_state_key = pytest.StashKey()


def _state(config):
    return config.stash[_state_key]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "pgsnap(snapshot=, shared=, now=, tcp=, options=, timeout=, "
        "keep_failed=): how this test's pgsnap fixtures make their clones")
    st = _State(config)
    config.stash[_state_key] = st
    config.pluginmanager.register(st, "pgsnap-state")
    if st.settings.keep_timeout_given:
        config.issue_config_time_warning(pytest.PytestDeprecationWarning(
            "pgsnap: --pgsnap-keep-timeout (pgsnap_keep_timeout) is ignored: a kept "
            "database lasts until 'pgsnap rm ID', and a killed run's databases end "
            "with it"), stacklevel=2)


def pytest_unconfigure(config):
    st = config.stash.get(_state_key, None)
    if st is not None:
        st.client.close()


def pytest_report_header(config):
    s = _state(config).settings
    words = ["snapshot %s" % s.snapshot]
    if s.recipe:
        words.append("recipe %s" % s.recipe)
    words.append("shared %d" % s.shared if s.shared else "a server per test")
    if s.now:
        words.append("now %s" % s.now)
    if s.keep_failed:
        words.append("failed tests keep their database")
    return "pgsnap: " + ", ".join(words)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """Build the snapshot from its recipe once per run: in the controller, not
    in each xdist worker (before the workers start)."""
    config = session.config
    s = _state(config).settings
    if not s.recipe or hasattr(config, "workerinput"):
        return
    cmd = [os.environ.get("PGSNAP_BIN") or "pgsnap", "snapshot", "build", s.snapshot,
           "--recipe", s.recipe, "-q"]
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except OSError as e:
        raise pytest.UsageError("pgsnap: cannot run %s: %s" % (cmd[0], e))
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
        raise pytest.UsageError("pgsnap: cannot build snapshot '%s' from %s: %s"
                                % (s.snapshot, s.recipe, why))


# ---- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def pgsnap_client(pytestconfig):
    """The process's Client (one connection to the service, per xdist worker)."""
    return _state(pytestconfig).client


def _marker_params(item):
    """The pgsnap markers' keys, the closest marker winning."""
    params = {}
    for m in item.iter_markers("pgsnap"):
        if m.args:
            pytest.fail("@pytest.mark.pgsnap takes keywords only (%s)"
                        % ", ".join(MARKER_KEYS), pytrace=False)
        for k, v in m.kwargs.items():
            if k not in MARKER_KEYS:
                pytest.fail("@pytest.mark.pgsnap has no key %r (%s)"
                            % (k, ", ".join(MARKER_KEYS)), pytrace=False)
            params.setdefault(k, v)
    return params


class _Made:
    """A clone a test made, whether it may be kept, and whether it was."""

    def __init__(self, clone, keep):
        self.clone = clone
        self.keep = keep
        self.kept = False


class Factory:
    """pgsnap_new: make clones for one test; they end with it (unless it
    failed and keep_failed is on)."""

    def __init__(self, state, item):
        self._state = state
        self._item = item
        self._marker = _marker_params(item)
        self._made = item.stash.setdefault(_clones_key, [])

    def __call__(self, **params):
        s = self._state.settings
        p = {"snapshot": s.snapshot, "shared": s.shared, "now": s.now}
        p.update(self._marker)
        p.update(params)
        keep = bool(p.pop("keep_failed", s.keep_failed))
        # Ends with the test, or with this process if it is killed; a failed
        # test's is let go of its owner then (`keep`), not before.
        p["owner"] = os.getpid()
        p.setdefault("timeout", 0)
        p.setdefault("worker", s.worker)
        p.setdefault("pool", s.pool)
        try:
            clone = self._state.client.new(**p)
        except PgsnapError as e:
            pytest.fail("pgsnap: no clone for this test: %s" % e, pytrace=False)
        self._made.append(_Made(clone, keep))
        return clone

    def finish(self):
        errors = []
        for m in self._made:
            if m.kept:
                continue
            clone = m.clone
            try:
                self._state.client.rm(clone.id)
            except PgsnapError as e:
                if e.errno != "ENOENT":  # the test removed it itself
                    errors.append("%s: %s" % (clone.id, e))
        del self._made[:]
        if errors:
            pytest.fail("pgsnap: cannot remove %s" % "; ".join(errors), pytrace=False)


@pytest.fixture
def pgsnap_new(request):
    """A function making clones for this test: pgsnap_new(snapshot=..., shared=0,
    tcp=True, ...) -> Clone.  They end when the test ends."""
    f = Factory(_state(request.config), request.node)
    request.addfinalizer(f.finish)
    return f


@pytest.fixture
def pgsnap_db(pgsnap_new):
    """A fresh database (of a shared server: shared=16 by default) for this
    test: .url, .conninfo, .host, .port, .user, .password, .database, .log,
    .id, .raw."""
    return pgsnap_new()


@pytest.fixture
def pgsnap_server(pgsnap_new):
    """A fresh server of this test's own (superuser; tcp=True in the marker
    adds TCP on 127.0.0.1 with a password)."""
    return pgsnap_new(shared=0)


# ---- failures -----------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when not in ("setup", "call") or not rep.failed:
        return
    client = _state(item.config).client
    for m in item.stash.get(_clones_key, []):
        if not m.keep or m.kept:
            continue
        try:
            # Its owner (this process) and time limit dropped: it stays
            # until `pgsnap rm`.
            m.clone = client.keep(m.clone)
        except PgsnapError as e:
            if e.errno != "ENOENT":  # else the test removed it itself
                rep.sections.append(("pgsnap: database not kept",
                                     "cannot keep %s: %s\n" % (m.clone.id, e)))
            continue
        m.kept = True
        clone = m.clone
        rep.sections.append((KEPT_SECTION, "url: %s\nlog: %s\nid: %s (pgsnap rm %s)\n"
                             % (clone.url, clone.log, clone.id, clone.id)))
        item.user_properties.append(("pgsnap_url", clone.url))
        item.user_properties.append(("pgsnap_log", clone.log))

