#!/usr/bin/env bash
# Load benchmark: a one-shot full check of a large tree next to parallel
# sha512sum, then the daemon on that tree under sustained modifications,
# with SIGHUPs, the systemd watchdog and a SIGTERM at the end.
#
# Usage: bench/load.sh [FILES] [DIRS] [TOTAL_MB] [SECONDS] [RATE]
# Default: 100000 files in 10000 directories, ~1000 MB; 60 s of load at
# 1000 writes/s. Environment: KEEP=1 keeps the temporary directory (tree,
# state, logs); HUP_EVERY=S sends SIGHUP every S seconds of the load
# (default 10, 0: never); HOT=N makes the writer modify only N files
# (default: any file), so that the findings stop growing; WATCHDOG_S=S sets
# WATCHDOG_USEC (default 10 s).
#
# What it does, in a temporary directory it removes afterwards:
#  1. generates a PHP-code-base-like tree (log-normal sizes) and signs it
#     as core with a throw-away CN=core certificate (as bench/gentree.sh);
#  2. one-shot: best of 3 warm-cache runs of `integrityd check-core` and of
#     `find | xargs -0 -P$(nproc) -n 500 sha512sum` on the same files;
#  3. starts `integrityd run` with NOTIFY_SOCKET (a listener here
#     timestamps every sd_notify datagram) and WATCHDOG_USEC set: time to
#     "initial scan done", VmRSS/VmHWM, inotify watches, idle CPU;
#  4. a writer appends one byte to random files for SECONDS at RATE/s;
#     meanwhile SIGHUP every HUP_EVERY s (time to the "requested" full scan),
#     RSS and CPU samples, every WATCHDOG=1 timestamped; afterwards: wait
#     until idle, compare the daemon's findings (integrityd status, state)
#     with the files really modified and with a one-shot check, SIGTERM
#     and the time to exit;
#  5. prints a summary table.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-100000}
dirs=${2:-10000}
total_mb=${3:-1000}
secs=${4:-60}
rate=${5:-1000}
ncpu=$(nproc)

avail_mb=$(df -Pm /tmp | awk 'NR == 2 {print $4}')
if [ "$avail_mb" -lt $((total_mb * 2 + 500)) ]; then
	echo "load.sh: not enough space in /tmp (${avail_mb} MB free, want $((total_mb * 2 + 500)) MB); pass a smaller TOTAL_MB" >&2
	exit 2
fi
work=$(mktemp -d /tmp/integrityd-load.XXXXXX)
trap '[ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"' EXIT
dir=$work/nc bin=$work/integrityd
go build -o "$bin" ./cmd/integrityd

# 1. The tree: FILES files spread over DIRS leaf directories
# (lib/aNNN/bNN, 100 per parent), log-normal sizes scaled to TOTAL_MB.
echo "generating $files files in $dirs directories, ~$total_mb MB in $dir" >&2
python3 - "$dir" "$files" "$dirs" "$total_mb" "$work/files.txt" <<'PY'
import os, random, sys
root, n, ndirs, total, listfile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) << 20, sys.argv[5]
random.seed(1)
sizes = [int(random.lognormvariate(8.5, 1.6)) + 1 for _ in range(n)]
scale = total / sum(sizes)
sizes = [max(1, int(s * scale)) for s in sizes]
block = os.urandom(1 << 20)
leaves = ["lib/a%03d/b%02d" % (j // 100, j % 100) for j in range(ndirs)]
for leaf in leaves:
    os.makedirs(os.path.join(root, leaf), exist_ok=True)
with open(listfile, "w") as lst:
    for i, s in enumerate(sizes):
        rel = "%s/f%06d.php" % (leaves[i % ndirs], i)
        lst.write(rel + "\n")
        with open(os.path.join(root, rel), "wb") as f:
            while s > 0:
                k = min(s, len(block))
                f.write(block[:k])
                s -= k
open(os.path.join(root, "version.php"), "w").write("<?php $OC_Channel = 'stable';\n")
PY
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/core.key" -out "$work/core.crt" -subj /CN=core -days 1 2>/dev/null
mkdir -p "$dir/core" "$dir/resources/codesigning"
cp "$work/core.crt" "$dir/resources/codesigning/root.crt" # as shipped: same as the pinned --trust
"$bin" sign-core --path "$dir" --privateKey "$work/core.key" --certificate "$work/core.crt" >/dev/null
rm -f "$work/core.key"
crt=$work/core.crt
sync # no writeback of the new tree during the measurements
nfiles=$(find "$dir" -type f | wc -l)
ndirs=$(find "$dir" -type d | wc -l)
bytes=$(find "$dir" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
echo "tree: $nfiles files, $ndirs directories, $(du -sh "$dir" | cut -f1)" >&2

# 2. One-shot full check, warm cache, best of 3, next to parallel sha512sum.
best() {
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
echo "one-shot checks (warm cache, best of 3)" >&2
find "$dir" -type f -print0 | xargs -0 cat >/dev/null
t_int=$(best "$bin" check-core --root "$dir" --trust "$crt" --crl none --enforce yes)
t_sha=$(best sh -c "cd '$dir' && find . -type f -print0 | xargs -0 -P$ncpu -n 500 sha512sum")
hwm_int=$(/usr/bin/time -f '%M' "$bin" check-core --root "$dir" --trust "$crt" --crl none --enforce yes 2>&1 >/dev/null | tail -1) || true

# 3-5. The daemon under load.
python3 - "$bin" "$dir" "$crt" "$work" "$secs" "$rate" "$nfiles" "$ndirs" "$bytes" "$t_int" "$t_sha" "$ncpu" "$hwm_int" "${HUP_EVERY:-10}" "${HOT:-0}" "${WATCHDOG_S:-10}" <<'PY'
import datetime, json, os, re, signal, socket, subprocess, sys, threading, time

(bin_, root, crt, work, secs, rate, nfiles, ndirs, nbytes, t_int, t_sha, ncpu, hwm_int, hup_every, hot, watchdog) = sys.argv[1:]
hup_every, hot = float(hup_every), int(hot)
secs, rate, nfiles, ndirs, nbytes, ncpu = int(secs), int(rate), int(nfiles), int(ndirs), int(nbytes), int(ncpu)
t_int, t_sha = float(t_int), float(t_sha)
hwm_int = int(hwm_int) if hwm_int.strip().isdigit() else 0
state = os.path.join(work, "state")
logpath = os.path.join(work, "daemon.log")
mb = nbytes / 1048576
HZ = os.sysconf("SC_CLK_TCK")
WATCHDOG = float(watchdog)

def say(*a):
    print(*a, file=sys.stderr, flush=True)

# sd_notify listener: every datagram with its arrival time.
sock_path = os.path.join(work, "notify.sock")
lsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
lsock.bind(sock_path)
notes = []  # (monotonic, message)
def listen():
    while True:
        try:
            data = lsock.recv(1 << 16)
        except OSError:
            return
        notes.append((time.monotonic(), data.decode(errors="replace")))
threading.Thread(target=listen, daemon=True).start()

def pings(since=0.0, until=float("inf")):
    return [t for t, m in notes if "WATCHDOG=1" in m.split("\n") and since <= t <= until]

def max_gap(ts):
    return max((b - a for a, b in zip(ts, ts[1:])), default=float("nan"))

# The daemon's JSON log, followed as it grows.
class Log:
    def __init__(self, path):
        self.f = open(path, "rb")
        self.buf = b""
        self.lines = []  # (monotonic arrival, wall time of the entry, entry)
    def poll(self):
        new = []
        chunk = self.f.read()
        if not chunk:
            return new
        self.buf += chunk
        *full, self.buf = self.buf.split(b"\n")
        now = time.monotonic()
        for l in full:
            if not l.strip():
                continue
            try:
                e = json.loads(l)
            except ValueError:
                e = {"msg": l.decode(errors="replace")}
            item = (now, logtime(e), e)
            self.lines.append(item)
            new.append(item)
        return new
    def find(self, pred):
        return [x for x in self.lines if pred(x[2])]

def logtime(e):
    t = e.get("time")
    if not t:
        return float("nan")
    t = t.replace("Z", "+00:00")
    t = re.sub(r"(\.\d{6})\d+", r"\1", t)
    return datetime.datetime.fromisoformat(t).timestamp()

def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith(key + ":"):
                return int(l.split()[1])
    return 0

def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime

def inotify_watches(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != "anon_inode:inotify":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                n += sum(1 for l in f if l.startswith("inotify wd:"))
        except OSError:
            pass
    return n

def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

WRITER = r'''
import os, random, sys, time, json
root, listfile, secs, rate, out, hot = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], int(sys.argv[6])
paths = open(listfile).read().split()
random.seed(2)
if hot:
    paths = random.sample(paths, hot)
first, n = {}, 0
t0 = time.monotonic()
end = t0 + secs
while True:
    now = time.monotonic()
    if now >= end:
        break
    target = int((now - t0) * rate) + 1
    while n < target:
        rel = random.choice(paths)
        with open(os.path.join(root, rel), "ab") as f:
            f.write(b"x")
        if rel not in first:
            first[rel] = time.time()
        n += 1
    time.sleep(0.005)
json.dump({"writes": n, "seconds": time.monotonic() - t0, "first": first}, open(out, "w"))
'''

p = writer = None
R = {}
try:
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC=str(int(WATCHDOG * 1e6)))
    env.pop("WATCHDOG_PID", None)
    logf = open(logpath, "wb")
    say("starting the daemon")
    w_start, m_start = time.time(), time.monotonic()
    p = subprocess.Popen([bin_, "run", "--root", root, "--trust", crt, "--crl", "none", "--enforce", "yes",
                          "--state-dir", state, "--log-format", "json"],
                         env=env, stdout=subprocess.DEVNULL, stderr=logf)
    log = Log(logpath)

    def wait_log(pred, timeout, after=0):
        """Waits for the first entry past index after that matches pred."""
        end = time.monotonic() + timeout
        while True:
            log.poll()
            for i in range(after, len(log.lines)):
                if pred(log.lines[i][2]):
                    return log.lines[i]
            if p.poll() is not None:
                raise SystemExit("daemon exited (status %s); see %s" % (p.returncode, logpath))
            if time.monotonic() > end:
                return None
            time.sleep(0.01)

    ready = wait_log(lambda e: e.get("msg", "").startswith("initial scan done"), 600)
    if ready is None:
        raise SystemExit("no 'initial scan done' after 600 s")
    R["ready"] = ready[1] - w_start
    first_scan = log.find(lambda e: e.get("msg") == "full scan done")[0][2]
    R["first_scan"] = float(first_scan.get("duration", "nan"))
    time.sleep(2)  # let the scan's garbage be collected
    pid = p.pid
    R["rss_ready"] = status_kb(pid, "VmRSS")
    R["hwm_ready"] = status_kb(pid, "VmHWM")
    R["watches"] = inotify_watches(pid)
    c0 = cpu_ticks(pid)
    time.sleep(5)
    R["idle_cpu_ticks"] = cpu_ticks(pid) - c0
    say("ready after %.2f s; %d MiB RSS; %d inotify watches" % (R["ready"], R["rss_ready"] >> 10, R["watches"]))

    # 4. Load.
    say("load: %d s of writes at %d/s%s, %s" % (secs, rate, " to %d files" % hot if hot else "",
        "SIGHUP every %g s" % hup_every if hup_every > 0 else "no SIGHUP"))
    wout = os.path.join(work, "writer.json")
    cpu_load0, m_load0, w_load0 = cpu_ticks(pid), time.monotonic(), time.time()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, root, os.path.join(work, "files.txt"), str(secs), str(rate), wout, str(hot)])
    hups = []  # dicts: sent (wall), handled, reloading, done, duration
    pending = None
    next_hup = m_load0 + hup_every if hup_every > 0 else float("inf")
    samples = []  # (t, rss kB, cpu ticks)
    next_sample = m_load0
    mark = len(log.lines)
    while writer.poll() is None or pending:
        now = time.monotonic()
        for (_, wt, e) in log.poll():
            if pending is None:
                continue
            if e.get("msg", "").startswith("SIGHUP") and "handled" not in pending:
                pending["handled"] = wt - pending["sent"]
            if e.get("msg") == "full scan done" and e.get("reason") == "requested":
                pending["done"] = wt - pending["sent"]
                pending["scan"] = float(e.get("duration", "nan"))
                hups.append(pending)
                pending = None
        if pending and now - pending["m"] > 120:
            pending["done"] = float("inf")
            hups.append(pending)
            pending = None
        if pending is None and writer.poll() is None and now >= next_hup:
            pending = {"sent": time.time(), "m": now}
            p.send_signal(signal.SIGHUP)
            while next_hup <= now:
                next_hup += hup_every
        if now >= next_sample:
            try:
                samples.append((now, status_kb(pid, "VmRSS"), cpu_ticks(pid)))
            except OSError:
                raise SystemExit("daemon exited during the load; see %s" % logpath)
            next_sample += 0.5
        if p.poll() is not None:
            raise SystemExit("daemon exited during the load (status %s); see %s" % (p.returncode, logpath))
        time.sleep(0.01)
    wr = json.load(open(wout))
    m_load1, w_load1 = m_load0 + wr["seconds"], w_load0 + wr["seconds"]
    cpu_load1 = cpu_ticks(pid)
    for h in hups:
        for t, msg in notes:
            if t >= h["m"] and msg.startswith("RELOADING=1") and "reloading" not in h:
                h["reloading"] = t - h["m"]
            if t >= h["m"] and "READY=1" in msg.split("\n") and "ready" not in h:
                h["ready"] = t - h["m"]

    # After the load: wait until nothing has been logged for 5 s.
    say("load done (%d writes in %.1f s); waiting until the daemon is idle" % (wr["writes"], wr["seconds"]))
    last = time.monotonic()
    deadline = last + 300
    while time.monotonic() < deadline:
        if log.poll():
            last = time.monotonic()
        if time.monotonic() - last >= 5 and time.monotonic() - m_load1 >= 5:
            break
        if p.poll() is not None:
            raise SystemExit("daemon exited after the load; see %s" % logpath)
        time.sleep(0.05)
    R["idle_wait"] = time.monotonic() - m_load1
    R["rss_after"] = status_kb(pid, "VmRSS")
    R["hwm_after"] = status_kb(pid, "VmHWM")
    R["watches_after"] = inotify_watches(pid)
    c0 = cpu_ticks(pid)
    time.sleep(3)
    R["idle_cpu_after"] = cpu_ticks(pid) - c0

    modified = set(wr["first"])
    alerts = [x for x in log.lines[mark:] if x[2].get("msg") == "integrity check failed"]
    resolved = [x for x in log.lines[mark:] if x[2].get("msg") == "integrity finding resolved"]
    alerted = {}
    for _, wt, e in alerts:
        alerted.setdefault(e.get("integrity_path"), wt)
    lat = [alerted[k] - wr["first"][k] for k in alerted if k in wr["first"]]
    st = json.loads(subprocess.run([bin_, "status", "--state-dir", state, "--output", "json"],
                                   capture_output=True, text=True).stdout)
    with open(os.path.join(state, "state.json")) as f:
        sfind = {x.get("path") for x in json.load(f)["findings"]}
    one = subprocess.run([bin_, "check-core", "--root", root, "--trust", crt, "--crl", "none", "--enforce", "yes",
                          "--output", "json"], capture_output=True, text=True)
    oj = json.loads(one.stdout)
    oneshot = set()
    for kind, v in (oj.items() if isinstance(oj, dict) else []):
        if kind != "EXCEPTION" and isinstance(v, dict):
            oneshot |= set(v)

    # SIGTERM.
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        rc = "still running after 30 s"
    R["term"] = time.monotonic() - t0
    R["term_rc"] = rc
    stopping = [t for t, m in notes if "STOPPING=1" in m.split("\n") and t >= t0]
    log.poll()
    time.sleep(0.2)

    # Figures.
    all_pings = pings()
    load_pings = pings(m_load0, m_load1 + R["idle_wait"])
    # A ping gap that straddles the load window counts too.
    edge = [t for t in all_pings if t < m_load0][-1:] + load_pings + [t for t in all_pings if t > m_load1 + R["idle_wait"]][:1]
    gaps_all = max_gap([t for t in all_pings if t < t0])
    gaps_load = max_gap(edge)
    cpu_s = (cpu_load1 - cpu_load0) / HZ
    per_s = []
    for a, b in zip(samples, samples[1:]):
        if b[0] - a[0] > 0:
            per_s.append((b[2] - a[2]) / HZ / (b[0] - a[0]))
    rss = [s[1] for s in samples]
    overflows = log.find(lambda e: e.get("msg") == "rescanning everything")
    holds = log.find(lambda e: e.get("msg", "").startswith("scope is changing"))
    settled = log.find(lambda e: e.get("msg") == "scope checked after changes")
    errors = log.find(lambda e: e.get("level") in ("error", "fatal", "panic", "dpanic"))

    rows = []
    def row(what, value, note=""):
        rows.append((what, value, note))
    row("machine", "%d CPUs, %s" % (ncpu, open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip()))
    row("tree", "%d files, %d directories, %.0f MB" % (nfiles, ndirs, mb))
    row("check-core (warm, best of 3)", "%.2f s" % t_int, "%.0f files/s, %.0f MB/s, max RSS %d MiB" % (nfiles / t_int, mb / t_int, hwm_int >> 10))
    row("find | xargs -P%d sha512sum" % ncpu, "%.2f s" % t_sha, "%.0f files/s, %.0f MB/s" % (nfiles / t_sha, mb / t_sha))
    row("ratio check-core / sha512sum", "%.2f" % (t_int / t_sha), "<= 1.00 means at least as fast")
    row("daemon: initial scan done after", "%.2f s" % R["ready"], "full scan itself %.2f s" % R["first_scan"])
    row("daemon: RSS after initial scan", "%d MiB" % (R["rss_ready"] >> 10), "VmHWM %d MiB" % (R["hwm_ready"] >> 10))
    row("daemon: inotify watches", "%d" % R["watches"], "for %d directories" % ndirs)
    row("daemon: idle CPU", "%d ticks in 5 s" % R["idle_cpu_ticks"])
    row("load: writes", "%d in %.1f s" % (wr["writes"], wr["seconds"]), "%.0f/s, %d distinct files%s" % (wr["writes"] / wr["seconds"], len(modified),
        " (of %d hot ones)" % hot if hot else ""))
    row("load: daemon CPU", "%.2f CPUs avg" % (cpu_s / wr["seconds"]), "max %.2f over 0.5 s; %.1f CPU-s" % (max(per_s, default=float("nan")), cpu_s))
    row("load: daemon RSS", "max %d MiB" % (max(rss, default=0) >> 10), "VmHWM %d MiB after load" % (R["hwm_after"] >> 10))
    marks = [s for s in samples if int(round((s[0] - m_load0) * 2)) % 20 == 0]
    row("load: RSS every 10 s (MiB)", " ".join(str(s[1] >> 10) for s in marks))
    for i, h in enumerate(hups):
        row("load: SIGHUP %d -> rescan done" % (i + 1), "%.2f s" % h["done"],
            "handled +%.2f s, RELOADING=1 +%.2f s, scan %.2f s" % (h.get("handled", float("nan")), h.get("reloading", float("nan")), h.get("scan", float("nan"))))
    row("watchdog: pings", "%d" % len(all_pings), "WATCHDOG_USEC=%g s" % WATCHDOG)
    row("watchdog: max gap, whole run", "%.2f s" % gaps_all, "OK" if gaps_all < WATCHDOG else "MISSED (>= %g s)" % WATCHDOG)
    row("watchdog: max gap, under load", "%.2f s" % gaps_load, "OK" if gaps_load < WATCHDOG else "MISSED (>= %g s)" % WATCHDOG)
    row("alerts under load", "%d" % len(alerts), "%d distinct paths, %d resolved entries" % (len(alerted), len(resolved)))
    row("alert latency under load", "p50 %.3f s" % pct(lat, 50), "p99 %.3f s, max %.3f s, %.1f%% within 1 s" % (pct(lat, 99), max(lat, default=float("nan")), 100 * sum(1 for x in lat if x <= 1) / max(1, len(lat))))
    row("last alert vs. end of the writes", "%+.2f s" % ((max((x[1] for x in alerts), default=w_load1) - w_load1)), "after idle wait of %.1f s" % R["idle_wait"])
    row("overflows / held scopes / settled", "%d / %d / %d" % (len(overflows), len(holds), len(settled)), "errors logged: %d" % len(errors))
    if holds or settled:
        row("held at (s into the load: paths)", " ".join("%+.1f:%s" % (wt - w_load0, e.get("changed_paths")) for _, wt, e in holds),
            "settled at " + " ".join("%+.1f" % (wt - w_load0) for _, wt, e in settled))
    ok = st.get("findings") == len(modified) == len(sfind) == len(oneshot) and sfind == modified == oneshot
    row("findings: modified files", "%d" % len(modified))
    row("findings: integrityd status", "%s" % st.get("findings"), "state paths == modified: %s" % (sfind == modified))
    row("findings: one-shot check-core", "%d" % len(oneshot), "== modified: %s" % (oneshot == modified))
    row("findings agree", "yes" if ok else "NO", "missing %d, extra %d" % (len(modified - sfind), len(sfind - modified)))
    row("daemon: RSS after load, idle", "%d MiB" % (R["rss_after"] >> 10), "idle CPU %d ticks in 3 s; watches %d" % (R["idle_cpu_after"], R["watches_after"]))
    row("SIGTERM -> exit", "%.3f s" % R["term"], "exit status %s, STOPPING=1 %s" % (R["term_rc"], "sent" if stopping else "NOT sent"))
    w = max(len(r[0]) for r in rows)
    v = max(len(r[1]) for r in rows)
    print()
    for a, b, c in rows:
        print("%-*s  %*s  %s" % (w, a, v, b, c))
    json.dump({"samples": [(t - m_load0, r, c) for t, r, c in samples], "pings": [t - m_load0 for t in all_pings],
               "sighups": hups, "latencies": lat}, open(os.path.join(work, "figures.json"), "w"))
    if not ok:
        with open(os.path.join(work, "mismatch.txt"), "w") as f:
            json.dump({"missing": sorted(modified - sfind), "extra": sorted(sfind - modified),
                       "oneshot_missing": sorted(modified - oneshot)}, f, indent=1)
finally:
    for proc in (writer, p):
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
PY
