#!/bin/sh
# snapshot-cache.sh - one snapshot build for every shard of a CI run, carried
# between machines by the CI system's own cache (GitHub's actions/cache,
# GitLab's cache:, a Bazel genrule's output).
#
#   snapshot-cache.sh key RECIPE       print the snapshot's key (for the CI
#                                      cache's key)
#   snapshot-cache.sh get RECIPE DIR   make the snapshot ready in this store:
#       import DIR/NAME.tar when it was made with this key, else build the
#       snapshot and export it there for the shards and runs after this
#       one.  DIR need not exist (the cache had nothing).  The archive is
#       not compressed: the CI cache compresses what it stores, and an
#       import reading a plain tar is faster.
#
# NAME is the recipe's file name without .recipe.  The key covers every
# input the recipe names, the PostgreSQL version and the machine, and no
# path: every checkout of one commit computes the same key, and a changed
# schema file another one.
set -eu
usage() { echo "usage: snapshot-cache.sh key RECIPE | get RECIPE DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
recipe=$2
name=$(basename "$recipe" .recipe)
key=$(pgsnap snapshot key "$name" --recipe "$recipe")
case $1 in
key)
	[ $# -eq 2 ] || usage
	echo "$key"
	;;
get)
	[ $# -eq 3 ] || usage
	archive=$3/$name.tar
	# Shards that share DIR (one machine, a network disk) wait for the
	# first one's build, then import it.
	mkdir -p "$3"
	exec 9>"$3/.$name.lock"
	flock 9
	# The key the archive holds, in meta, its first member.
	have=$(tar -xOf "$archive" --occurrence=1 meta 2>/dev/null | sed -n 's/^key=//p')
	if [ "$have" = "$key" ] && pgsnap snapshot import --force "$archive" "$name" >/dev/null; then
		echo "snapshot-cache: $name imported from $archive (key $(echo "$key" | cut -c1-12))" >&2
		exit 0
	fi
	# A damaged archive must not fail every run that finds it in the
	# cache: pgsnap said why it refused it, and this shard builds.
	pgsnap snapshot build -q "$name" --recipe "$recipe" >/dev/null
	pgsnap snapshot export "$name" "$archive"
	echo "snapshot-cache: $name built and exported to $archive (key $(echo "$key" | cut -c1-12))" >&2
	;;
*)
	usage
	;;
esac
