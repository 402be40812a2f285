#!/usr/bin/env bash
# Growth with the tree's size (issue 21): for each size, a generated signed
# tree (bench/gentree.sh, ~1 KB a file on average), then
#   one-shot check-core: CPU-s, CPU-µs per file, wall, max RSS;
#   sha512sum -P<CPUs> over the same files: CPU-s;
#   bench/puresha512 (Go's SHA-512 over the same files, in one process,
#   nothing else): CPU-s, the floor a hash of the same bytes costs, and
#   check-core's CPU over it;
#   the daemon: ready time, RSS at ready, RSS and CPU after IDLE seconds
#   idle (default 600), the state directory's size.
# Usage: bench/growth.sh [FILES...]      (default 30000 100000 300000)
#        IDLE=60 bench/growth.sh 1000000
# Trees are made under $BENCH_DIR (default /srv/integrityd-growth, not a
# tmpfs) and removed after each size. Prints one table row per size and
# the machine's load average at the start and end, so that a busy machine
# is seen in the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(30000 100000 300000)
idle=${IDLE:-600}
base=${BENCH_DIR:-/srv/integrityd-growth}
ncpu=$(nproc)
mkdir -p "$base"
bin=$base/integrityd
go build -o "$bin" ./cmd/integrityd
go build -o "$base/puresha512" ./bench/puresha512
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$base"; }
trap cleanup EXIT

# cpu CMD...: runs CMD, prints "USER+SYS_seconds MAX_RSS_KiB WALL_seconds".
cpu() {
	/usr/bin/time -o "$base/time" -f '%U %S %M %e' "$@" >/dev/null 2>&1 || true
	awk '{printf "%.2f %d %.2f\n", $1 + $2, $3, $4}' "$base/time"
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

echo "machine: $ncpu CPUs, $(awk '{print $1 / 1024 / 1024}' <(grep MemTotal /proc/meminfo | awk '{print $2}')) GiB; load average at start: $(cut -d' ' -f1-3 /proc/loadavg); idle period ${idle}s"
printf '%-8s | %-30s | %-10s | %-17s | %-48s | %s\n' files "check-core: CPU-s µs/file wall RSS" "sha512sum" "pure Go SHA-512" "daemon: ready RSS@ready RSS@idle CPU%@idle" "state KiB"
for n in "${sizes[@]}"; do
	dir=$base/t$n
	mb=$((n / 1000))
	bench/gentree.sh "$bin" "$dir" "$n" "$mb" >/dev/null
	nfiles=$(find "$dir" -type f | wc -l)
	find "$dir" -type f -exec cat {} + >/dev/null # warm cache, for both
	read -r c_cpu c_rss c_wall < <(cpu "$bin" check-core --root "$dir" --trust "$dir.crt" --crl none --enforce yes)
	read -r s_cpu _ _ < <(cpu sh -c "cd '$dir' && find . -type f -print0 | xargs -0 -P$ncpu -n 500 sha512sum")
	read -r p_cpu _ _ < <(cpu "$base/puresha512" "$dir")
	state=$base/state$n
	mkdir -p "$state"
	start=$(date +%s.%N)
	"$bin" run --root "$dir" --trust "$dir.crt" --crl none --enforce yes --state-dir "$state" --log-format json 2>"$base/log$n" &
	pid=$!
	until grep -qs '"initial scan done' "$base/log$n"; do sleep 0.05; kill -0 "$pid"; done
	ready=$(echo "$(date +%s.%N) - $start" | bc)
	sleep 2
	rss0=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
	t0=$(ticks $pid)
	sleep "$idle"
	t1=$(ticks $pid)
	rss1=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
	kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
	st=$(du -sk "$state" | cut -f1)
	printf '%-8s | %6.2f %6.1f %6.2fs %5d MiB | %6.2f CPU-s | %6.2f CPU-s %4.2fx | %6.2fs %5d MiB %5d MiB %5.2f%% | %d\n' \
		"$nfiles" "$c_cpu" "$(echo "$c_cpu * 1000000 / $nfiles" | bc -l)" "$c_wall" $((c_rss / 1024)) \
		"$s_cpu" "$p_cpu" "$(echo "$c_cpu / $p_cpu" | bc -l)" "$ready" $((rss0 / 1024)) $((rss1 / 1024)) "$(echo "($t1 - $t0) * 100 / $hz / $idle" | bc -l)" "$st"
	rm -rf "$dir" "$dir.crt" "$state"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
