#!/usr/bin/env bash
# One-shot check-core side by side (issue 21): for each tree made by
# bench/gentree.sh (DIR with DIR.crt beside it), ROUNDS interleaved rounds
# (default 3) of each integrityd binary given, of bench/puresha512 (Go's
# SHA-512 over the same files, nothing else) and of sha512sum -P<CPUs>, on
# a warm cache; prints CPU-s (user+sys), max RSS and wall of each run, and
# the load average before and after.
# Usage: BINS="old=/path/a new=/path/b" bench/oneshot.sh DIR...
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
ncpu=$(nproc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/puresha512" ./bench/puresha512
run() { # NAME CMD...: one line
	local name=$1
	shift
	/usr/bin/time -o "$tmp/time" -f '%U %S %M %e %x' "$@" >/dev/null 2>"$tmp/err" || true
	awk -v n="$name" -v t="$tree" '{printf "%-40s %-12s CPU %6.2f s  RSS %7.1f MiB  wall %6.2f s  exit %s\n", t, n, $1 + $2, $3 / 1024, $4, $5}' "$tmp/time"
}
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $ncpu CPUs"
for tree in "$@"; do
	find "$tree" -type f -exec cat {} + >/dev/null
	for _ in $(seq "$rounds"); do
		for b in ${BINS:?set BINS}; do
			run "${b%%=*}" "${b#*=}" check-core --root "$tree" --trust "$tree.crt" --crl none --enforce yes
		done
		run puresha512 "$tmp/puresha512" "$tree"
		run sha512sum sh -c "cd '$tree' && find . -type f -print0 | xargs -0 -P$ncpu -n 500 sha512sum"
	done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
