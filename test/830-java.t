#!/usr/bin/env bash
# lib/java: the JUnit 5 extension, built with javac against Debian's junit5
# jars and run by the JUnit console launcher against real servers: every
# injection point gets the test's own fresh database, parallel tests and
# parallel JVMs work, a killed JVM leaves nothing after gc (keeping failed
# tests' databases or not), a failed test keeps its database when asked
# (the service's keep: it outlives its JVM and gc) and says where it is, a
# service killed mid-run is started again, and nothing is left behind.
. "$(dirname "$0")/tap.sh"

J=/usr/share/java
LAUNCHER=$J/junit-platform-console-standalone.jar
API=$J/junit-jupiter-api.jar:$J/junit-platform-commons.jar:$J/opentest4j.jar:$J/apiguardian-api.jar
if [ "${PGSNAP_SANITIZED:-0}" = 1 ]; then
	skip_all "the JVM exercises no C code of pgsnap beyond the CLI (run in the normal pass)"
fi
if ! command -v javac >/dev/null || [ ! -r "$LAUNCHER" ] || [ ! -r $J/postgresql.jar ]; then
	skip_all "javac, junit5 or libpostgresql-jdbc-java missing (scripts/deps.sh test installs them)"
fi

export PGSNAP_BIN=$PGSNAP
unset PGSNAP_SOCKET PGSNAP_KEEP_FAILED
mkdir -p "$PGSNAP_HOME"
W=$TEST_TMP/java
mkdir -p "$W/src" "$W/cls"
no_clones() {
	local left
	left=$("$PGSNAP" ls -q)
	is "$left" "" "$1: nothing left behind (ls -q empty)"
	[ -z "$left" ] || diag "$("$PGSNAP" ls -a)"
}

pom=$TOP/lib/java/pom.xml
is "$(grep -c '<dependency>' "$pom") $(grep -c '<scope>provided</scope>' "$pom")" "1 1" \
	"pom.xml has one dependency, provided"
like "$(tr -d ' \n\t' <"$pom")" '<artifactId>junit-jupiter-api</artifactId>' "and it is junit-jupiter-api"

cat >"$W/src/Sql.java" <<'EOF'
import java.sql.*;
import javax.sql.DataSource;

final class Sql {
    static String one(DataSource ds, String q) throws SQLException {
        try (Connection c = ds.getConnection(); Statement s = c.createStatement();
             ResultSet r = s.executeQuery(q)) {
            r.next();
            return r.getString(1);
        }
    }

    static void exec(DataSource ds, String q) throws SQLException {
        try (Connection c = ds.getConnection(); Statement s = c.createStatement()) {
            s.execute(q);
        }
    }
}
EOF
cat >"$W/src/FreshTest.java" <<'EOF'
import static org.junit.jupiter.api.Assertions.*;

import dev.pgsnap.junit.*;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import javax.sql.DataSource;
import org.junit.jupiter.api.*;

// Every injection point of one test gets the same database; each test
// another, fresh one; the class's own (@BeforeAll) is a third kind.
@Pgsnap
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class FreshTest {
    static final Set<String> seen = ConcurrentHashMap.newKeySet();
    static PgsnapDatabase classDb;
    final String ctorUrl;
    @PgsnapJdbcUrl String fieldUrl;
    @PgsnapDataSource DataSource fieldDs;
    DataSource beforeEachDs;

    FreshTest(@PgsnapJdbcUrl String url) {
        ctorUrl = url;
    }

    @BeforeAll
    static void all(PgsnapDatabase db) {
        classDb = db;
    }

    @BeforeEach
    void before(DataSource ds) {
        beforeEachDs = ds;
    }

    void sameEverywhere(PgsnapDatabase db, String url) throws Exception {
        assertEquals(db.jdbcUrl(), url, "parameter");
        assertEquals(url, ctorUrl, "constructor");
        assertEquals(url, fieldUrl, "field");
        assertSame(db, fieldDs, "DataSource field");
        assertSame(db, beforeEachDs, "@BeforeEach parameter");
        assertNotEquals(classDb.jdbcUrl(), url, "not the class's database");
        assertTrue(seen.add(url), "a database no other test had");
        assertEquals("0", Sql.one(db, "select count(*) from pg_class where relname = 'made_here'"),
                "fresh: no table of another test");
        Sql.exec(db, "create table made_here (x int)");
        System.out.println("fresh " + db.id() + " " + Sql.one(db, "select current_database()"));
    }

    @Test @Order(1)
    void first(PgsnapDatabase db, @PgsnapJdbcUrl String url) throws Exception {
        sameEverywhere(db, url);
        Sql.exec(classDb, "create table class_table (x int)");
    }

    @Test @Order(2)
    void second(PgsnapDatabase db, @PgsnapJdbcUrl String url) throws Exception {
        sameEverywhere(db, url);
    }

    @Test @Order(3)
    void theClassDatabaseLasts() throws Exception {
        assertEquals("1", Sql.one(classDb, "select count(*) from pg_class where relname = 'class_table'"));
    }

    @Nested
    class Inner {
        final String innerCtorUrl;

        Inner(@PgsnapJdbcUrl String url) {
            innerCtorUrl = url;
        }

        @Test
        void oneDatabaseForBothConstructors(PgsnapDatabase db, @PgsnapJdbcUrl String url) throws Exception {
            assertEquals(url, innerCtorUrl, "inner constructor");
            sameEverywhere(db, url);
        }
    }
}
EOF
cat >"$W/src/OptionsTest.java" <<'EOF'
import static org.junit.jupiter.api.Assertions.*;

import dev.pgsnap.junit.*;
import javax.sql.DataSource;
import org.junit.jupiter.api.*;
import org.junit.jupiter.api.extension.ExtendWith;

// @Pgsnap's options, on a method over its class's.
@Pgsnap
class OptionsTest {
    @Test
    void sharedByDefault(PgsnapDatabase db) throws Exception {
        assertNotNull(db.fields().get("server"), "a database of a shared server");
        assertTrue(db.database().startsWith("pgsnap_"), db.database());
        assertEquals(db.database(), Sql.one(db, "select current_database()"));
    }

    @Test @Pgsnap(shared = 0)
    void aServerOfItsOwn(PgsnapDatabase db) throws Exception {
        assertNull(db.fields().get("server"));
        assertEquals("postgres", db.database());
        Sql.exec(db, "create role only_mine");
    }

    // (shared = 0: one snapshot to derive for now, not two)
    @Test @Pgsnap(now = "2020-02-03 04:05:06+00", shared = 0)
    void mockNow(DataSource ds) throws Exception {
        assertEquals("2020-02-03", Sql.one(ds, "select now()::date::text"));
    }

    @Test @Pgsnap(snapshot = "default")
    void namedSnapshot(PgsnapDatabase db) throws Exception {
        assertTrue(db.fields().get("snapshot").toString().startsWith("default"));
        assertEquals("1", Sql.one(db, "select 1"));
    }

    @Nested
    class Inner {
        @Test
        void inheritsTheOptions(PgsnapDatabase db) {
            assertNotNull(db.fields().get("server"));
        }
    }
}

@ExtendWith(PgsnapExtension.class)
class PlainExtendWithTest {
    @Test
    void defaults(DataSource ds, PgsnapDatabase db) throws Exception {
        assertSame(ds, db);
        assertNotNull(db.fields().get("server"), "shared=16 by default");
        assertEquals("1", Sql.one(ds, "select 1"));
    }
}
EOF
cat >"$W/src/ParallelTest.java" <<'EOF'
import static org.junit.jupiter.api.Assertions.*;

import dev.pgsnap.junit.*;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.*;

// Run with parallel execution on: all six wait for each other holding
// their databases, so they pass only if they run at the same time.
@Pgsnap
class ParallelTest {
    static final CyclicBarrier together = new CyclicBarrier(6);
    static final Set<String> urls = ConcurrentHashMap.newKeySet();

    static void work(PgsnapDatabase db) throws Exception {
        assertTrue(urls.add(db.jdbcUrl()), "a database of its own");
        Sql.exec(db, "create table mine (x int)");
        String worker = System.getProperty("org.gradle.test.worker");
        if (worker != null)
            assertEquals(worker, db.fields().get("worker"));
        together.await(60, TimeUnit.SECONDS);
        Sql.exec(db, "insert into mine values (1)");
        assertEquals("1", Sql.one(db, "select count(*) from mine"));
        System.out.println("parallel " + Thread.currentThread().getName() + " " + db.id());
    }

    @Test void a(PgsnapDatabase db) throws Exception { work(db); }
    @Test void b(PgsnapDatabase db) throws Exception { work(db); }
    @Test void c(PgsnapDatabase db) throws Exception { work(db); }
    @Test void d(PgsnapDatabase db) throws Exception { work(db); }
    @Test @Pgsnap(shared = 0) void e(PgsnapDatabase db) throws Exception { work(db); }
    @Test @Pgsnap(shared = 0) void f(PgsnapDatabase db) throws Exception { work(db); }
}
EOF
cat >"$W/src/FailTest.java" <<'EOF'
import static org.junit.jupiter.api.Assertions.*;

import dev.pgsnap.junit.*;
import javax.sql.DataSource;
import org.junit.jupiter.api.*;

@Pgsnap
class FailTest {
    @Test
    void fails(DataSource ds) throws Exception {
        Sql.exec(ds, "create table evidence (x int); insert into evidence values (42)");
        fail("on purpose");
    }

    @Test
    void passes(DataSource ds) throws Exception {
        assertEquals("1", Sql.one(ds, "select 1"));
    }
}
EOF
cat >"$W/src/PerClassTest.java" <<'EOF'
import static org.junit.jupiter.api.Assertions.*;

import dev.pgsnap.junit.*;
import org.junit.jupiter.api.*;

// One instance for the class: its constructor's database is the class's;
// each test still gets its own.
@Pgsnap
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PerClassTest {
    final PgsnapDatabase classDb;
    PgsnapDatabase firstTestDb;

    PerClassTest(PgsnapDatabase db) {
        classDb = db;
    }

    @Test @Order(1)
    void first(PgsnapDatabase db) throws Exception {
        assertNotEquals(classDb.jdbcUrl(), db.jdbcUrl());
        firstTestDb = db;
        Sql.exec(classDb, "create table for_the_class (x int)");
    }

    @Test @Order(2)
    void second(PgsnapDatabase db) throws Exception {
        assertNotEquals(firstTestDb.jdbcUrl(), db.jdbcUrl());
        assertNotEquals(classDb.jdbcUrl(), db.jdbcUrl());
        assertEquals("1", Sql.one(classDb, "select count(*) from pg_class where relname = 'for_the_class'"));
    }
}
EOF
cat >"$W/src/BadSnapshotTest.java" <<'EOF'
import dev.pgsnap.junit.*;
import org.junit.jupiter.api.*;

class BadSnapshotTest {
    @Test @Pgsnap(snapshot = "no-such-snapshot")
    void cannotHaveIt(PgsnapDatabase db) {
    }
}
EOF
cat >"$W/src/KillTest.java" <<'EOF'
import dev.pgsnap.junit.*;
import java.nio.file.*;
import org.junit.jupiter.api.*;

// Holds a database until the test script kills this JVM.
@Pgsnap
class KillTest {
    @Test
    void holds(PgsnapDatabase db) throws Exception {
        Path ready = Paths.get(System.getProperty("ready"));
        Path tmp = Paths.get(ready + ".tmp");
        Files.writeString(tmp, db.id() + " " + db.fields().get("owner") + " " + ProcessHandle.current().pid() + "\n");
        Files.move(tmp, ready, StandardCopyOption.ATOMIC_MOVE);
        Thread.sleep(600_000);
    }
}
EOF
cat >"$W/src/RestartTest.java" <<'EOF'
import static org.junit.jupiter.api.Assertions.*;

import dev.pgsnap.junit.*;
import java.nio.file.*;
import java.util.concurrent.TimeUnit;
import javax.sql.DataSource;
import org.junit.jupiter.api.*;

// kill -9 of the service: under a test's database (its rm meets a dead
// service), then between tests (the next new meets one).
@Pgsnap
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class RestartTest {
    static long firstKilled;

    static long killService() throws Exception {
        Path lock = Paths.get(System.getenv("PGSNAP_HOME"), "run", "service.lock");
        long pid = Long.parseLong(Files.readString(lock).trim());
        ProcessHandle h = ProcessHandle.of(pid).orElseThrow();
        assertTrue(h.destroyForcibly(), "SIGKILL sent");
        // (onExit() polls a non-child slowly: a deadline of our own)
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (h.isAlive() && System.nanoTime() < deadline)
            Thread.sleep(5);
        assertFalse(h.isAlive(), "the service is dead");
        System.out.println("killed service " + pid);
        return pid;
    }

    @Test @Order(1)
    void underADatabase(DataSource ds) throws Exception {
        assertEquals("1", Sql.one(ds, "select 1"));
        firstKilled = killService();
        assertEquals("1", Sql.one(ds, "select 1"), "the database outlives the service");
    }

    @Test @Order(2)
    void betweenTests() throws Exception {
        assertNotEquals(firstKilled, killService(), "a new service answered the last rm");
    }

    @Test @Order(3)
    void afterTheKill(DataSource ds) throws Exception {
        assertEquals("1", Sql.one(ds, "select 1"));
    }
}
EOF
# Start fast: these JVMs run for seconds, not long enough for the JIT's
# top tier or a parallel GC to pay off.
JOPTS=(-XX:TieredStopAtLevel=1 -XX:+UseSerialGC)

# The package needs the JDK and junit-jupiter-api, nothing else (one javac
# for it and the tests: each JVM start counts on a busy machine).
run javac -J-XX:TieredStopAtLevel=1 -J-XX:+UseSerialGC --release 17 -Xlint:all -Werror -d "$W/cls" -cp "$API" \
	$(find "$TOP/lib/java/src/main/java" -name '*.java') "$W"/src/*.java
is "$rc$err" 0 "the extension and the tests compile (-Xlint:all -Werror) against junit-jupiter-api alone"

CP=$W/cls:$J/postgresql.jar
launch() { # launch [JAVA-OPTION...] -- [LAUNCHER-OPTION...]
	local jopts=("${JOPTS[@]}")
	while [ "$1" != -- ]; do jopts+=("$1"); shift; done
	shift
	java "${jopts[@]}" -jar "$LAUNCHER" --disable-banner --disable-ansi-colors \
		--details=tree -cp "$CP" "$@"
}
summary() { printf '%s\n' "$1" | grep -E "^\[ +[0-9]+ tests $2 +\]" | tr -s ' ' | cut -d' ' -f2; }

# Fresh databases, every injection point, the options; a failed test's
# database is removed too, saying how to keep it.
run launch -- --select-class FreshTest --select-class OptionsTest --select-class PlainExtendWithTest \
	--select-class PerClassTest --select-class FailTest --select-class BadSnapshotTest
is "$rc" 1 "a failing test fails the run"
is "$(summary "$out" failed) $(summary "$out" successful)" "2 13" \
	"FreshTest, OptionsTest, PlainExtendWithTest, PerClassTest and FailTest.passes passed"
[ "$(summary "$out" failed)" = 2 ] || diag "$out$err"
like "$out" 'fails\(DataSource\) ✘ on purpose' "FailTest.fails failed"
like "$out" "cannotHaveIt\\(PgsnapDatabase\\) ✘ .*pgsnap service: no snapshot named 'no-such-snapshot'" \
	"a test asking for a snapshot that does not exist fails with the service's message"
is "$(grep '^fresh ' <<<"$out" | awk '{ print $2 }' | sort -u | wc -l)" 3 "three tests, three clones"
like "$err" 'removed the database of failed test FailTest\.fails\(\) \(PGSNAP_KEEP_FAILED=1 keeps it\)' \
	"without PGSNAP_KEEP_FAILED: the failed test's database removed, saying how to keep it"
no_clones "FreshTest, OptionsTest, FailTest"

# Parallel execution in one JVM, and two JVMs (workers) at once.
par=(--config junit.jupiter.execution.parallel.enabled=true
	--config junit.jupiter.execution.parallel.mode.default=concurrent
	--config junit.jupiter.execution.parallel.config.strategy=fixed
	--config junit.jupiter.execution.parallel.config.fixed.parallelism=6
	--select-class ParallelTest)
launch -Dorg.gradle.test.worker=1 -- "${par[@]}" >"$W/par1.out" 2>&1 &
p1=$!
launch -Dorg.gradle.test.worker=2 -- "${par[@]}" >"$W/par2.out" 2>&1 &
p2=$!
for i in 1 2; do
	wait "$([ $i = 1 ] && echo $p1 || echo $p2)"
	r=$?
	is "$r" 0 "parallel JVM $i: its tests pass (they met at a barrier: they ran at once)"
	is "$(summary "$(cat "$W/par$i.out")" successful)" 6 "parallel JVM $i: its 6 tests ran"
	[ "$r" = 0 ] || diag "$(cat "$W/par$i.out")"
done
is "$(cat "$W"/par?.out | grep '^parallel ' | awk '{ print $3 }' | sort -u | wc -l)" 12 \
	"12 parallel tests, 12 clones"
is "$(cat "$W"/par1.out | grep '^parallel ' | awk '{ print $2 }' | sort -u | wc -l)" 6 \
	"JVM 1 ran its tests on 6 threads"
no_clones "parallel runs"

# A failed test's database kept when asked, and where it is said.
run env PGSNAP_KEEP_FAILED=1 java "${JOPTS[@]}" -jar "$LAUNCHER" --disable-banner --disable-ansi-colors \
	--details=tree -cp "$CP" --select-class FailTest
is "$rc" 1 "PGSNAP_KEEP_FAILED=1: the run still fails"
like "$err" 'kept the database of failed test FailTest\.fails\(\)' "it says it kept the database (stderr)"
jdbc=$(sed -n 's/^ *JDBC URL: *//p' <<<"$err")
log=$(sed -n 's/^ *server log: *//p' <<<"$err")
url=$(sed -n "s/^ *psql '\\(.*\\)'\$/\\1/p" <<<"$err")
kept=$(sed -n 's/^ *remove it: *pgsnap rm //p' <<<"$err")
like "$jdbc" '^jdbc:postgresql://127\.0\.0\.1:[0-9]+/[a-z_0-9]+\?user=.*&password=' "with its JDBC URL"
ok "$([ -s "$log" ]; echo $?)" "and its server log's path ($log)"
ok "$(grep -qF "pgsnap.jdbc_url = \`$jdbc\`" <<<"$out"; echo $?)" \
	"the launcher shows the URL as the test's report entry"
like "$out" "Suppressed: .*KeptDatabase: pgsnap: kept the database" "and with the failure"
is "$("$PGSNAP" ls -q)" "$kept" "only the failed test's database is left, after its JVM ended"
is "$(q "$url" 'select x from evidence')" 42 "it holds what the test wrote"
unlike "$("$PGSNAP" ls --json)" '"owner"' "it has no owner any more (keep)"
run "$PGSNAP" gc
is "$rc" 0 "pgsnap gc"
is "$("$PGSNAP" ls -q)" "$kept" "the kept database outlives gc"
is "$(q "$url" 'select x from evidence')" 42 "and still answers after gc"
run "$PGSNAP" rm "$kept"
is "$rc$err" 0 "pgsnap rm, as printed, removes it"
no_clones "a kept database, once removed"


# A JVM killed in the middle of a test: gc (or the service) ends its
# database, keeping failed tests' databases or not (they are let go of
# their owner only once a test has failed).
# (java itself in the background, not a function: $! must be the JVM)
for keep in 0 1; do
	rm -f "$W/ready"
	PGSNAP_KEEP_FAILED=$keep java "${JOPTS[@]}" -Dready="$W/ready" -jar "$LAUNCHER" --disable-banner \
		-cp "$CP" --select-class KillTest >"$W/kill.out" 2>&1 &
	jvm=$!
	ok "$(wait_for 60 test -s "$W/ready"; echo $?)" "PGSNAP_KEEP_FAILED=$keep: the test holds a database"
	read -r held owner pid <"$W/ready"
	like "$("$PGSNAP" ls -q)" "^$held\$" "PGSNAP_KEEP_FAILED=$keep: ls shows it"
	is "$owner" "$pid" "PGSNAP_KEEP_FAILED=$keep: owned by the JVM"
	kill -9 "$jvm"
	wait "$jvm" 2>/dev/null
	run "$PGSNAP" gc
	is "$rc" 0 "PGSNAP_KEEP_FAILED=$keep: pgsnap gc after the JVM was killed"
	no_clones "PGSNAP_KEEP_FAILED=$keep: a killed JVM, after gc"
done

# The service killed mid-run (kill -9), twice: started again, transparently.
# (With a failing test and the configuration parameter that keeps it.)
run launch -- --config pgsnap.keepFailed=true --select-class RestartTest --select-class FailTest
is "$(summary "$out" failed) $(summary "$out" successful)" "1 4" \
	"RestartTest passes: the extension restarted the killed service (FailTest.fails fails)"
[ "$(summary "$out" successful)" = 4 ] || diag "$out$err"
is "$(grep -c '^killed service ' <<<"$out")" 2 "the service was killed twice"
like "$err" 'kept the database of failed test FailTest' "the configuration parameter pgsnap.keepFailed=true keeps it too"
kept=$(sed -n 's/^ *remove it: *pgsnap rm //p' <<<"$err")
is "$("$PGSNAP" ls -q)" "$kept" "only it is left"
run "$PGSNAP" rm "$kept"
is "$rc$err" 0 "and removed"
no_clones "the runs with a killed service"

# PGSNAP_SOCKET (pgsnap exec sets it) is used as is; PGSNAP_BIN is needed
# only without it.
run env PGSNAP_BIN="$TEST_TMP/no-such-pgsnap" "$PGSNAP" exec -- java "${JOPTS[@]}" -jar "$LAUNCHER" \
	--disable-banner --disable-ansi-colors -cp "$CP" --select-class PlainExtendWithTest
is "$rc" 0 "under pgsnap exec: PGSNAP_SOCKET is used (PGSNAP_BIN names nothing)"
[ "$rc" = 0 ] || diag "$out$err"
run env PGSNAP_BIN="$TEST_TMP/no-such-pgsnap" java "${JOPTS[@]}" -jar "$LAUNCHER" --disable-banner \
	--disable-ansi-colors -cp "$CP" --select-class PlainExtendWithTest
is "$rc" 1 "no PGSNAP_SOCKET and PGSNAP_BIN names nothing: the test fails"
like "$out" "cannot run '$TEST_TMP/no-such-pgsnap service start' \\(install pgsnap, put it on PATH or set PGSNAP_BIN\\)" \
	"saying what it could not run and what to do"

no_clones "the whole test"
done_testing
