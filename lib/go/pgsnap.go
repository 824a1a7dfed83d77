// Package pgsnap gives each Go test a fresh, real PostgreSQL database in
// about a millisecond, from the pgsnap service of the machine:
//
//	func TestUsers(t *testing.T) {
//		t.Parallel()
//		pg := pgsnap.New(t)
//		db, err := sql.Open("postgres", pg.Conninfo)
//		...
//	}
//
// By default the database is a fresh one of a shared server (a server
// started from a snapshot that holds 16 untouched copies of its database);
// Options ask for a server of its own, another snapshot, TCP, a mocked
// now().  The database is removed when the test ends; a failed test's is
// kept when asked (Options.KeepFailed, PGSNAP_KEEP_FAILED=1), and its URL
// and server log are in the test's output.
//
// The package talks to the service over a Unix socket (the protocol of
// docs/protocol.md in the pgsnap tree), one connection per process,
// starting the service with `pgsnap service start` when needed (PGSNAP_BIN
// names the program; PGSNAP_SOCKET a socket to use instead).  Everything a
// test process makes ends when the process does, even when it is killed.
package pgsnap

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// Options shape the database New hands out.  The zero value asks for a
// fresh database of a shared server of the "default" snapshot.
type Options struct {
	// Snapshot to clone (pgsnap snapshot build NAME ...); "" is "default".
	Snapshot string
	// Server asks for a whole server of its own instead of a database of
	// a shared one: for tests that change roles, settings or extensions.
	Server bool
	// Shared is how many databases a shared server holds (default 16).
	Shared int
	// TCP makes the server listen on 127.0.0.1 too, with a password
	// (Host, Port and Password then name it).
	TCP bool
	// Now mocks now(): a fixed timestamp ("2021-06-06 12:00:00+00"), or
	// "clock": now() is clock_timestamp(), moving within a transaction.
	Now string
	// ServerOptions are extra postgres options ("-c work_mem=64MB").
	ServerOptions string
	// BuildIfStale rebuilds the snapshot first if its inputs changed.
	BuildIfStale bool
	// Timeout also ends the database once no client has been connected
	// for this long (default: never; it ends with its test or process).
	Timeout time.Duration
	// KeepFailed keeps a failed test's database instead of removing it
	// and logs its URL and server log; PGSNAP_KEEP_FAILED=1 asks the same
	// for every test.  Until the test fails the database is tied to the
	// test process like any other; a kept one lives until `pgsnap rm ID`.
	KeepFailed bool
}

// Clone is a database handed out by the service (the fields of
// `pgsnap new --json`).
type Clone struct {
	// URL is the libpq URL, for psql and libpq.  A socket's directory is
	// %-encoded in its host, which Go's net/url refuses: Go drivers take
	// Conninfo.
	URL string `json:"url"`
	// Conninfo is the same as key=value words, with sslmode=disable
	// (pgsnap's servers speak no SSL and lib/pq would require it): for
	// sql.Open("postgres", ...) (lib/pq) and pgx.
	Conninfo string `json:"conninfo"`
	// Host is 127.0.0.1 with TCP, else the socket directory.
	Host      string `json:"host"`
	Port      int    `json:"port"`
	SocketDir string `json:"socket_dir"`
	User      string `json:"user"`
	Password  string `json:"password"` // only with TCP
	Database  string `json:"database"`
	JDBCURL   string `json:"jdbc_url"` // only with TCP
	// ID names the clone for `pgsnap rm`, `pgsnap ls`.
	ID string `json:"id"`
	// Server is the shared server's id (a database of a shared server).
	Server string `json:"server"`
	// Worker: PGSNAP_WORKER, else the CI shard ("shard-N"), else "".
	Worker   string `json:"worker"`
	PID      int    `json:"pid"` // the postmaster's
	DataDir  string `json:"data_dir"`
	Log      string `json:"log"` // the server's log file
	Snapshot string `json:"snapshot"`
}

// New hands the test a fresh database and removes it when the test and
// its subtests end (t.Cleanup).  A failed test's database is kept when
// asked (Options.KeepFailed, PGSNAP_KEEP_FAILED=1) and its URL and server
// log are logged.  New fails the test when no database can be had.
func New(t testing.TB, opts ...Options) *Clone {
	t.Helper()
	if len(opts) > 1 {
		t.Fatalf("pgsnap.New: one Options at most, got %d", len(opts))
	}
	var o Options
	if len(opts) == 1 {
		o = opts[0]
	}
	keep := o.KeepFailed || envTrue("PGSNAP_KEEP_FAILED")
	c, err := Create(o)
	if err != nil {
		t.Fatalf("pgsnap.New: %v", err)
	}
	t.Cleanup(func() {
		t.Helper() // log at the test's call of New
		if t.Failed() && keep {
			if err := c.Keep(); err != nil {
				// Still tied to this process: it ends with it.
				t.Errorf("pgsnap: cannot keep the database of this failed test: %v", err)
				return
			}
			t.Logf("pgsnap: kept the database of this failed test (remove it with: pgsnap rm %s)\n"+
				"url:        %s\nconninfo:   %s\nserver log: %s", c.ID, c.URL, c.Conninfo, c.Log)
			return
		}
		if err := c.Remove(); err != nil {
			t.Errorf("pgsnap: %v", err)
		}
		if t.Failed() {
			t.Logf("pgsnap: removed the database of this failed test (PGSNAP_KEEP_FAILED=1 keeps it)")
		}
	})
	return c
}

// Create hands out a database outside of a test (TestMain, benchmarks'
// setup): the caller removes it with Remove.  It ends with the process
// too (unless kept with Keep), and Options.KeepFailed means nothing here.
func Create(o Options) (*Clone, error) {
	var words []word
	add := func(key, value string) { words = append(words, word{key, value}) }
	if o.Snapshot != "" {
		add("snapshot", o.Snapshot)
	}
	switch {
	case o.Server:
		add("shared", "0")
	case o.Shared > 0:
		add("shared", strconv.Itoa(o.Shared))
	case o.Shared < 0:
		return nil, fmt.Errorf("Options.Shared is %d: it counts databases, 1 or more", o.Shared)
	default:
		add("shared", "16")
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("Options.Timeout is %v: 0 (never) or more", o.Timeout)
	}
	add("timeout", strconv.FormatInt(int64((o.Timeout+time.Second-1)/time.Second), 10))
	add("owner", strconv.Itoa(os.Getpid()))
	if o.TCP {
		add("tcp", "1")
	}
	if o.Now != "" {
		add("now", o.Now)
	}
	if o.ServerOptions != "" {
		add("options", o.ServerOptions)
	}
	if o.BuildIfStale {
		add("build_if_stale", "1")
	}
	if w := worker(); w != "" {
		add("worker", w)
	}
	answer, _, err := service.call("new", words...)
	if err != nil {
		return nil, err
	}
	c := new(Clone)
	return c, c.fill("new", answer)
}

// fill sets the clone from an answer that is one.
func (c *Clone) fill(verb string, answer []byte) error {
	var a Clone
	if err := json.Unmarshal(answer, &a); err != nil || a.ID == "" || a.Conninfo == "" {
		return fmt.Errorf("pgsnap service: %s: an answer without a clone: %q", verb, answer)
	}
	a.Conninfo += " sslmode=disable"
	*c = a
	return nil
}

// Reset puts the clone back as its snapshot made it, in place: same
// conninfo, port and password; its open sessions are ended.  Cheaper than
// a new one when a TestMain's server serves many tests in turn.
func (c *Clone) Reset() error {
	answer, _, err := service.call("reset", word{"id", c.ID})
	if err != nil {
		return err
	}
	return c.fill("reset", answer)
}

// Keep lets the clone outlive this process and its Timeout: it stays
// until `pgsnap rm ID` (New does this for a failed test when asked).
func (c *Clone) Keep() error {
	answer, _, err := service.call("keep", word{"id", c.ID})
	if err != nil {
		return err
	}
	return c.fill("keep", answer)
}

// Remove ends the clone: its database (or server) and files go in the
// background.
func (c *Clone) Remove() error {
	_, retried, err := service.call("rm", word{"id", c.ID})
	var e *Error
	if retried && errors.As(err, &e) && e.Errno == "ENOENT" {
		// The service was restarted under us: the first try was done.
		return nil
	}
	return err
}

// worker names the test run's share of the work for `pgsnap ls` and
// `pgsnap rm --worker`: PGSNAP_WORKER, else the CI system's shard (go test
// itself has no workers: a process per package).
func worker() string {
	if w := os.Getenv("PGSNAP_WORKER"); w != "" {
		return w
	}
	for _, v := range []string{"TEST_SHARD_INDEX", "CI_NODE_INDEX", "BUILDKITE_PARALLEL_JOB", "CIRCLE_NODE_INDEX"} {
		if n := os.Getenv(v); n != "" {
			return "shard-" + n
		}
	}
	return ""
}

func envTrue(name string) bool {
	b, _ := strconv.ParseBool(os.Getenv(name))
	return b
}
