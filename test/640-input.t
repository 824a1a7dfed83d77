#!/usr/bin/env bash
# Hostile input: names with paths in them, numbers that are not numbers,
# unbalanced server options, a damaged registry.  Each is refused with one
# line, and nothing is made or removed outside the store.
. "$(dirname "$0")/tap.sh"

one_line() {
	is "$(printf '%s\n' "$err" | wc -l)" 1 "$1: one line"
	unlike "$err" 'Sanitizer|runtime error' "$1: no sanitizer report"
}

# --- names --------------------------------------------------------------
long=$(printf 'n%.0s' {1..64})
for name in ../etc ../../tmp/x a/b /abs .hidden .. . -dash "$long" '' 'sp ace' $'new\nline' 'x;rm -rf'; do
	run "$PGSNAP" new -s "$name"
	shown=$(printf '%q' "$name")
	is "$rc" 1 "snapshot name $shown is refused (exit 1)"
	like "$err" 'invalid' "snapshot name $shown: said to be invalid"
	one_line "snapshot name $shown"
done
for name in ../x a/b .h; do
	for sub in "build $name -c a=1" "rm $name" "build ok1 --from $name" "key $name" "export $name $TEST_TMP/x.tar"; do
		run "$PGSNAP" snapshot $sub
		is "$rc" 1 "snapshot $sub is refused (exit 1)"
		one_line "snapshot $sub"
	done
done
is "$(ls -A "$PGSNAP_HOME/snapshots" 2>/dev/null | grep -v '^\.' | wc -l)" 0 "no snapshot directory was made"
ok "$([ ! -e "$TEST_TMP/etc" ] && [ ! -e "$TEST_TMP/x" ]; echo $?)" "nothing was made outside the store"

run "$PGSNAP" new $'--evil\noption'
is "$rc" 2 "an unknown option with a newline: exit 2"
one_line "an unknown option with a newline"

# --- numbers: strict, whole, in range ----------------------------------
for w in 10x 0x10 1e3 ' 5' '5 ' '' -1 +-1 99999999999999999999 3.5 '１０'; do
	run "$PGSNAP" new -w "$w"
	is "$rc" 2 "-w $(printf '%q' "$w") is refused (exit 2)"
	like "$err" "^pgsnap new: -w '" "-w $(printf '%q' "$w"): the option and value are named"
done
for opt in "new -n" "new --count" "new --pool" "exec -w" "exec --pool"; do
	for v in 10x 1e3 '' -1; do
		run "$PGSNAP" $opt "$v" -- true
		is "$rc" 2 "$opt $(printf '%q' "$v") is refused (exit 2)"
		one_line "$opt $(printf '%q' "$v")"
	done
done
for o in abc 0 -5 12abc 99999999999; do
	run "$PGSNAP" new --owner "$o"
	is "$rc" 2 "--owner $o is refused (exit 2)"
done

# --- server options ------------------------------------------------------
run "$PGSNAP" new -o "-c 'unbalanced"
is "$rc" 1 "-o with an unbalanced quote fails"
like "$err" 'unbalanced' "saying so"
one_line "-o unbalanced"
run "$PGSNAP" new -o "$(printf -- '-c a=1 %.0s' {1..30})"
is "$rc" 1 "-o with too many words fails"
one_line "-o too many words"
is "$(ls -A "$PGSNAP_HOME/run/clones" | wc -l)" 0 "the refused clones left no directory"
is "$(records | wc -l)" 0 "nor a registry record"
is "$(servers_under "$PGSNAP_HOME")" 0 "nor a server"

# --- hostile snapshot archives --------------------------------------------
# A symlink out of the archive and a file through it; a '..' member; an
# absolute one.  The target is writable by everyone, so only pgsnap (and
# tar as it runs it) stands in the way.
odir=$TEST_TMP/outside
mkdir -p "$odir" "$TEST_TMP/evil/data" && chmod 777 "$odir" && chmod 755 "$TEST_TMP"
(
	cd "$TEST_TMP/evil" && echo format=1 >meta && ln -s "$odir" data/l &&
	tar cf ../evil-link.tar meta data/l && mkdir -p d2/l && echo pwned >d2/l/pwned &&
	tar rf ../evil-link.tar --transform 's,^d2,data,' d2/l/pwned
)
/usr/bin/python3 - "$TEST_TMP/evil-dotdot.tar" "$odir" <<'PY'
import io, sys, tarfile
t = tarfile.open(sys.argv[1], "w")
for name, data in [("meta", b"format=1\n"), ("data/../../../.." + sys.argv[2] + "/escape", b"x"),
                   (sys.argv[2] + "/abs", b"x")]:
    ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
t.close()
PY
for a in evil-link evil-dotdot; do
	run "$PGSNAP" snapshot import "$TEST_TMP/$a.tar" "imp-$a"
	is "$rc" 1 "snapshot import of $a.tar fails"
	one_line "import $a.tar"
	is "$(ls -A "$odir")" "" "import $a.tar wrote nothing outside the store"
	ok "$([ ! -e "$PGSNAP_HOME/snapshots/imp-$a" ]; echo $?)" "import $a.tar left no snapshot"
done
is "$(ls -A "$PGSNAP_HOME/snapshots" | grep -c '^\.build')" 0 "nor a half-made one"

# --- a damaged record -----------------------------------------------------
# A record is a file of its own: damage costs that clone only.
run "$PGSNAP" new -w 0
is "$rc" 0 "a clone whose record we damage"
u=$out
ida=$("$PGSNAP" ls | awk -v u="$u" '$NF == u { print $1 }')
run "$PGSNAP" new -w 0
ub=$out
idb=$("$PGSNAP" ls | awk -v u="$ub" '$NF == u { print $1 }')
rec=$PGSNAP_HOME/run/records/$ida
cp "$rec" "$TEST_TMP/record.good"
# No service: it would remove a damaged record within a round.
"$PGSNAP" service stop
damage() { # damage DESC: the record now holds something we never write
	run "$PGSNAP" ls
	is "$rc" 0 "$1: ls works"
	unlike "$out" "^$ida " "$1: it does not list the damaged clone"
	like "$out" "$idb" "$1: the others are listed"
	run "$PGSNAP" gc --dry-run
	like "$out" "would remove record $ida: it is damaged" "$1: gc names the damaged record"
	# (new's own bounded gc removes it, and records its server again)
	run "$PGSNAP" new -w 0
	is "$rc" 0 "$1: new works"
	[ "$rc" = 0 ] && "$PGSNAP" rm "$out" >/dev/null
	cp "$TEST_TMP/record.good" "$rec"
}
tail -n +2 "$TEST_TMP/record.good" | sed 's/\tport=/\tport=1\tport=/' | { echo 'pgsnap-registry 1'; cat; } >"$rec"
damage "a key given twice"
printf 'id=abcd\0ef\n' >>"$rec"
damage "a NUL byte"
head -c -1 "$TEST_TMP/record.good" >"$rec"
damage "a torn last line"
printf 'pgsnap-registry 1\nid=../../x\tdir=/tmp\n' >"$rec"
damage "an id with a path"
printf 'garbage\n' >"$rec"
damage "not a record"
# gc removes it, and the server still running there is recorded again.
printf 'garbage\n' >"$rec"
run "$PGSNAP" gc
like "$out" "removed record $ida: it is damaged" "gc removes the damaged record"
like "$out" "recovered clone $ida" "and records its running server again"
is "$(q "$u" 'select 1')" 1 "which still answers at its URL"
is "$(q "$ub" 'select 1')" 1 "the other clone was never touched"

# A well-formed record pointing outside the store: rm must not follow it.
mkdir -p "$TEST_TMP/victim" && echo precious >"$TEST_TMP/victim/file"
printf 'pgsnap-registry 1\nid=deadbeef\tstate=ready\tdir=%s\tdatadir=%s/data\tsockdir=%s\tpid=1\n' \
	"$TEST_TMP/victim" "$TEST_TMP/victim" "$TEST_TMP/victim" >"$PGSNAP_HOME/run/records/deadbeef"
run "$PGSNAP" rm deadbeef
is "$rc" 1 "rm of a record pointing outside the store fails"
like "$err" 'outside the store' "saying why"
is "$(cat "$TEST_TMP/victim/file" 2>/dev/null)" precious "and the directory it named is untouched"
alive 1; is "$?" 0 "pid 1 of the record was not signalled"
# gc, and the service: the record goes, never the directory it names (its
# pid is dead: a victim by every other rule).
rec=$PGSNAP_HOME/run/records/deadbeef
[ ! -e "$rec" ] || sed -i 's/pid=1$/pid=999999/' "$rec"
run "$PGSNAP" gc --dry-run
ok "$([ -z "$out" ] || grep -q 'would remove clone deadbeef: its record names paths outside the store' <<<"$out"; echo $?)" \
	"gc would remove such a record (unless the service did already)"
"$PGSNAP" gc >/dev/null
ok "$([ ! -e "$PGSNAP_HOME/run/records/deadbeef" ]; echo $?)" "the record is gone"
is "$(cat "$TEST_TMP/victim/file" 2>/dev/null)" precious "and leaves the directory it named alone"
rm -f "$PGSNAP_HOME/run/records/deadbeef"
"$PGSNAP" rm "$ub" >/dev/null

run "$PGSNAP" rm "$u"
is "$rc" 0 "the real clone is removed normally"
is "$(servers_under "$PGSNAP_HOME")" 0 "no server left"

done_testing
