#!/usr/bin/env bash
# lib/go, the Go package: its own tests (against a fake service, under the
# race detector), then the real runner, `go test -p 4`, over three packages
# of generated parallel tests with Debian's lib/pq against real servers:
# each test a fresh database, the test processes holding databases at the
# same time, the service killed (kill -9) mid-run and started again
# without a test noticing; a killed test process leaves nothing after gc,
# also when failed tests keep their databases; a failed test keeps its
# database when asked (the service's keep: it outlives its process and gc)
# and logs its URL and server log; nothing is left after a run.
#
# Offline, without GOPATH mode: the generated module requires `pgsnap` and
# `github.com/lib/pq` and replaces both with directories (lib/go, Debian's
# /usr/share/gocode/src/github.com/lib/pq, which has a go.mod): directory
# replacements need neither a download nor go.sum.  GOPROXY=off makes any
# attempt to download an error; the build cache is build/gocache.
. "$(dirname "$0")/tap.sh"

PQ=/usr/share/gocode/src/github.com/lib/pq
if [ "${PGSNAP_SANITIZED:-0}" = 1 ]; then
	skip_all "the Go package reaches pgsnap only through the CLI and the service, whose C code the other tests run under the sanitizers (run in the normal pass)"
fi
command -v go >/dev/null || skip_all "go missing (scripts/deps.sh test installs golang-go)"
[ -f "$PQ/go.mod" ] || skip_all "golang-github-lib-pq-dev missing (scripts/deps.sh test installs it)"

export PGSNAP_BIN=$PGSNAP
export GO111MODULE=on GOPROXY=off GOFLAGS= GOWORK=off GOTOOLCHAIN=local GOENV=off \
	GOCACHE=$TOP/build/gocache GOPATH=$TEST_TMP/gopath
unset PGSNAP_SOCKET PGSNAP_KEEP_FAILED
mkdir -p "$PGSNAP_HOME"
OUT=$TEST_TMP/out
mkdir -p "$OUT"
export GOTEST_OUT=$OUT
# ls_is IDS: pgsnap ls -q shows these ids (removals finish in the background).
ls_is() { [ "$("$PGSNAP" ls -q | tr '\n' ' ')" = "$1" ]; }
gone() { ! alive "$1"; }

# The package itself ---------------------------------------------------
is "$(cd "$TOP/lib/go" && gofmt -l .)" "" "lib/go is gofmt-clean"
run sh -c "cd '$TOP/lib/go' && go vet ./... && go test -race -count=1 ./..."
is "$rc" 0 "lib/go's own tests pass under the race detector (fake service)"
[ "$rc" = 0 ] || diag "$out$err"
is "$(cd "$TOP/lib/go" && go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' .)" pgsnap \
	"lib/go imports the standard library only"

# The generated module -------------------------------------------------
M=$TEST_TMP/mod
mkdir -p "$M/a" "$M/b" "$M/c" "$M/keep" "$M/crash"
cat >"$M/go.mod" <<EOF
module example.test/app

go 1.19

require (
	github.com/lib/pq v1.10.7
	pgsnap v0.0.0
)

replace (
	github.com/lib/pq => $PQ
	pgsnap => $TOP/lib/go
)
EOF

# helpers_test.go, in every package: open records each clone it gets in a
# file named by the clone's id, made with O_EXCL: an id handed out twice
# fails the test.
helpers() {
	cat <<EOF
package $1

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"pgsnap"
)

var out = os.Getenv("GOTEST_OUT")

func open(t *testing.T, o ...pgsnap.Options) (*pgsnap.Clone, *sql.DB) {
	t.Helper()
	pg := pgsnap.New(t, o...)
	db, err := sql.Open("postgres", pg.Conninfo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f, err := os.OpenFile(filepath.Join(out, "db."+pg.ID), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("clone %s handed out twice? %v", pg.ID, err)
	}
	server := pg.Server
	if server == "" {
		server = "-"
	}
	fmt.Fprintf(f, "$1 %s %d %s %s %d\n", t.Name(), os.Getpid(), server, pg.Database, pg.PID)
	f.Close()
	return pg, db
}

// fresh: nothing of an earlier test is in the database.
func fresh(t *testing.T, db *sql.DB) {
	t.Helper()
	if _, err := db.Exec("create table mine (test text primary key)"); err != nil {
		t.Fatalf("a table of an earlier test is here? %v", err)
	}
	if _, err := db.Exec("insert into mine values (\$1)", t.Name()); err != nil {
		t.Fatal(err)
	}
}

func mine(t *testing.T, db *sql.DB) string {
	t.Helper()
	var s string
	if err := db.QueryRow("select test from mine").Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func touch(t *testing.T, name string) {
	if err := os.WriteFile(filepath.Join(out, name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// await: until the files exist, with a deadline.
func await(t *testing.T, names ...string) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for _, n := range names {
		for {
			if _, err := os.Stat(filepath.Join(out, n)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not appear within 120 s", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
EOF
}

# Each package: 12 parallel tests, each in a database of its own, and
# TestWorkers: holds a database until every package's process holds one
# (the processes run at the same time), then, once package a killed the
# service, gets another one (the package restarts the service) and finds
# the first still there.
NFRESH=12
for p in a b c; do
	helpers $p >"$M/$p/helpers_test.go"
	{
		printf 'package %s\n\nimport (\n\t"os"\n\t"testing"\n)\n' $p
		for i in $(seq -w 1 $NFRESH); do
			printf '\nfunc TestFresh%s(t *testing.T) {\n\tt.Parallel()\n\t_, db := open(t)\n\tfresh(t, db)\n}\n' "$i"
		done
		cat <<'EOF'

func TestWorkers(t *testing.T) {
	t.Parallel()
	pg, db := open(t)
	fresh(t, db)
	if w := os.Getenv("PGSNAP_WORKER"); w == "" || pg.Worker != w {
		t.Errorf("worker %q, want PGSNAP_WORKER's %q", pg.Worker, os.Getenv("PGSNAP_WORKER"))
	}
	touch(t, "ready."+pkg)
	await(t, "ready.a", "ready.b", "ready.c")
	await(t, "killed")
	_, db2 := open(t)
	fresh(t, db2)
	if got := mine(t, db); got != t.Name() {
		t.Errorf("the database made before the kill holds %q", got)
	}
}
EOF
		printf '\nconst pkg = "%s"\n' $p
	} >"$M/$p/${p}_test.go"
done

cat >"$M/a/kill_test.go" <<'EOF'
package a

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// servicePID: the pid in the service's hello.
func servicePID(t *testing.T) int {
	t.Helper()
	path, err := exec.Command(os.Getenv("PGSNAP_BIN"), "service", "start").Output()
	if err != nil {
		t.Fatal(err)
	}
	sock := strings.TrimSpace(string(path))
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "pgsnap 1\n")
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	var hello struct{ Pid int }
	if err != nil || json.Unmarshal(line, &hello) != nil || hello.Pid <= 0 {
		t.Fatalf("hello: %q %v", line, err)
	}
	return hello.Pid
}

// alive: pid runs (a zombie, dead but not yet reaped, does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// Once every package's process holds a database, kill -9 the service.
func TestServiceKilled(t *testing.T) {
	t.Parallel()
	_, db := open(t)
	fresh(t, db)
	await(t, "ready.a", "ready.b", "ready.c")
	pid := servicePID(t)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// (the service may be back at once, under another pid: a test of
	// another package found it gone and started it)
	for deadline := time.Now().Add(30 * time.Second); alive(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("service %d still alive 30 s after kill -9", pid)
		}
	}
	os.WriteFile(out+"/killed", []byte(fmt.Sprint(pid)), 0o644)
	_, db2 := open(t)
	fresh(t, db2)
	if got := mine(t, db); got != t.Name() {
		t.Errorf("the database made before the kill holds %q", got)
	}
	if servicePID(t) == pid {
		t.Errorf("the service is still %d", pid)
	}
}
EOF

cat >"$M/b/server_test.go" <<'EOF'
package b

import (
	"database/sql"
	"testing"

	"pgsnap"
)

func TestOwnServer(t *testing.T) {
	t.Parallel()
	pg, db := open(t, pgsnap.Options{Server: true})
	var n int
	if err := db.QueryRow("select count(*) from pg_database where datname like 'pgsnap_%'").Scan(&n); err != nil || n != 0 || pg.Server != "" {
		t.Fatalf("a server of its own: %d shared databases, server %q, %v", n, pg.Server, err)
	}
	if _, err := db.Exec("create role only_here"); err != nil {
		t.Fatal(err)
	}
}

// After the kill: a lease's reset interrupted by kill -9 can still lose
// its database (its retry, or the next service, finds it renamed away).
func TestReset(t *testing.T) {
	t.Parallel()
	await(t, "killed")
	pg, db := open(t)
	fresh(t, db)
	conninfo := pg.Conninfo
	if err := pg.Reset(); err != nil {
		t.Fatal(err)
	}
	if pg.Conninfo != conninfo {
		t.Errorf("reset moved the database: %q, was %q", pg.Conninfo, conninfo)
	}
	db2, err := sql.Open("postgres", pg.Conninfo)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	var n int
	if err := db2.QueryRow("select count(*) from pg_class where relname = 'mine'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after reset: %d tables 'mine', %v", n, err)
	}
}

func TestNow(t *testing.T) {
	t.Parallel()
	_, db := open(t, pgsnap.Options{Now: "2021-06-06 12:00:00+00", Server: true})
	var d string
	if err := db.QueryRow("select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI')").Scan(&d); err != nil || d != "2021-06-06 12:00" {
		t.Fatalf("now() is %q, %v", d, err)
	}
}
EOF

cat >"$M/c/tcp_test.go" <<'EOF'
package c

import (
	"testing"

	"pgsnap"
)

func TestTCP(t *testing.T) {
	t.Parallel()
	pg, db := open(t, pgsnap.Options{TCP: true})
	if pg.Host != "127.0.0.1" || pg.Password == "" || pg.Port <= 0 {
		t.Fatalf("TCP: host %q port %d password %q", pg.Host, pg.Port, pg.Password)
	}
	var addr string
	if err := db.QueryRow("select host(inet_client_addr())").Scan(&addr); err != nil || addr != "127.0.0.1" {
		t.Fatalf("client address %q, %v", addr, err)
	}
}
EOF

# TestMain's route: one server for the package, made before its tests and
# removed after them (through the service restarted meanwhile).
cat >"$M/c/main_test.go" <<'EOF'
package c

import (
	"database/sql"
	"fmt"
	"os"
	"testing"

	"pgsnap"
)

var server *pgsnap.Clone

func TestMain(m *testing.M) {
	var err error
	if server, err = pgsnap.Create(pgsnap.Options{Server: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := server.Remove(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func TestFromMain(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("postgres", server.Conninfo)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("select 40 + 2").Scan(&n); err != nil || n != 42 {
		t.Fatalf("got %d, %v", n, err)
	}
}
EOF

# keep: two failing tests, one keeping its database by option, one by
# PGSNAP_KEEP_FAILED; a passing one.
helpers keep >"$M/keep/helpers_test.go"
cat >"$M/keep/keep_test.go" <<'EOF'
package keep

import (
	"os"
	"testing"

	"pgsnap"
)

func TestKeptByOption(t *testing.T) {
	pg, db := open(t, pgsnap.Options{KeepFailed: true})
	db.Exec("create table evidence (x int)")
	os.WriteFile(out+"/kept.option", []byte(pg.ID), 0o644)
	t.Fatal("failing on purpose")
}

func TestKeptByEnv(t *testing.T) {
	pg, db := open(t)
	db.Exec("create table evidence (x int)")
	os.WriteFile(out+"/kept.env", []byte(pg.ID), 0o644)
	t.Fatal("failing on purpose")
}

func TestPasses(t *testing.T) {
	_, db := open(t)
	fresh(t, db)
}
EOF

# crash: a test process killed (SIGKILL) while holding three clones.
helpers crash >"$M/crash/helpers_test.go"
cat >"$M/crash/crash_test.go" <<'EOF'
package crash

import (
	"os"
	"syscall"
	"testing"

	"pgsnap"
)

func TestKilled(t *testing.T) {
	open(t)
	open(t, pgsnap.Options{Server: true})
	open(t, pgsnap.Options{TCP: true})
	touch(t, "crash.made")
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
}
EOF

gotest() { run sh -c 'cd "$1" && shift && exec go test "$@"' gotest "$M" "$@"; }

# The suite, three packages at once -----------------------------------
PGSNAP_WORKER=go810 gotest -count=1 -p 4 -parallel 4 ./a ./b ./c
is "$rc" 0 "go test -p 4 over three packages of parallel tests passes"
[ "$rc" = 0 ] || diag "$out$err"
for p in a b c; do
	like "$out" "^ok[[:space:]]+example.test/app/$p[[:space:]]" "package $p passed"
done
n=$(ls "$OUT"/db.* 2>/dev/null | wc -l)
is "$n" $((3 * (NFRESH + 2) + 2 + 3 + 1)) "every test got its own clone, none twice (each New a new id)"
is "$(cat "$OUT"/db.* | awk '{ print $1, $3 }' | sort -u | awk '{ print $1 }' | sort | uniq -c | awk '{ print $1 }' | sort -u)" 1 \
	"each package's tests ran in one process (one owner pid per package)"
is "$(cat "$OUT"/db.* | awk '{ print $3 }' | sort -u | wc -l)" 3 "three test processes"
is "$(cat "$OUT"/db.* | awk '$4 != "-" && $5 ~ /^pgsnap_/' | wc -l)" $((n - 2)) \
	"all but the two Server: true tests got a database of a shared server (the default)"
is "$(cat "$OUT"/db.* | awk '$4 != "-" { print $4 }' | sort -u | wc -l | awk '{ print ($1 >= 3) }')" 1 \
	"the shared databases came from several servers ($((n - 2)) tests, 16 per server)"
ok "$([ -s "$OUT/killed" ]; echo $?)" "the service was killed mid-run"
ok "$(wait_for 10 ls_is ""; echo $?)" "nothing is left after the run (pgsnap ls)"
grep -E '^(ok|FAIL)' <<<"$out" | while read -r l; do diag "$l"; done

# A failed test keeps its database when asked ---------------------------
gotest -count=1 -v ./keep
is "$rc" 1 "the keep package fails (on purpose)"
idopt=$(cat "$OUT/kept.option" 2>/dev/null)
idenv=$(cat "$OUT/kept.env" 2>/dev/null)
like "$out" "kept the database of this failed test \(remove it with: pgsnap rm $idopt\)" \
	"Options.KeepFailed: the failed test's output says its database is kept"
url=$(sed -n 's/^ *url: *//p' <<<"$out" | head -1)
log=$(sed -n 's/^ *server log: *//p' <<<"$out" | head -1)
like "$url" '^postgresql://' "and gives its URL"
ok "$([ -f "$log" ]; echo $?)" "and its server log ($log)"
like "$out" "removed the database of this failed test \(PGSNAP_KEEP_FAILED=1 keeps it\)" \
	"without the option, a failed test's database is removed (and the log says how to keep it)"
ok "$(wait_for 10 ls_is "$idopt "; echo $?)" "only the kept database is left"
is "$(q "$url" "select count(*) from pg_class where relname = 'evidence'")" 1 \
	"the kept database holds what the failed test made, after its test process ended"
unlike "$("$PGSNAP" ls --json)" '"owner"' "it has no owner any more (keep)"
run "$PGSNAP" gc
is "$rc" 0 "pgsnap gc"
ok "$(ls_is "$idopt "; echo $?)" "the kept database outlives gc"
is "$(q "$url" "select count(*) from pg_class where relname = 'evidence'")" 1 \
	"and still answers after gc"
"$PGSNAP" rm "$idopt" >/dev/null

PGSNAP_KEEP_FAILED=1 gotest -count=1 -v -run 'TestKeptByEnv|TestPasses' ./keep
is "$rc" 1 "with PGSNAP_KEEP_FAILED=1 the failing test still fails"
idenv=$(cat "$OUT/kept.env" 2>/dev/null)
like "$out" "kept the database of this failed test \(remove it with: pgsnap rm $idenv\)" \
	"PGSNAP_KEEP_FAILED=1: the failed test's database is kept"
like "$out" '--- PASS: TestPasses' "a passing test beside it passes"
ok "$(wait_for 10 ls_is "$idenv "; echo $?)" "only the failed test's database is left"
"$PGSNAP" rm "$idenv" >/dev/null

# A killed test process leaves nothing after gc, keeping failed tests'
# databases or not (they are let go of their owner only once a test fails).
for keep in 0 1; do
	rm -f "$OUT/crash.made" $(grep -l '^crash ' "$OUT"/db.* 2>/dev/null)
	PGSNAP_KEEP_FAILED=$keep gotest -count=1 ./crash
	isnt "$rc" 0 "PGSNAP_KEEP_FAILED=$keep: the crash package's process was killed"
	like "$out$err" 'signal: killed' "PGSNAP_KEEP_FAILED=$keep: by SIGKILL"
	ok "$([ -f "$OUT/crash.made" ]; echo $?)" "PGSNAP_KEEP_FAILED=$keep: after it made three clones"
	own=$(awk '$4 == "-" { print $6 }' $(grep -l '^crash ' "$OUT"/db.*))
	"$PGSNAP" gc >/dev/null 2>&1
	ok "$(wait_for 10 ls_is ""; echo $?)" "PGSNAP_KEEP_FAILED=$keep: after pgsnap gc nothing of the killed process is left"
	# (stopped by gc, a pool's server may wait as a zombie for the service
	# that started it: alive counts that as stopped)
	ok "$(wait_for 20 gone "$own"; echo $?)" "PGSNAP_KEEP_FAILED=$keep: its own server ($own) stopped"
done

done_testing
