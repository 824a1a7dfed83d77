# bench-clone-verdicts.awk - the ratios of one bench-clone.sh run, from its
# table (section, fs/snapshot, what, "n median p90 min max mean ..."):
# io_uring against the best plain copy, the automatic choice against the
# fastest variant and `cp -a --reflink=never`, the managed XFS store.
{
	split($4, col, " ")
	if ($4 !~ /^n\/a/ && col[1] > 0) med[$1 "|" $2 "|" $3] = col[2]
	if ($1 == "user" || $1 == "alone") where[$1 "|" $2] = 1
}
function m(sec, fs, what) { return med[sec "|" fs "|" what] }
function best(sec, fs, list,    n, i, v, b, w) {
	n = split(list, w, " ")
	bname = ""
	for (i = 1; i <= n; i++) {
		v = m(sec, fs, w[i])
		if (v != "" && (bname == "" || v + 0 < b + 0)) { b = v; bname = w[i] }
	}
	return b
}
function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2fx", a / b) : "-" }
END {
	print ""
	for (k in where) {
		split(k, p, "|"); sec = p[1]; fs = p[2]
		u = best(sec, fs, "copy:uring copy:uringfix copy:uringat"); un = bname
		c = best(sec, fs, "copy:write2 copy:cfr2"); cn = bname
		if (u != "" && c != "")
			printf "io_uring %-5s %-18s best io_uring (%s) %8.2f ms, best plain (%s) %8.2f ms: %s\n",
				sec, fs, un, u, cn, c, ratio(u, c)
	}
	for (k in where) {
		split(k, p, "|"); sec = p[1]; fs = p[2]
		if (sec != "user" || fs ~ /b2b|pool/) continue
		a = m(sec, fs, "auto")
		if (a == "") continue
		fa = best(sec, fs, "auto overlay reflink copy copy:write2 copy:cfr2 copy:uring copy:uringfix copy:uringat copy:write2/write")
		fn = bname
		n = m(sec, fs, "cp-a-never")
		printf "auto     user  %-18s %8.2f ms: /fastest (%s %.2f) %s (target <= 1.1x), /cp -a --reflink=never %s (target <= 1.0x)\n",
			fs, a, fn, fa, ratio(a, fa), ratio(a, n)
		cp = m(sec, fs, "copy")
		fc = best(sec, fs, "copy copy:write2 copy:cfr2 copy:uring copy:uringfix copy:uringat copy:write2/write")
		if (cp != "")
			printf "copy     user  %-18s the plan %8.2f ms: /fastest copy variant (%s %.2f) %s, /cp -a --reflink=never %s\n",
				fs, cp, bname, fc, ratio(cp, fc), ratio(cp, n)
	}
	s = m("user", "ext4+xfsstore/big", "auto"); d = m("user", "ext4+xfsstore/default", "auto")
	e = m("user", "ext4/big", "auto")
	if (s != "")
		printf "xfs store ext4 disk: 1 GB snapshot first query %.2f ms = %s the default snapshot's (target <= 1.5x); without the store %.2f ms (%s)\n",
			s, ratio(s, d), e, ratio(s, e)
}
