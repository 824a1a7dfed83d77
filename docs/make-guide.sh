#!/bin/sh
# make-guide.sh [SOURCE] - write docs/guide.md from its source with every
# @@docs/examples/FILE@@ line replaced by that file in a fenced block, so
# the guide shows exactly the recipes test/450-guide.t runs.
#   sh docs/make-guide.sh > docs/guide.md   (from the top directory)
set -eu
src=${1:-docs/guide.src.md}
while IFS= read -r line; do
	case "$line" in
	@@*@@)
		f=${line#@@}; f=${f%@@}
		case "$f" in
		*.py) lang=python ;; *.go) lang=go ;; *.java) lang=java ;;
		*.rb) lang=ruby ;; *.t) lang=perl ;; *.js) lang=javascript ;;
		*.sh) lang=sh ;; *.yml) lang=yaml ;; *.c) lang=c ;; *) lang= ;;
		esac
		printf '`%s`:\n\n```%s\n' "$f" "$lang"
		cat "$f"
		printf '```\n'
		;;
	*) printf '%s\n' "$line" ;;
	esac
done < "$src"
