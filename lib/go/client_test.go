package pgsnap

// The client against a fake service on a socket of its own: what goes on
// the wire, errors, a service that goes away, many goroutines on the one
// connection.  test/810-go.t runs the package against the real service.

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type fake struct {
	path  string
	mu    sync.Mutex
	lines []string // every line received, hellos included
	conns int
	// answer returns the answer to a request line; "" closes the
	// connection without one (a service killed mid-request).
	answer func(req string) string
}

func startFake(t *testing.T, answer func(string) string) *fake {
	f := &fake{path: filepath.Join(t.TempDir(), "service.sock"), answer: answer}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
			go f.serve(conn)
		}
	}()
	resetService()
	t.Cleanup(resetService)
	return f
}

func (f *fake) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		f.mu.Lock()
		f.lines = append(f.lines, line)
		f.mu.Unlock()
		a := `{"ok": true, "protocol": 1, "version": "fake", "pid": 1}`
		if line != "pgsnap 1" {
			if a = f.answer(line); a == "" {
				return
			}
		}
		fmt.Fprintln(conn, a)
	}
}

func (f *fake) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

func (f *fake) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

func resetService() {
	service.mu.Lock()
	service.close()
	service.path = ""
	service.mu.Unlock()
}

func cloneAnswer(id string) string {
	return `{"ok": true, "id": "` + id + `", "url": "postgresql://postgres@%2Ftmp:5432/pgsnap_1",` +
		` "conninfo": "host='/tmp' port=5432 user='postgres' dbname='pgsnap_1'", "port": 5432,` +
		` "database": "pgsnap_1", "log": "/tmp/log", "new_field": [1]}`
}

func TestRequestOnTheWire(t *testing.T) {
	f := startFake(t, func(string) string { return cloneAnswer("c1") })
	t.Setenv("PGSNAP_SOCKET", f.path)
	t.Setenv("PGSNAP_BIN", "/nonexistent/pgsnap") // the socket is given: never run
	for _, v := range []string{"PGSNAP_WORKER", "TEST_SHARD_INDEX", "CI_NODE_INDEX", "BUILDKITE_PARALLEL_JOB", "CIRCLE_NODE_INDEX"} {
		t.Setenv(v, "")
	}
	c, err := Create(Options{Snapshot: "my app", Server: true, TCP: true,
		Now: "2021-06-06 12:00:00+00", ServerOptions: "-c work_mem=64MB",
		BuildIfStale: true, Timeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pgsnap 1", fmt.Sprintf("new snapshot=my+app shared=0 timeout=2 owner=%d tcp=1 "+
		"now=2021-06-06+12%%3A00%%3A00%%2B00 options=-c+work_mem%%3D64MB build_if_stale=1", os.Getpid())}
	if got := f.seen(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the service got\n%q\nwant\n%q", got, want)
	}
	if c.ID != "c1" || c.Port != 5432 || c.Database != "pgsnap_1" || c.Log != "/tmp/log" {
		t.Errorf("clone %+v", c)
	}
	if want := "host='/tmp' port=5432 user='postgres' dbname='pgsnap_1' sslmode=disable"; c.Conninfo != want {
		t.Errorf("conninfo %q, want %q", c.Conninfo, want)
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := f.seen(); got[len(got)-1] != "rm id=c1" {
		t.Errorf("last request %q, want rm id=c1", got[len(got)-1])
	}
	// The defaults: a database of a shared server of 16, tied to us.
	if _, err := Create(Options{}); err != nil {
		t.Fatal(err)
	}
	if got, want := f.seen()[3], fmt.Sprintf("new shared=16 timeout=0 owner=%d", os.Getpid()); got != want {
		t.Errorf("default request %q, want %q", got, want)
	}
	// The CI shard, or PGSNAP_WORKER, names the worker.
	t.Setenv("CI_NODE_INDEX", "3")
	if _, err := Create(Options{}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSNAP_WORKER", "w 1")
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(Options{}); err != nil {
		t.Fatal(err)
	}
	got := f.seen()[4:]
	want = []string{fmt.Sprintf("new shared=16 timeout=0 owner=%d worker=shard-3", os.Getpid()),
		"reset id=c1", fmt.Sprintf("new shared=16 timeout=0 owner=%d worker=w+1", os.Getpid())}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the service got\n%q\nwant\n%q", got, want)
	}
	if c.ID != "c1" || !strings.HasSuffix(c.Conninfo, "' sslmode=disable") {
		t.Errorf("after reset: %+v", c)
	}
	if n := f.connections(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// tb is a test for New whose failure the caller decides and whose
// cleanups it runs (the embedded TB is nil: New must use only these).
type tb struct {
	testing.TB
	failed   bool
	cleanups []func()
	logs     []string
}

func (t *tb) Helper()                           {}
func (t *tb) Failed() bool                      { return t.failed }
func (t *tb) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *tb) Fatalf(f string, a ...interface{}) { panic(fmt.Sprintf(f, a...)) }
func (t *tb) Logf(f string, a ...interface{}) {
	t.logs = append(t.logs, fmt.Sprintf(f, a...))
}
func (t *tb) Errorf(f string, a ...interface{}) {
	t.failed = true
	t.Logf(f, a...)
}

// A test's database is made with owner= this process, keep-failed or not;
// when the test fails and keeping was asked for, it is kept (the service's
// keep drops the owner), else removed.
func TestKeepFailed(t *testing.T) {
	f := startFake(t, func(req string) string {
		if req == "keep id=gone" {
			return `{"ok": false, "error": "no clone 'gone' in this store", "errno": "ENOENT", "status": 1}`
		}
		if strings.HasPrefix(req, "new ") && strings.Contains(req, "snapshot=gone") {
			return cloneAnswer("gone")
		}
		return cloneAnswer("c1")
	})
	t.Setenv("PGSNAP_SOCKET", f.path)
	for _, v := range []string{"PGSNAP_WORKER", "TEST_SHARD_INDEX", "CI_NODE_INDEX", "BUILDKITE_PARALLEL_JOB", "CIRCLE_NODE_INDEX"} {
		t.Setenv(v, "")
	}
	for _, c := range []struct {
		o      Options
		env    string
		failed bool
		last   string
		log    string
	}{
		{Options{KeepFailed: true}, "", true, "keep id=c1", "kept the database of this failed test (remove it with: pgsnap rm c1)"},
		{Options{}, "1", true, "keep id=c1", "kept the database"},
		{Options{KeepFailed: true}, "", false, "rm id=c1", ""},
		{Options{}, "", true, "rm id=c1", "removed the database of this failed test (PGSNAP_KEEP_FAILED=1 keeps it)"},
		{Options{KeepFailed: true, Snapshot: "gone"}, "", true, "keep id=gone", "cannot keep the database of this failed test"},
	} {
		t.Setenv("PGSNAP_KEEP_FAILED", c.env)
		test := &tb{}
		before := len(f.seen())
		New(test, c.o)
		test.failed = c.failed
		for i := len(test.cleanups) - 1; i >= 0; i-- {
			test.cleanups[i]()
		}
		var got []string
		for _, l := range f.seen()[before:] {
			if l != "pgsnap 1" {
				got = append(got, l)
			}
		}
		if len(got) != 2 || !strings.HasPrefix(got[0], "new ") ||
			!strings.Contains(got[0], fmt.Sprintf(" owner=%d", os.Getpid())) || got[1] != c.last {
			t.Errorf("%+v %q failed=%v: requests %q, want new ... owner=%d, then %q",
				c.o, c.env, c.failed, got, os.Getpid(), c.last)
		}
		if logs := strings.Join(test.logs, "\n"); !strings.Contains(logs, c.log) || c.log == "" && logs != "" {
			t.Errorf("%+v %q failed=%v: logged %q, want %q", c.o, c.env, c.failed, logs, c.log)
		}
	}
}

func TestRefusedRequest(t *testing.T) {
	f := startFake(t, func(string) string {
		return `{"ok": false, "error": "no snapshot 'nope' (see 'pgsnap snapshot ls')", "errno": "ENOENT", "status": 1}`
	})
	t.Setenv("PGSNAP_SOCKET", f.path)
	_, err := Create(Options{Snapshot: "nope"})
	var e *Error
	if !errors.As(err, &e) || e.Errno != "ENOENT" || e.Status != 1 || e.Verb != "new" {
		t.Fatalf("got %#v, want an *Error ENOENT", err)
	}
	if !strings.Contains(err.Error(), "no snapshot 'nope'") {
		t.Errorf("error %q lacks the service's reason", err)
	}
	if _, err := Create(Options{Shared: -1}); err == nil || !strings.Contains(err.Error(), "Options.Shared") {
		t.Errorf("Shared -1: got %v, want an error naming Options.Shared", err)
	}
}

// A service killed mid-request: the client starts it again (PGSNAP_BIN
// service start), reconnects and retries once.
func TestServiceGoneIsRestarted(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	f := startFake(t, func(req string) string {
		mu.Lock()
		defer mu.Unlock()
		verb := strings.Fields(req)[0]
		calls[verb]++
		switch {
		case calls[verb] == 1:
			return "" // dies before answering
		case verb == "rm":
			return `{"ok": false, "error": "no clone 'c2'", "errno": "ENOENT", "status": 1}`
		}
		return cloneAnswer("c2")
	})
	dir := t.TempDir()
	bin := filepath.Join(dir, "pgsnap")
	script := "#!/bin/sh\necho \"$*\" >> " + dir + "/started\necho " + f.path + "\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSNAP_SOCKET", "")
	t.Setenv("PGSNAP_BIN", bin)

	c, err := Create(Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The first rm was carried out, the service died before answering:
	// the retry's ENOENT is success.
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	started, _ := os.ReadFile(filepath.Join(dir, "started"))
	if got := strings.Count(string(started), "service start\n"); got != 3 {
		t.Errorf("service start ran %d times, want 3 (first use, then once per death):\n%s", got, started)
	}
	if n := f.connections(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
	// Only the retry of a request the service may have carried out
	// forgives ENOENT.
	if err := c.Remove(); err == nil {
		t.Errorf("rm of an unknown clone, no retry: got nil, want ENOENT")
	}
}

// A service with nothing to do leaves at once, maybe before we connect:
// `service start` is run again.
func TestServiceLeavesBeforeWeConnect(t *testing.T) {
	f := startFake(t, func(string) string { return cloneAnswer("c3") })
	dir := t.TempDir()
	bin := filepath.Join(dir, "pgsnap")
	// The first two starts print a socket nobody listens on any more.
	script := "#!/bin/sh\necho >> " + dir + "/started\n" +
		"if [ $(wc -l < " + dir + "/started) -le 2 ]; then echo " + dir + "/gone.sock; else echo " + f.path + "; fi\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSNAP_SOCKET", "")
	t.Setenv("PGSNAP_BIN", bin)
	if _, err := Create(Options{}); err != nil {
		t.Fatal(err)
	}
	started, _ := os.ReadFile(filepath.Join(dir, "started"))
	if n := strings.Count(string(started), "\n"); n != 3 {
		t.Errorf("service start ran %d times, want 3", n)
	}
}

func TestServiceCannotStart(t *testing.T) {
	resetService()
	t.Cleanup(resetService)
	t.Setenv("PGSNAP_SOCKET", "")
	t.Setenv("PGSNAP_BIN", "false")
	_, err := Create(Options{})
	if err == nil || !strings.Contains(err.Error(), "false service start") {
		t.Fatalf("got %v, want an error naming the failed 'service start'", err)
	}
}

// Parallel tests share the one connection: each gets its own answer.
func TestParallelCallers(t *testing.T) {
	f := startFake(t, func(req string) string {
		for _, w := range strings.Fields(req) {
			if strings.HasPrefix(w, "snapshot=") {
				return cloneAnswer(strings.TrimPrefix(w, "snapshot="))
			}
		}
		return `{"ok": true, "removed": 1}`
	})
	t.Setenv("PGSNAP_SOCKET", f.path)
	for i := 0; i < 32; i++ {
		i := i
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			want := fmt.Sprint("s", i)
			c := New(t, Options{Snapshot: want})
			if c.ID != want {
				t.Errorf("asked for %s, got %s", want, c.ID)
			}
		})
	}
	t.Cleanup(func() {
		rms := 0
		for _, l := range f.seen() {
			if strings.HasPrefix(l, "rm id=s") {
				rms++
			}
		}
		if n := f.connections(); rms != 32 || n != 1 {
			t.Errorf("%d rm requests on %d connections, want 32 on 1", rms, n)
		}
	})
}
