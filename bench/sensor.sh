#!/usr/bin/env bash
# Cost of the who-data sensor (fanotify, filesystem mark): the daemon's CPU
# and memory with `--who-data on` against `--who-data off` (issue 20).
#
# Usage: bench/sensor.sh
# Environment (defaults in brackets):
#   FILES [2000], TOTAL_MB [20]  the signed demo tree (bench/gentree.sh)
#   LOAD_S [30], LOAD_RATE [500] phase "load": writes/s ELSEWHERE on the
#                                same filesystem, outside the tree
#   IDLE_S [30], IDLE_RATE [5]   phase "idle": a light background load
#                                elsewhere (a Nextcloud's php-fpm session
#                                and cache writes)
#   OTHER_FILES [200]            files the writers append to / rewrite
#   TAMPERS [50], TAMPER_GAP [0.2] single-file tampers inside the tree, one
#                                at a time (the next TAMPER_GAP s after the
#                                previous alert), beside the light load:
#                                time from the write to the alert's log entry
#   SETTLE_S [2]                 pause after "initial scan done"
#   MODES ["off on"]             the order of the runs
#   KEEP=1                       keep the temporary directory
#
# For each mode: a fresh state directory, `integrityd run --who-data MODE`
# on the tree, then the idle phase, the load phase and the tampers. The
# daemon's CPU is utime+stime of /proc/PID/stat (ticks of `getconf
# CLK_TCK`) over each phase, CPU % is of one CPU, RSS is VmRSS at the end
# of the phase (VmHWM at the end of the run). The writers are other
# processes; their CPU is not counted. Each run ends with SIGTERM, and the
# tampered files get their bytes back before the next run.
# Prints a table: mode, phase, CPU seconds, CPU %, ratio on/off, RSS;
# then the alert latencies.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/integrityd-sensor.XXXXXX)
trap '[ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"' EXIT
bin=$work/integrityd tree=$work/nc other=$work/other
go build -o "$bin" ./cmd/integrityd
bench/gentree.sh "$bin" "$tree" "${FILES:-2000}" "${TOTAL_MB:-20}" >&2
mkdir -p "$other"
if [ "$(stat -c %d "$tree")" != "$(stat -c %d "$other")" ]; then
	echo "sensor.sh: $tree and $other are not on the same filesystem" >&2
	exit 2
fi
echo "tree $tree and writers' directory $other: same filesystem ($(df -PT "$tree" | awk 'NR == 2 {print $2, $1}'))" >&2

python3 - "$bin" "$tree" "$tree.crt" "$other" "$work" "$(getconf CLK_TCK)" \
	"${LOAD_S:-30}" "${LOAD_RATE:-500}" "${IDLE_S:-30}" "${IDLE_RATE:-5}" "${OTHER_FILES:-200}" \
	"${TAMPERS:-50}" "${TAMPER_GAP:-0.2}" "${SETTLE_S:-2}" "${MODES:-off on}" <<'PY'
import datetime, json, os, re, signal, subprocess, sys, time

(bin_, root, crt, other, work, hz, load_s, load_rate, idle_s, idle_rate, other_files,
 tampers, tamper_gap, settle, modes) = sys.argv[1:]
hz = int(hz)
load_s, load_rate, idle_s, idle_rate = float(load_s), float(load_rate), float(idle_s), float(idle_rate)
other_files, tampers, tamper_gap, settle = int(other_files), int(tampers), float(tamper_gap), float(settle)
modes = modes.split()

def say(*a):
    print(*a, file=sys.stderr, flush=True)

def stat_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime

def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith(key + ":"):
                return int(l.split()[1])
    return 0

def logtime(e):
    t = e.get("time")
    if not t:
        return float("nan")
    t = re.sub(r"(\.\d{6})\d+", r"\1", t.replace("Z", "+00:00"))
    return datetime.datetime.fromisoformat(t).timestamp()

class Log:
    """The daemon's JSON log, followed as it grows."""
    def __init__(self, path):
        self.f = open(path, "rb")
        self.buf = b""
        self.lines = []
    def poll(self):
        chunk = self.f.read()
        if not chunk:
            return []
        self.buf += chunk
        *full, self.buf = self.buf.split(b"\n")
        new = []
        for l in full:
            if l.strip():
                try:
                    new.append(json.loads(l))
                except ValueError:
                    new.append({"msg": l.decode(errors="replace")})
        self.lines += new
        return new

def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

# The writer elsewhere: RATE writes/s for SECS to NFILES files in DIR, each
# an append of 128 bytes, every 16th a rewrite (truncate, 4 KiB), each its
# own open/write/close as php-fpm's session and cache files are written.
WRITER = r'''
import os, random, sys, time
d, secs, rate, nfiles, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
paths = [os.path.join(d, "sess_%04d" % i) for i in range(nfiles)]
random.seed(os.getpid())
app, rew = b"a" * 127 + b"\n", b"r" * 4095 + b"\n"
n, t0 = 0, time.monotonic()
end = t0 + secs
while True:
    now = time.monotonic()
    if now >= end:
        break
    target = int((now - t0) * rate) + 1
    while n < target:
        p = random.choice(paths)
        if n % 16 == 0:
            with open(p, "wb") as f:
                f.write(rew)
        else:
            with open(p, "ab") as f:
                f.write(app)
        n += 1
    time.sleep(0.005)
open(out, "w").write("%d %f\n" % (n, time.monotonic() - t0))
'''

def start_writer(secs, rate, tag):
    out = os.path.join(work, "writer-%s.txt" % tag)
    return subprocess.Popen([sys.executable, "-c", WRITER, other, str(secs), str(rate), str(other_files), out]), out

def writer_result(out):
    n, s = open(out).read().split()
    return int(n), float(s)

files = subprocess.run(["find", root, "-path", root + "/lib/*", "-type", "f", "-name", "*.php"],
                       capture_output=True, text=True, check=True).stdout.split()
files.sort()
if len(files) < tampers:
    raise SystemExit("only %d files to tamper with, want %d" % (len(files), tampers))
step = max(1, len(files) // tampers)
targets = [files[i * step] for i in range(tampers)]

results = {}  # mode -> dict
for mode in modes:
    state = os.path.join(work, "state-" + mode)
    logpath = os.path.join(work, "daemon-%s.log" % mode)
    R = results[mode] = {"phases": {}}
    say("--- who-data %s: starting the daemon" % mode)
    p = subprocess.Popen([bin_, "run", "--root", root, "--trust", crt, "--crl", "none", "--enforce", "yes",
                          "--state-dir", state, "--log-format", "json", "--who-data", mode],
                         stdout=subprocess.DEVNULL, stderr=open(logpath, "wb"))
    log = Log(logpath)
    saved = {}
    writers = []
    try:
        end = time.monotonic() + 300
        while not any(e.get("msg", "").startswith("initial scan done") for e in log.lines):
            log.poll()
            if p.poll() is not None:
                raise SystemExit("daemon exited (status %s); see %s" % (p.returncode, logpath))
            if time.monotonic() > end:
                raise SystemExit("no 'initial scan done' after 300 s; see %s" % logpath)
            time.sleep(0.02)
        time.sleep(settle)
        log.poll()
        sensor = "off"
        for e in log.lines:
            m = e.get("msg", "")
            if m.startswith("writers known"):
                sensor = m[len("writers known: "):]
            elif m.startswith("writers unknown"):
                sensor = "UNKNOWN"
                R["unknown"] = m
                say("who-data %s: %s" % (mode, m))
        R["sensor"] = sensor
        say("who-data %s: sensor: %s" % (mode, sensor))
        pid = p.pid

        def phase(name, secs, rate):
            say("who-data %s: phase %s: %g s at %g writes/s elsewhere" % (mode, name, secs, rate))
            c0, t0 = stat_ticks(pid), time.monotonic()
            w, out = start_writer(secs, rate, mode + "-" + name)
            writers.append(w)
            w.wait()
            c1, t1 = stat_ticks(pid), time.monotonic()
            n, ws = writer_result(out)
            if p.poll() is not None:
                raise SystemExit("daemon exited during phase %s; see %s" % (name, logpath))
            R["phases"][name] = {"ticks": c1 - c0, "wall": t1 - t0, "writes": n, "wsecs": ws,
                                 "rss": status_kb(pid, "VmRSS")}
            log.poll()

        phase("idle", idle_s, idle_rate)
        phase("load", load_s, load_rate)
        time.sleep(settle)  # let what the load left be read

        # Tampers, one at a time, beside the light load.
        say("who-data %s: %d tampers inside the tree" % (mode, tampers))
        bg, _ = start_writer(10 ** 6, idle_rate, mode + "-tamper")
        writers.append(bg)
        lat, named, missed = [], 0, 0
        log.poll()
        for rel in (os.path.relpath(t, root) for t in targets):
            path = os.path.join(root, rel)
            saved[path] = open(path, "rb").read()
            t = time.time()
            with open(path, "ab") as f:
                f.write(b"<?php /* tampered */\n")
            deadline = time.monotonic() + 10
            hit = None
            while hit is None and time.monotonic() < deadline:
                for e in log.poll():
                    if e.get("integrity_path") == rel and e.get("integrity_kind"):
                        hit = e
                        break
                else:
                    time.sleep(0.002)
            if hit is None:
                missed += 1
            else:
                lat.append(logtime(hit) - t)
                if hit.get("integrity_comm"):
                    named += 1
            time.sleep(tamper_gap)
        R["lat"], R["named"], R["missed"] = lat, named, missed
        R["hwm"] = status_kb(pid, "VmHWM")
        R["errors"] = sum(1 for e in log.lines if e.get("level") in ("error", "fatal", "panic", "dpanic"))
        R["rescans"] = sum(1 for e in log.lines if e.get("msg") == "rescanning everything")
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for path, data in saved.items():
            with open(path, "wb") as f:
                f.write(data)

# The table.
ncpu = os.cpu_count()
model = "?"
try:
    model = open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip()
except IndexError:
    pass
load = open("/proc/loadavg").read().split()[:3]
print()
print("machine: %d CPUs (%s), kernel %s, load average %s; CLK_TCK %d" % (ncpu, model, os.uname().release, " ".join(load), hz))
for mode in modes:
    print("who-data %-3s sensor: %s" % (mode, results[mode]["sensor"]))
    if "unknown" in results[mode]:
        print("  " + results[mode]["unknown"])
print()
hdr = ("phase", "mode", "writes/s", "CPU s", "CPU %", "on/off", "RSS MiB")
rows = []
for name, label in (("idle", "idle + %g/s elsewhere, %g s" % (idle_rate, idle_s)), ("load", "%g/s elsewhere, %g s" % (load_rate, load_s))):
    base = results.get("off", {}).get("phases", {}).get(name)
    for mode in modes:
        ph = results[mode]["phases"][name]
        cpu = ph["ticks"] / hz
        ratio = "-"
        if mode != "off" and base:
            ratio = "%.1f" % (cpu / (base["ticks"] / hz)) if base["ticks"] else "inf (off: 0 ticks)"
        rows.append((label, mode, "%.0f" % (ph["writes"] / ph["wsecs"]), "%.2f" % cpu,
                     "%.2f" % (100 * cpu / ph["wall"]), ratio, "%d" % (ph["rss"] >> 10)))
wid = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr))]
for r in [hdr] + rows:
    print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, wid))))
print()
for mode in modes:
    R = results[mode]
    lat = R["lat"]
    print("alert latency, who-data %-3s: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d tampers, %d missed, %d with the writer named); VmHWM %d MiB; errors logged %d, overflow rescans %d" % (
        mode, 1000 * pct(lat, 50), 1000 * pct(lat, 99), 1000 * max(lat, default=float("nan")),
        len(lat) + R["missed"], R["missed"], R["named"], R["hwm"] >> 10, R["errors"], R["rescans"]))
PY
