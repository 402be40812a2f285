#!/usr/bin/env bash
# Memory and start-up of the daemon on a generated tree.
# Usage: bench/daemon.sh [FILES] [TOTAL_MB]   (default 30000 files, 500 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-30000}
total_mb=${2:-500}
dir=$(mktemp -d /tmp/integrityd-bench.XXXXXX)
state=$(mktemp -d /tmp/integrityd-state.XXXXXX)
bin=$(mktemp /tmp/integrityd-bench-bin.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir" "$dir.crt" "$state" "$bin" "$bin.log"' EXIT
go build -o "$bin" ./cmd/integrityd
bench/gentree.sh "$bin" "$dir" "$files" "$total_mb" >/dev/null
start=$(date +%s.%N)
"$bin" run --root "$dir" --trust "$dir.crt" --crl none --enforce yes --state-dir "$state" --log-format json 2>"$bin.log" &
pid=$!
until grep -qs '"initial scan done' "$bin.log"; do sleep 0.05; kill -0 "$pid"; done
ready=$(echo "$(date +%s.%N) - $start" | bc)
sleep 2 # let the scan's garbage be collected
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
t0=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 5; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
grep '"full scan done' "$bin.log" | head -1
printf 'files=%s ready_after=%.2fs rss_idle=%d MiB rss_peak=%d MiB cpu_ticks_idle_5s=%d\n' \
	"$(find "$dir" -type f | wc -l)" "$ready" $((rss / 1024)) $((hwm / 1024)) $((t1 - t0))
