package daemon

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// running is a daemon started for a test.
type running struct {
	d      *Daemon
	sync   *syncer
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
	done   chan error
}

func testConfig(root, stateDir string) Config {
	return Config{
		Root:     root,
		Trust:    filepath.Join(root, "resources/codesigning/root.crt"),
		StateDir: stateDir,
		Settle:   300 * time.Millisecond,
	}
}

const logTail = 25

// hangGuard bounds every wait of these tests on a condition. It is far
// beyond what the condition takes even on a loaded machine: it only turns
// a hang into a failure. No test asserts how fast something happens (the
// benchmarks measure that): promptness is checked as order (an alert
// before the timer it must not wait for) or as work (no full scan ran).
const hangGuard = 3 * time.Minute

// waitFor polls cond until it holds; after hangGuard it fails t, saying
// what was awaited.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v (hangs?)", what, hangGuard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var modelSeeds = flag.String("model.seeds", "", "seeds for TestModel instead of 1,2: e.g. 101-120,7")

// start runs a daemon with cfg until the test ends; its entries are in
// r.logs.
func start(t testing.TB, cfg Config) *running {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	r := startWith(t, cfg, zap.New(core))
	r.logs = logs
	return r
}

// startWith runs a daemon with cfg and log until the test ends, once its
// first full scan is done.
func startWith(t testing.TB, cfg Config, log *zap.Logger) *running {
	t.Helper()
	d, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, sync: enableSync(d), cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() { r.done <- d.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("daemon stopped: %v", err)
	case <-time.After(hangGuard):
		t.Fatalf("no initial scan after %v", hangGuard)
	}
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // stop is idempotent
}

// waitIdle waits until the daemon has processed everything.
func (r *running) waitIdle(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := r.sync.Sync(ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// oneShot is what integrityd check would report for root now.
func oneShot(t testing.TB, root string) []finding.Finding {
	t.Helper()
	return checkWith(t, root, filepath.Join(root, "resources/codesigning/root.crt"), nil)
}

// checkWith is what a one-shot check with the trust anchors in trust
// reports for root, with the apps in signed (name: directory) checked too
// when their directory is there.
func checkWith(t testing.TB, root, trust string, signed map[string]string) []finding.Finding {
	t.Helper()
	in, err := verify.OpenInstall(root, nil, "") // config.php read, as integrityd check does
	if err != nil {
		in = verify.NewInstall(root, nil, "") // no version.php (the model removes files): the defaults
	}
	tr, err := verify.LoadTrust(trust, "")
	if err != nil {
		t.Fatal(err)
	}
	apps, _, err := in.Apps()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, a := range apps {
		have[a.Name] = true
	}
	for name, dir := range signed {
		if fi, err := os.Lstat(dir); err == nil && fi.IsDir() && !have[name] {
			apps = append(apps, in.App(name, dir))
		}
	}
	var out []finding.Finding
	for _, sc := range append([]*verify.Scope{in.Core()}, apps...) {
		res, err := sc.Check(context.Background(), tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.AllFindings()...)
	}
	finding.Sort(out)
	return out
}

func render(fs []finding.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s %s %q exp=%.8s cur=%.8s %s\n", f.Scope, f.Kind, f.Path, f.Expected, f.Current, f.Message)
	}
	return b.String()
}

func assertSame(t testing.TB, r *running, root, context string) {
	t.Helper()
	// A one-shot check does not know which apps were signed before; the
	// daemon keeps checking those (docs/security.md): they are added.
	got, want := render(r.d.Findings()), render(checkWith(t, root, filepath.Join(root, "resources/codesigning/root.crt"), r.d.Snapshot().meta.Signed))
	if got != want {
		entries := r.logs.All()
		for _, e := range entries[max(0, len(entries)-int(logTail)):] {
			t.Logf("log: %s %s %v", e.Level, e.Message, e.ContextMap())
		}
		t.Fatalf("%s: daemon findings differ from a one-shot check\ndaemon:\n%s\ncheck:\n%s", context, got, want)
	}
}

// Sorts of entries the tests count: alerts and resolved entries of
// findings, whose one-line MESSAGE must name the finding their fields do.
const (
	sortAlert    = "alert"
	sortResolved = "resolved"
)

// sortOf is sortAlert or sortResolved for an entry of a finding whose
// message is the one line its fields say, else "".
func sortOf(e observer.LoggedEntry) string {
	m := e.ContextMap()
	k, _ := m["integrity_kind"].(string)
	scope, _ := m["integrity_scope"].(string)
	path, _ := m["integrity_path"].(string)
	if k == "" {
		return ""
	}
	reason := ""
	if journal.LineHasMessage(k) {
		reason, _ = m["integrity_message"].(string)
	}
	switch m["message_id"] {
	case kind.IDResolved:
		if e.Message == journal.ResolvedLine(k, scope, path) {
			return sortResolved
		}
	case journal.AlertID(k):
		// With who-data, the writer the fields name follows the path.
		who := ""
		if pid, ok := m["integrity_pid"].(int64); ok {
			uid, ok := m["integrity_uid"].(int64)
			if !ok {
				uid = -1
			}
			comm, _ := m["integrity_comm"].(string)
			exe, _ := m["integrity_exe"].(string)
			unit, _ := m["integrity_unit"].(string)
			execed, _ := m["integrity_execed"].(bool)
			who = journal.WrittenBy(journal.Who{Pid: int(pid), Exe: exe, Comm: comm, UID: int(uid), Unit: unit, Execed: execed})
		}
		if e.Message == journal.AlertLine(k, scope, path, who, reason) || who == "" && e.Message == journal.AlertLine(k, scope, path, journal.WriterUnknown, reason) {
			return sortAlert
		}
	}
	return ""
}

// findingMessage reports whether msg is the MESSAGE of an alert or a
// resolved entry (for hooks that see no fields).
func findingMessage(msg string) bool {
	msg = strings.TrimPrefix(msg, "resolved ")
	for _, k := range kind.All() {
		if strings.HasPrefix(msg, string(k)+" ") {
			return true
		}
	}
	return false
}

// entriesOf are the entries of sort (sortAlert, sortResolved).
func entriesOf(logs *observer.ObservedLogs, sort string) []observer.LoggedEntry {
	return logs.Filter(func(e observer.LoggedEntry) bool { return sortOf(e) == sort }).All()
}

// alerts counts the entries of sort (sortAlert, sortResolved), by path.
func alerts(logs *observer.ObservedLogs, sort string) map[string]int {
	n := map[string]int{}
	for _, e := range entriesOf(logs, sort) {
		n[e.ContextMap()["integrity_scope"].(string)+":"+fmt.Sprint(e.ContextMap()["integrity_path"])]++
	}
	return n
}

// model applies random operations to a demo tree.
type model struct {
	t    testing.TB
	root string
	rnd  *rand.Rand
	keys *demo.Keys
	log  []string
	d    *Daemon // for rescans
	// unseen: an operation inotify does not report happened this round
	// (a write through a shared mapping or a hard link from data/): a
	// full rescan must find it before the round is compared.
	unseen bool
}

// files lists the regular files under the checked parts of the tree.
func (m *model) files() []string {
	var out []string
	filepath.WalkDir(m.root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(m.root, p)
		if d.IsDir() && (rel == "data" || rel == "config" || rel == "resources") {
			return filepath.SkipDir // not checked, or the trust anchor (tested apart)
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func (m *model) dirs() []string {
	var out []string
	filepath.WalkDir(m.root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if rel, _ := filepath.Rel(m.root, p); rel == "resources" {
			return filepath.SkipDir
		}
		out = append(out, p)
		return nil
	})
	sort.Strings(out)
	return out
}

func (m *model) pick(list []string) string { return list[m.rnd.Intn(len(list))] }

func (m *model) content() []byte {
	return []byte(fmt.Sprintf("<?php // %d\n", m.rnd.Intn(5))) // few values: same-content cases happen
}

func (m *model) newName(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("n%d.php", m.rnd.Intn(1000)))
}

// step applies one random operation.
func (m *model) step() {
	files, dirs := m.files(), m.dirs()
	f, d := m.pick(files), m.pick(dirs)
	var op string
	var err error
	switch m.rnd.Intn(20) {
	case 0:
		op = "write " + f
		err = os.WriteFile(f, m.content(), 0o644)
	case 1:
		op = "append " + f
		var h *os.File
		if h, err = os.OpenFile(f, os.O_APPEND|os.O_WRONLY, 0); err == nil {
			h.Write([]byte("x"))
			err = h.Close()
		}
	case 2:
		op = "truncate " + f
		err = os.Truncate(f, 0)
	case 3:
		op = "chmod " + f
		err = os.Chmod(f, os.FileMode(0o600+m.rnd.Intn(2)*0o44))
	case 4:
		op = "delete " + f
		err = os.Remove(f)
	case 5:
		n := m.newName(d)
		op = "create " + n
		err = os.WriteFile(n, m.content(), 0o644)
	case 6:
		n := m.newName(d)
		op = "rename " + f + " " + n
		err = os.Rename(f, n)
	case 7:
		if d == m.root {
			return
		}
		n := filepath.Join(filepath.Dir(d), fmt.Sprintf("d%d", m.rnd.Intn(100)))
		op = "rename dir " + d + " " + n
		if strings.HasPrefix(n, d+"/") {
			return
		}
		err = os.Rename(d, n)
	case 8:
		n := filepath.Join(d, fmt.Sprintf("m%d", m.rnd.Intn(100)))
		op = "mkdir+populate " + n
		if err = os.MkdirAll(filepath.Join(n, "sub"), 0o755); err == nil {
			os.WriteFile(filepath.Join(n, "a.php"), m.content(), 0o644)
			err = os.WriteFile(filepath.Join(n, "sub", "b.js"), m.content(), 0o644)
		}
	case 9:
		op = "atomic replace " + f
		tmp := f + ".tmp"
		if err = os.WriteFile(tmp, m.content(), 0o644); err == nil {
			err = os.Rename(tmp, f)
		}
	case 10:
		op = "same content " + f
		var data []byte
		if data, err = os.ReadFile(f); err == nil {
			err = os.WriteFile(f, data, 0o644)
		}
	case 11:
		n := filepath.Join(d, fmt.Sprintf("l%d", m.rnd.Intn(100)))
		target := f
		if m.rnd.Intn(2) == 0 {
			target = m.pick(dirs)
		}
		op = "symlink " + n + " -> " + target
		err = os.Symlink(target, n)
	case 12:
		in := verify.NewInstall(m.root, nil, "")
		sc := in.Core()
		if apps, _, _ := in.Apps(); len(apps) > 0 && m.rnd.Intn(2) == 0 {
			sc = m.pick2(apps)
		}
		op = "re-sign " + sc.Name
		if _, e := os.Stat(filepath.Dir(sc.ManifestPath())); e != nil {
			return
		}
		err = m.keys.Sign(context.Background(), sc)
	case 13:
		p := filepath.Join(m.root, "apps", m.pick([]string{"files", "dashboard"}), "appinfo/signature.json")
		op = "corrupt " + p
		err = os.WriteFile(p, []byte(`{"hashes": {}, "signature": "`), 0o644)
	case 14:
		op = "restore " + f
		rel, _ := filepath.Rel(m.root, f)
		if c, ok := demo.Files[rel]; ok {
			err = os.WriteFile(f, []byte(c), 0o644)
		}
	case 15:
		// A full rescan that runs while the next operations happen: its
		// merge must keep what the loop saw meanwhile.
		op = "rescan (not waited for)"
		go m.d.Rescan(context.Background())
	case 16:
		n := filepath.Join(d, fmt.Sprintf("bad\xff%d.php", m.rnd.Intn(100)))
		op = fmt.Sprintf("create %q (not UTF-8)", n)
		err = os.WriteFile(n, m.content(), 0o644)
	case 17:
		// A touch of a manifest, or a rewrite with the same bytes: no
		// update, nothing held.
		p := filepath.Join(m.root, m.pick([]string{"core/signature.json", "apps/files/appinfo/signature.json"}))
		op = "touch " + p
		if data, e := os.ReadFile(p); e == nil && m.rnd.Intn(2) == 0 {
			err = os.WriteFile(p, data, 0o644)
		} else {
			now := time.Now()
			err = os.Chtimes(p, now, now)
		}
	case 18:
		op = "write through a shared mapping " + f
		err = mmapWrite(f, m.content())
		m.unseen = true
	case 19:
		other := filepath.Join(m.root, "data", fmt.Sprintf("link%d", m.rnd.Intn(1000)))
		op = "hard link " + other + " -> " + f + ", write through it"
		if err = os.Link(f, other); err == nil {
			err = os.WriteFile(other, m.content(), 0o644)
		}
		m.unseen = true
	}
	if err != nil && !os.IsExist(err) {
		op += " (" + err.Error() + ")"
	}
	m.log = append(m.log, op)
}

func (m *model) pick2(s []*verify.Scope) *verify.Scope { return s[m.rnd.Intn(len(s))] }

// TestModel applies random operations to a signed tree while the daemon
// runs; after each batch the daemon's findings must equal a fresh check.
func TestModel(t *testing.T) {
	t.Parallel()
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	seeds := []int64{1, 2}
	if *modelSeeds != "" {
		seeds = nil
		for _, f := range strings.Split(*modelSeeds, ",") {
			var a, b int64
			if n, _ := fmt.Sscanf(f, "%d-%d", &a, &b); n == 2 {
				for i := a; i <= b; i++ {
					seeds = append(seeds, i)
				}
			} else if _, err := fmt.Sscan(f, &a); err == nil {
				seeds = append(seeds, a)
			}
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel() // each seed has its own tree and daemon
			root := filepath.Join(t.TempDir(), "nc")
			keys, err := buildDemo(context.Background(), root)
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(root, t.TempDir())
			// Re-verification passes every 0.5 s: their merges meet the
			// model's changes all the time.
			cfg.ReverifyPeriod = time.Second
			r := start(t, cfg)
			assertSame(t, r, root, "initial scan")
			m := &model{t: t, root: root, rnd: rand.New(rand.NewSource(seed)), keys: keys, d: r.d}
			for i := 0; i < rounds; i++ {
				n, logged := 1+m.rnd.Intn(5), len(m.log)
				for j := 0; j < n; j++ {
					m.step()
				}
				r.waitIdle(t)
				if m.unseen {
					if err := r.d.Rescan(context.Background()); err != nil {
						t.Fatal(err)
					}
					r.waitIdle(t)
					m.unseen = false
				}
				assertSame(t, r, root, fmt.Sprintf("round %d after:\n  %s", i, strings.Join(m.log[logged:], "\n  ")))
			}
		})
	}
}

func verifyCore(root string) *verify.Scope { return verify.NewInstall(root, nil, "").Core() }

// mmapWrite writes data over the start of the file at path through a
// MAP_SHARED mapping (no inotify event); a file shorter than data, or
// empty, gets only what fits.
func mmapWrite(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return err
	}
	copy(m, data)
	err = unix.Msync(m, unix.MS_SYNC)
	syscall.Munmap(m)
	return err
}
