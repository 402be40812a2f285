#!/usr/bin/env bash
# An update of Nextcloud by hand, replayed under the daemon between two
# real release trees (issue 19): the daemon runs on a copy of OLD, then
# NEW is put over it the way WAY says, and the script prints what the
# journal got during the update (warnings per scope and kind, folds,
# resolved entries), how long until the daemon was quiet, its CPU, and
# whether its findings at the end equal a one-shot check of the tree.
#
# Usage: bench/update.sh OLD NEW [WAY...]
#   WAY: rsync (rsync -a --delete, if rsync is installed), tar (tar -x
#   over the tree, then the files NEW lacks removed, as an admin does
#   after), cp (cp -a over it, then the same removal); WAY+expect: the
#   same after `integrityd expect-release NEW` (an announced update).
#   Default: every way available, unannounced and announced. OLD and NEW
#   are release trees (version.php at the top); their config/ and data/
#   are not touched.
# Example: bench/update.sh /srv/releases/33.0.1 /srv/releases/34.0.1
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,17p' "$0"; exit 2; }
old=$(realpath "$1") new=$(realpath "$2"); shift 2
ways=("$@")
if [ ${#ways[@]} -eq 0 ]; then
	ways=(tar cp)
	command -v rsync >/dev/null && ways=(rsync "${ways[@]}")
	ways+=("${ways[@]/%/+expect}")
fi
base=${BENCH_DIR:-/tmp}/integrityd-update.$$
mkdir -p "$base"
bin=$base/integrityd
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$base"; }
trap cleanup EXIT
go build -o "$bin" ./cmd/integrityd
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
ver() { sed -n "s/^\$OC_VersionString = '\(.*\)';/\1/p" "$1/version.php"; }

# removeExtra DIR REF: removes what REF lacks below DIR (config/, data/ kept).
removeExtra() {
	(cd "$1" && find . -mindepth 1 \( -path ./config -o -path ./data \) -prune -o -print) | sort -r | while read -r p; do
		[ -e "$2/$p" ] || [ -L "$2/$p" ] || rm -rf "$1/$p"
	done
}

echo "update $(ver "$old") -> $(ver "$new"): $(find "$new" -type f | wc -l) files; machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-12s | %-8s | %-9s | %-40s | %-7s | %-8s | %-8s | %-6s | %s\n' way "update s" "quiet s" "warnings for the update (max per scope; by kind)" folds resolved "CPU s" "left" "end = one-shot check"
for way in "${ways[@]}"; do
	root=$base/nc state=$base/state
	rm -rf "$root" "$state"; mkdir -p "$state"
	cp -a "$old" "$root"
	log=$base/$way.log
	"$bin" run --root "$root" --state-dir "$state" --log-format json 2>"$log" &
	pid=$!
	until grep -qs '"initial scan done' "$log"; do sleep 0.1; kill -0 "$pid"; done
	# The first scan's own alerts (files the mirrored trees lack) are
	# not the update's: counting starts once the log is still for 2 s.
	n0=-1
	while [ "$n0" != "$(wc -l <"$log")" ]; do n0=$(wc -l <"$log"); sleep 2; done
	from=$(wc -l <"$log") c0=$(ticks "$pid") t0=$(date +%s.%N)
	if [[ $way == *+expect ]]; then
		"$bin" expect-release --state-dir "$state" --for 1h "$new" >/dev/null
		until grep -qs 'a release expected by expect-release' "$log"; do sleep 0.1; kill -0 "$pid"; done
		from=$(wc -l <"$log")
	fi
	case ${way%+expect} in
	rsync) rsync -a --delete --exclude /config --exclude /data "$new/" "$root/" ;;
	tar) tar -C "$new" -cf - . | tar -C "$root" -xf -; removeExtra "$root" "$new" ;;
	cp) cp -a "$new/." "$root/"; removeExtra "$root" "$new" ;;
	esac
	t1=$(date +%s.%N) t2=
	# Quiet: no entry for 10 s (Settle 3 s, a fold at most 60 s).
	last=$(wc -l <"$log") still=0
	while [ $still -lt 100 ]; do
		sleep 0.1
		n=$(wc -l <"$log")
		if [ "$n" = "$last" ]; then still=$((still + 1)); else still=0 last=$n t2=$(date +%s.%N); fi
	done
	c1=$(ticks "$pid")
	entries=$(tail -n +"$((from + 1))" "$log")
	"$bin" report --state-dir "$state" --output detail-json >"$base/daemon.detail" 2>/dev/null || true
	# Warnings about what is still wrong at the end (files the trees
	# lack: the mirrors they came from drop files of 4 MiB and more) are
	# not the update's: left out.
	jq -r '.scopes[].findings[] | "\(.scope)\t\(.path // "")"' "$base/daemon.detail" | sort -u >"$base/left"
	warn=$(jq -rc 'select(.level == "warn" or .level == "error") | [.integrity_scope // "-", .integrity_path // "", .integrity_kind // .message_id // "-"] | @tsv' <<<"$entries" 2>/dev/null |
		awk -F'\t' 'NR == FNR {left[$1 "\t" $2] = 1; next} !(($1 "\t" $2) in left) {print $1 "\t" $3}' "$base/left" - || true)
	nwarn=$(grep -c . <<<"$warn" || true)
	perscope=$(cut -f1 <<<"$warn" | sort | uniq -c | sort -rn | awk 'NR == 1 {print $1 " " $2}')
	bykind=$(cut -f2 <<<"$warn" | sort | uniq -c | sort -rn | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}')
	folds=$(jq -c 'select(.message_id == "e09bb9dafb9843a17df8c08abc6a10e8")' <<<"$entries" 2>/dev/null | grep -c . || true)
	resolved=$(jq -r 'select(.message_id == "f12abb9c394b43fcb30bb54a5894946d") | .message' <<<"$entries" 2>/dev/null | grep -c . || true)
	"$bin" report --state-dir "$state" --output json >"$base/daemon.json" 2>/dev/null || true
	"$bin" check --root "$root" --output json >"$base/check.json" 2>/dev/null || true
	same=no
	cmp -s <(jq -S . "$base/daemon.json") <(jq -S . "$base/check.json") && same=yes
	kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
	printf '%-12s | %8.1f | %9.1f | %-40s | %7s | %8s | %8.2f | %6s | %s\n' "$way" "$(echo "$t1 - $t0" | bc)" "$(echo "${t2:-$t1} - $t0" | bc)" \
		"$nwarn (max ${perscope:-0 -}; ${bykind:-none})" "$folds" "$resolved" "$(echo "($c1 - $c0) / $hz" | bc -l)" "$(grep -c . "$base/left" || true)" "$same"
	if [ -n "${KEEP:-}" ]; then cp "$log" "$KEEP.$way.log"; fi
done
