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
#   TAMPERS_LOAD [20]            as many more, to other files, beside the
#                                LOAD_RATE writes/s elsewhere
#   SETTLE_S [2]                 pause after "initial scan done"
#   MODES ["off on"]             the order of the runs
#   FS_EVENTS [1]                count the filesystem's events in each phase
#                                with a second fanotify group (a Python
#                                process, the daemon's mark and mask): on a
#                                shared machine other jobs write on the same
#                                filesystem, and the sensor sees their
#                                writes too; 0: don't
#   WORK_DIR [/tmp]              where the temporary directory is made (the
#                                tree, the writers' directory, the state):
#                                a filesystem of its own (a tmpfs mounted
#                                for it) keeps the machine's other writers
#                                out of the measure
#   KEEP=1                       keep the temporary directory
#
# For each mode: a fresh state directory, `integrityd run --who-data MODE`
# on the tree, then the idle phase, the load phase and the tampers. The
# daemon's CPU is utime+stime of /proc/PID/stat (ticks of `getconf
# CLK_TCK`) over each phase, CPU % is of one CPU, RSS is VmRSS at the end
# of the phase (VmHWM at the end of the run). The writers are other
# processes; their CPU is not counted. Each run ends with SIGTERM, and the
# tampered files get their bytes back before the next run.
# Prints a table: mode, phase, CPU seconds (and ticks), CPU %, ratio
# on/off, RSS; then the alert latencies (the daemon's timestamp of the
# alert's log entry minus the time just before the write: same clock).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${WORK_DIR:-/tmp}/integrityd-sensor.XXXXXX")
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
	"${TAMPERS:-50}" "${TAMPERS_LOAD:-20}" "${TAMPER_GAP:-0.2}" "${SETTLE_S:-2}" "${MODES:-off on}" "${FS_EVENTS:-1}" <<'PY'
import datetime, json, os, re, signal, subprocess, sys, time

(bin_, root, crt, other, work, hz, load_s, load_rate, idle_s, idle_rate, other_files,
 tampers, tampers_load, tamper_gap, settle, modes, fs_events) = sys.argv[1:]
hz = int(hz)
load_s, load_rate, idle_s, idle_rate = float(load_s), float(load_rate), float(idle_s), float(idle_rate)
other_files, tampers, tampers_load, tamper_gap, settle = int(other_files), int(tampers), int(tampers_load), float(tamper_gap), float(settle)
modes = modes.split()
fs_events = fs_events not in ("", "0")

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

# The counter: a fanotify group with the daemon's filesystem mark and mask
# (FAN_REPORT_DFID_NAME_TARGET; content and directory-entry events) that
# counts the events it reads and, every 0.2 s, writes "monotonic count".
COUNTER = r'''
import ctypes, os, select, sys, time
path, out = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
fd = libc.fanotify_init(0x1e00 | 0x1 | 0x800, os.O_RDONLY)  # DFID_NAME_TARGET | CLOEXEC | NONBLOCK
if fd < 0:
    sys.exit("fanotify_init: " + os.strerror(ctypes.get_errno()))
mask = 0x2 | 0x8 | 0x4 | 0x100 | 0x200 | 0x40 | 0x80 | 0x40000000
if libc.fanotify_mark(fd, 0x1 | 0x100, mask, -100, path.encode()) < 0:
    sys.exit("fanotify_mark: " + os.strerror(ctypes.get_errno()))
n, next_w = 0, 0.0
poll = select.poll()
poll.register(fd, select.POLLIN)
while True:
    poll.poll(200)
    try:
        buf = os.read(fd, 1 << 16)
    except BlockingIOError:
        buf = b""
    i = 0
    while i + 4 <= len(buf):
        l = int.from_bytes(buf[i:i + 4], "little")
        if l <= 0:
            break
        n += 1
        i += l
    now = time.monotonic()
    if now >= next_w:
        with open(out + ".tmp", "w") as f:
            f.write("%f %d\n" % (now, n))
        os.rename(out + ".tmp", out)
        next_w = now + 0.2
'''

counter_out = os.path.join(work, "fs-events.txt")
counter = None
if fs_events:
    counter = subprocess.Popen([sys.executable, "-c", COUNTER, root, counter_out])
    for _ in range(100):
        if os.path.exists(counter_out) or counter.poll() is not None:
            break
        time.sleep(0.05)
    if counter.poll() is not None or not os.path.exists(counter_out):
        say("no filesystem event counter (status %s)" % counter.poll())
        counter.kill()
        counter.wait()
        counter = None

def fs_count():
    """The counter's latest (monotonic, events), or None."""
    if counter is None:
        return None
    try:
        t, n = open(counter_out).read().split()
        return float(t), int(n)
    except (OSError, ValueError):
        return None

def start_writer(secs, rate, tag):
    out = os.path.join(work, "writer-%s.txt" % tag)
    return subprocess.Popen([sys.executable, "-c", WRITER, other, str(secs), str(rate), str(other_files), out]), out

def writer_result(out):
    n, s = open(out).read().split()
    return int(n), float(s)

files = subprocess.run(["find", root, "-path", root + "/lib/*", "-type", "f", "-name", "*.php"],
                       capture_output=True, text=True, check=True).stdout.split()
files.sort()
ntamper = tampers + tampers_load
if len(files) < ntamper:
    raise SystemExit("only %d files to tamper with, want %d" % (len(files), ntamper))
step = max(1, len(files) // ntamper)
targets = [files[i * step] for i in range(ntamper)]
tsets = (("light", idle_rate, targets[:tampers]), ("load", load_rate, targets[tampers:]))

def stop_counter():
    if counter is not None and counter.poll() is None:
        counter.kill()
        counter.wait()
import atexit
atexit.register(stop_counter)

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
            e0 = fs_count()
            c0, t0 = stat_ticks(pid), time.monotonic()
            w, out = start_writer(secs, rate, mode + "-" + name)
            writers.append(w)
            w.wait()
            c1, t1 = stat_ticks(pid), time.monotonic()
            time.sleep(0.3)  # the counter's next write
            e1 = fs_count()
            n, ws = writer_result(out)
            if p.poll() is not None:
                raise SystemExit("daemon exited during phase %s; see %s" % (name, logpath))
            R["phases"][name] = {"ticks": c1 - c0, "wall": t1 - t0, "writes": n, "wsecs": ws,
                                 "rss": status_kb(pid, "VmRSS"),
                                 "fsev": (e1[1] - e0[1]) / (e1[0] - e0[0]) if e0 and e1 and e1[0] > e0[0] else None}
            log.poll()

        phase("idle", idle_s, idle_rate)
        phase("load", load_s, load_rate)
        time.sleep(settle)  # let what the load left be read

        # Tampers, one at a time, beside the light load, then beside the
        # heavy one; a file is tampered with once.
        R["lat"] = {}
        for tname, trate, tfiles in tsets:
            if not tfiles:
                continue
            say("who-data %s: %d tampers inside the tree beside %g writes/s elsewhere" % (mode, len(tfiles), trate))
            bg, _ = start_writer(10 ** 6, trate, mode + "-tamper-" + tname)
            writers.append(bg)
            time.sleep(settle)
            lat, named, missed = [], 0, 0
            log.poll()
            for rel in (os.path.relpath(t, root) for t in tfiles):
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
            bg.kill()
            bg.wait()
            R["lat"][tname] = (trate, lat, named, missed)
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
if counter is not None:
    stop_counter()
    print("fs events/s: events on the filesystem in the phase, all writers (ours and the machine's other jobs), as a second fanotify group like the daemon's reads them")
hdr = ("phase", "mode", "writes/s", "fs events/s", "CPU s", "ticks", "CPU %", "on/off", "RSS MiB")
rows = []
for name, label in (("idle", "idle + %g/s elsewhere, %g s" % (idle_rate, idle_s)), ("load", "%g/s elsewhere, %g s" % (load_rate, load_s))):
    base = results.get("off", {}).get("phases", {}).get(name)
    for mode in modes:
        ph = results[mode]["phases"][name]
        cpu = ph["ticks"] / hz
        ratio = "-"
        if mode != "off" and base:
            ratio = "%.1f" % (cpu / (base["ticks"] / hz)) if base["ticks"] else "inf (off: 0 ticks)"
        rows.append((label, mode, "%.0f" % (ph["writes"] / ph["wsecs"]),
                     "%.0f" % ph["fsev"] if ph["fsev"] is not None else "-", "%.2f" % cpu, "%d" % ph["ticks"],
                     "%.2f" % (100 * cpu / ph["wall"]), ratio, "%d" % (ph["rss"] >> 10)))
wid = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr))]
for r in [hdr] + rows:
    print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, wid))))
print()
for mode in modes:
    R = results[mode]
    for tname, (trate, lat, named, missed) in R["lat"].items():
        print("alert latency, who-data %-3s, beside %4g/s elsewhere: p50 %5.1f ms, p99 %5.1f ms, max %5.1f ms (%d tampers, %d missed, %d with the writer named)" % (
            mode, trate, 1000 * pct(lat, 50), 1000 * pct(lat, 99), 1000 * max(lat, default=float("nan")),
            len(lat) + missed, missed, named))
for mode in modes:
    R = results[mode]
    print("memory, who-data %-3s: VmHWM %d MiB; errors logged %d; overflow rescans %d" % (mode, R["hwm"] >> 10, R["errors"], R["rescans"]))
PY
