#!/usr/bin/env bash
# Output forms of new (--json, --env, --jdbc) and ls --json, in a store
# whose path has spaces, quotes, a backslash and non-ASCII in it.
. "$(dirname "$0")/tap.sh"

PY=/usr/bin/python3
[ -x $PY ] || skip_all "no /usr/bin/python3 to check the JSON with"
export PGSNAP_HOME=$TEST_TMP/$'o d é "q\' b\\'
mkdir -p "$PGSNAP_HOME"

# A JSON document's field: jf JSON PYTHON-EXPRESSION-ON-d
jf() { $PY -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

run "$PGSNAP" new --json
is "$rc" 0 "new --json exits 0"
is "$(printf '%s\n' "$out" | wc -l)" 1 "one line"
j=$out
is "$(jf "$j" 'sorted(d)')" "['conninfo', 'created_ms', 'data_dir', 'database', 'host', 'id', 'jdbc_url', 'log', 'method', 'pid', 'port', 'snapshot', 'socket_dir', 'state', 'timeout', 'url', 'user']" \
	"it is JSON with the documented fields (no password on a socket)"
url=$(jf "$j" 'd["url"]')
is "$(q "$url" 'select 1')" 1 "its url connects"
is "$(q "$(jf "$j" 'd["conninfo"]')" 'select 2')" 2 "its conninfo (key=value) connects, odd path and all"
is "$(jf "$j" 'd["socket_dir"]')" "$(url_sockdir "$url")" "socket_dir is the decoded socket directory of the URL"
is "$(jf "$j" 'd["host"] == d["socket_dir"]')" True "a socket clone's host is its socket directory (as PGHOST takes it)"
sd=$(jf "$j" 'd["socket_dir"]')
is "${sd%/run/clones/*}" "$PGSNAP_HOME" "the odd PGSNAP_HOME came through the escaper intact"
is "$(jf "$j" 'd["data_dir"]')" "$PGSNAP_HOME/run/clones/$(jf "$j" 'd["id"]')/data" "data_dir"
is "$(jf "$j" 'd["pid"]')" "$(clone_pid "$url")" "pid is the postmaster's (as ls says)"
is "$(jf "$j" 'd["jdbc_url"]')" None "no JDBC URL without TCP"
is "$(q "$url" 'select current_user || current_database()')" \
	"$(jf "$j" 'd["user"] + d["database"]')" "user and database"

run "$PGSNAP" new -t --json
jt=$out
like "$(jf "$jt" 'd["jdbc_url"]')" '^jdbc:postgresql://127\.0\.0\.1:[0-9]+/postgres\?user=postgres&password=[0-9a-f]+$' "-t --json: jdbc_url"
is "$(jf "$jt" 'd["host"]')" 127.0.0.1 "-t --json: host is 127.0.0.1"
isnt "$(jf "$jt" 'd.get("password", "")')" "" "-t --json: the password is there"
is "$(PGPASSWORD=$(jf "$jt" 'd["password"]') psql -X -qAt -w -h "$(jf "$jt" 'd["host"]')" \
	-p "$(jf "$jt" 'd["port"]')" -U "$(jf "$jt" 'd["user"]')" -d "$(jf "$jt" 'd["database"]')" \
	-c 'select inet_server_addr()')" 127.0.0.1 "-t --json: the separate fields connect over TCP"

run "$PGSNAP" new --jdbc
is "$rc" 0 "new --jdbc exits 0"
like "$out" '^jdbc:postgresql://127\.0\.0\.1:[0-9]+/postgres\?user=postgres&password=[0-9a-f]+$' "--jdbc prints a JDBC URL (TCP implied)"
jdbc=$out

# ls --json: an array of the same objects.
run "$PGSNAP" ls --json
is "$rc" 0 "ls --json exits 0"
is "$(jf "$out" 'len(d)')" 3 "an array of the 3 clones"
is "$(jf "$out" '[sorted(x) for x in d if not x.get("password")][0]')" "$(jf "$j" 'sorted(d)')" \
	"the same fields as new --json"
is "$($PY -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print([x for x in a if x["id"]==b["id"]]==[b])' "$out" "$jt")" True \
	"ls --json shows the same values as new -t --json did"
is "$(jf "$out" 'sum(1 for x in d if x["jdbc_url"])')" 2 "two of them have a JDBC URL"
run "$PGSNAP" rm "$jdbc"
is "$rc" 0 "rm accepts the JDBC URL"

# --env: eval'ed by sh and bash, quoted or not.
run "$PGSNAP" new --env
is "$rc" 0 "new --env exits 0"
envout=$out
like "$envout" "^export DATABASE_URL='postgresql://" "export lines, single-quoted"
for sh in sh bash; do
	got=$(env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u DATABASE_URL "$sh" -c \
		'eval "$1" && psql -X -qAt -c "select 40 + 2" && psql -X -qAt -d "$DATABASE_URL" -c "select 7"' \
		sh "$envout" 2>&1)
	is "$got" $'42\n7' "$sh: eval \"\$(pgsnap new --env)\" sets PGHOST etc. and DATABASE_URL"
	got=$("$sh" -c 'eval "$1"; printf %s "$PGHOST"' sh "$envout")
	is "${got%/run/clones/*/sock}" "$PGSNAP_HOME" "$sh: PGHOST keeps the spaces and quotes of the path"
done
run "$PGSNAP" new -t --env
like "$out" "export PGPASSWORD='[0-9a-f]+';" "-t --env exports PGPASSWORD"
like "$out" "export JDBC_DATABASE_URL='jdbc:postgresql:" "and JDBC_DATABASE_URL"
got=$(bash -c 'eval "$1"; psql -X -qAt -c "select inet_server_addr()"' sh "$out")
is "$got" 127.0.0.1 "-t --env: the exported variables reach the server over TCP"

run "$PGSNAP" new -n 2 --env
is "$rc" 2 "--env with -n 2 is a usage error (the exports would overwrite each other)"
run "$PGSNAP" new -n 2 --json
is "$($PY -c 'import json,sys; print(len({json.loads(l)["id"] for l in sys.stdin}))' <<<"$out")" 2 \
	"-n 2 --json: one JSON object per line, two clones"

# JSON of a path that is not UTF-8 stays valid JSON.
export PGSNAP_HOME=$TEST_TMP/$'bad\xff\x01'
mkdir -p "$PGSNAP_HOME"
run "$PGSNAP" new --json
is "$rc" 0 "new --json in a store whose path is not UTF-8"
like "$(jf "$out" 'd["socket_dir"]')" $'bad\ufffd\x01/run' "still valid JSON: an invalid byte becomes U+FFFD, a control char \\u0001"
like "$out" 'bad\\ufffd\\u0001/run' "escaped as \\ufffd and \\u0001"

done_testing
