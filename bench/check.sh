#!/usr/bin/env bash
# Full-check throughput of integrityd next to sha512sum run in parallel on
# the same files. Usage: bench/check.sh [FILES] [TOTAL_MB] [DIR]
# Default: 30000 files, ~500 MB, in a temporary directory (removed after).
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-30000}
total_mb=${2:-500}
dir=${3:-$(mktemp -d /tmp/integrityd-bench.XXXXXX)}
bin=$(mktemp /tmp/integrityd-bench-bin.XXXXXX)
trap 'rm -rf "$bin"; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
go build -o "$bin" ./cmd/integrityd
ncpu=$(nproc)

bench/gentree.sh "$bin" "$dir" "$files" "$total_mb"
crt="$dir.crt"
trap 'rm -rf "$bin" "$crt"; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
nfiles=$(find "$dir" -type f | wc -l)
bytes=$(find "$dir" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')

best() { # best wall time of 3 runs, warm cache
	local b=999999
	for _ in 1 2 3; do
		local s e t
		s=$(date +%s.%N)
		"$@" >/dev/null || [ $? -eq 1 ]
		e=$(date +%s.%N)
		t=$(echo "$e - $s" | bc)
		b=$(echo "if ($t < $b) $t else $b" | bc)
	done
	echo "$b"
}
cat "$dir"/lib/*/*/* >/dev/null  # warm the page cache for both
t_int=$(best "$bin" check-core --root "$dir" --trust "$crt" --crl none --enforce yes)
t_sha=$(best sh -c "cd '$dir' && find . -type f -print0 | xargs -0 -P$ncpu -n 500 sha512sum")
cold_int=- cold_sha=-
if [ -w /proc/sys/vm/drop_caches ]; then # cold cache: one run each
	cold() { sync; echo 3 >/proc/sys/vm/drop_caches; local s; s=$(date +%s.%N); "$@" >/dev/null || [ $? -eq 1 ]; printf "%.2f" "$(echo "$(date +%s.%N) - $s" | bc)"; }
	cold_int=$(cold "$bin" check-core --root "$dir" --trust "$crt" --crl none --enforce yes)
	cold_sha=$(cold sh -c "cd '$dir' && find . -type f -print0 | xargs -0 -P$ncpu -n 500 sha512sum")
	cat "$dir"/lib/*/*/* >/dev/null
fi
mb=$(echo "scale=1; $bytes / 1048576" | bc)
printf '%-34s %8s %10s %10s %12s\n' "" "seconds" "files/s" "MB/s" "cold seconds"
printf '%-34s %8.2f %10.0f %10.1f %12s\n' "integrityd check-core" "$t_int" "$(echo "$nfiles / $t_int" | bc -l)" "$(echo "$mb / $t_int" | bc -l)" "$cold_int"
printf '%-34s %8.2f %10.0f %10.1f %12s\n' "find | xargs -0 -P$ncpu sha512sum" "$t_sha" "$(echo "$nfiles / $t_sha" | bc -l)" "$(echo "$mb / $t_sha" | bc -l)" "$cold_sha"
printf 'ratio integrityd/sha512sum time: %.2f  (%d files, %s MB, %d CPUs, warm cache)\n' "$(echo "$t_int / $t_sha" | bc -l)" "$nfiles" "$mb" "$ncpu"
