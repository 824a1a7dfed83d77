#!/usr/bin/env bash
# Real clients connect to a clone by the URL pgsnap prints: psql, Python
# (psycopg2), Ruby (ruby-pg, the seed's PG.connect(url) + SELECT now()),
# Perl (DBD::Pg), Java (JDBC over TCP), Node (pg from npm).  Each reads a
# value the test wrote through another client, so a connection to the
# wrong server cannot pass.
. "$(dirname "$0")/tap.sh"

PY=/usr/bin/python3
NODE_MODULES=$TOP/test/node/node_modules
JDBC_JAR=/usr/share/java/postgresql.jar
mkdir -p "$PGSNAP_HOME"

sock=$("$PGSNAP" new)
tcp=$("$PGSNAP" new -t)
jdbc=$("$PGSNAP" ls --json | $PY -c 'import json,sys; print([c["jdbc_url"] for c in json.load(sys.stdin) if c["jdbc_url"]][0])')
like "$sock" '^postgresql://postgres@%2F' "a socket URL"
like "$jdbc" '^jdbc:postgresql://127\.0\.0\.1:' "a TCP clone with a JDBC URL"
q "$sock" "create table mark(v text); insert into mark values ('sock-$$')"
q "$tcp" "create table mark(v text); insert into mark values ('tcp-$$')"

# psql
is "$(q "$sock" 'select v from mark')" "sock-$$" "psql: socket URL"
is "$(q "$tcp" 'select v from mark')" "tcp-$$" "psql: TCP URL with password"

# Python, psycopg2
if $PY -c 'import psycopg2' 2>/dev/null; then
	for u in "$sock" "$tcp"; do
		got=$($PY -c 'import psycopg2, sys
with psycopg2.connect(sys.argv[1]) as conn, conn.cursor() as cur:
    cur.execute("select v from mark")
    print(cur.fetchone()[0])' "$u" 2>&1)
		is "$got" "$(q "$u" 'select v from mark')" "python3-psycopg2: ${u%%@*}@..."
	done
else
	skip "python3-psycopg2 is not installed (scripts/deps.sh test installs it)"
fi

# Ruby, ruby-pg: the seed's own example.
if ruby -e 'require "pg"' 2>/dev/null; then
	for u in "$sock" "$tcp"; do
		got=$(ruby -e 'require "pg"
url = ARGV[0]
conn = PG.connect(url)
result = conn.exec("SELECT now() AS number")
for row in result do
    puts row["number"].empty? ? "no time" : "a time"
end
puts conn.exec("select v from mark").getvalue(0, 0)' "$u" 2>&1)
		is "$got" $'a time\n'"$(q "$u" 'select v from mark')" "ruby-pg: PG.connect(url), SELECT now(): ${u%%@*}@..."
	done
else
	skip "ruby-pg is not installed (scripts/deps.sh test installs it)"
fi

# Perl, DBD::Pg: the URL is the DSN when DBI gets no user name.
if perl -MDBD::Pg -e 1 2>/dev/null; then
	for u in "$sock" "$tcp"; do
		got=$(perl -MDBI -e 'my $dbh = DBI->connect("dbi:Pg:$ARGV[0]", undef, undef, { RaiseError => 1 });
print $dbh->selectrow_array("select v from mark"), "\n";' "$u" 2>&1)
		is "$got" "$(q "$u" 'select v from mark')" "perl DBD::Pg: dbi:Pg:URL, ${u%%@*}@..."
	done
else
	skip "libdbd-pg-perl is not installed (scripts/deps.sh test installs it)"
fi

# Java, JDBC over TCP.
if [ "${PGSNAP_SANITIZED:-0}" = 1 ]; then
	skip "Java: the JVM exercises no C code of pgsnap (run in the normal pass)"
elif ! command -v javac >/dev/null || [ ! -r $JDBC_JAR ]; then
	skip "javac or $JDBC_JAR missing (scripts/deps.sh test installs default-jdk-headless, libpostgresql-jdbc-java)"
else
	mkdir -p "$TEST_TMP/java"
	cat > "$TEST_TMP/java/Mark.java" <<'JAVA'
import java.sql.*;
public class Mark {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0]);
             ResultSet r = c.createStatement().executeQuery("select v, now() from mark")) {
            r.next();
            System.out.println(r.getString(1));
        }
    }
}
JAVA
	run javac -d "$TEST_TMP/java" "$TEST_TMP/java/Mark.java"
	is "$rc$err" 0 "javac compiles a JDBC client"
	run java -cp "$TEST_TMP/java:$JDBC_JAR" Mark "$jdbc"
	is "$out" "tcp-$$" "Java JDBC: the --jdbc URL (TCP, password) reaches the clone"
	[ "$rc" = 0 ] || diag "$err"
fi

# Node, pg from npm (make installs it into test/node).
if [ "${PGSNAP_SANITIZED:-0}" = 1 ]; then
	skip "Node: exercises no C code of pgsnap (run in the normal pass)"
elif ! command -v node >/dev/null || [ ! -d "$NODE_MODULES/pg" ]; then
	skip "node or $NODE_MODULES/pg missing (make check installs it: npm install --prefix test/node)"
else
	for u in "$sock" "$tcp"; do
		got=$(NODE_PATH=$NODE_MODULES node -e '
const { Client } = require("pg");
(async () => {
  const c = new Client({ connectionString: process.argv[1] });
  await c.connect();
  const r = await c.query("select v, now() as t from mark");
  console.log(r.rows[0].v);
  await c.end();
})().catch((e) => { console.error(e.message); process.exit(1); });' "$u" 2>&1)
		is "$got" "$(q "$u" 'select v from mark')" "node pg: connectionString, ${u%%@*}@..."
	done
fi

done_testing
