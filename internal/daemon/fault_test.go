package daemon

// Fault tests for the daemon: its state directory full or read-only while
// it runs, files that change while they are hashed, files and directories
// it cannot read, devices, FIFOs and symlink loops appearing under it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest/observer"

	"github.com/integrityd/integrityd/internal/asnobody"
	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/state"
)

// faultMountTmpfs mounts a tmpfs of size at dir until the test ends.
func faultMountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0750", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (no CAP_SYS_ADMIN in this container?): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; detaching it", dir, err, bytes.TrimSpace(out))
			exec.Command("umount", "-l", dir).Run()
		}
	})
}

// faultTree is a signed demo install.
func faultTree(t *testing.T) (string, *demo.Keys) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "nc")
	keys, err := buildDemo(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	return root, keys
}

// faultFill writes a file in dir until the filesystem is full.
func faultFill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v, want ENOSPC", dir, err)
			}
			return p
		}
	}
}

// faultWaitLog waits for n entries whose message starts with msg, or
// false after hangGuard.
func faultWaitLog(logs *observer.ObservedLogs, msg string, n int) bool {
	deadline := time.Now().Add(hangGuard)
	for {
		if faultCountLog(logs, msg) >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func faultCountLog(logs *observer.ObservedLogs, msg string) int {
	n := 0
	for _, e := range logs.All() {
		if strings.HasPrefix(e.Message, msg) {
			n++
		}
	}
	return n
}

// faultWaitAlert waits for an alert on scope:path (without Sync, which
// needs a writable state directory), or false after hangGuard.
func faultWaitAlert(r *running, key string) bool {
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		if alerts(r.logs, sortAlert)[key] > 0 {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// faultSaveRounds waits until the saver has gone round n more times
// (save ticks), counted from now.
func faultSaveRounds(t *testing.T, r *running, n uint64) {
	t.Helper()
	from := r.d.saver.rounds.Load()
	waitFor(t, fmt.Sprintf("%d more save rounds", n), func() bool { return r.d.saver.rounds.Load() >= from+n })
}

func faultDumpLogs(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	for _, e := range logs.All() {
		t.Logf("log: %s %s %v", e.Level, e.Message, e.ContextMap())
	}
}

// faultStateHas reports whether the saved state lists a finding of kind at
// scope:path.
func faultStateHas(t *testing.T, dir string, kind kind.Kind, scope, path string) bool {
	t.Helper()
	st, err := state.Load(dir)
	if err != nil {
		t.Fatalf("the saved state is unusable: %v", err)
	}
	if st == nil {
		return false
	}
	for _, f := range st.Findings {
		if f.Kind == kind && f.Scope == scope && f.Path == path {
			return true
		}
	}
	return false
}

// faultSaveInterval is the state-save interval of the tests that break
// the state directory.
const faultSaveInterval = 100 * time.Millisecond

const (
	faultCannotSave = "cannot save state"
	faultSavedAgain = "state saved again"
)

// TestFaultStateDirFull fills the state directory (a 64 KiB tmpfs) while
// the daemon runs: it still alerts, warns once (not at every save tick),
// keeps the previous state intact, and once space is freed saves again and
// says so.
func TestFaultStateDirFull(t *testing.T) {
	t.Parallel()
	root, _ := faultTree(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(stateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	faultMountTmpfs(t, stateDir, "64k")
	cfg := testConfig(root, stateDir)
	cfg.SaveInterval = faultSaveInterval
	r := start(t, cfg)
	if st, err := state.Load(stateDir); err != nil || st == nil {
		t.Fatalf("no state after the initial scan: %v", err)
	}
	filler := faultFill(t, stateDir)

	if err := os.WriteFile(filepath.Join(root, "lib/base.php"), []byte("<?php // tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	if n := alerts(r.logs, sortAlert)["core:lib/base.php"]; n != 1 {
		faultDumpLogs(t, r.logs)
		t.Fatalf("got %d alerts for lib/base.php with the state directory full, want 1", n)
	}
	assertSame(t, r, root, "state directory full")
	if !faultWaitLog(r.logs, faultCannotSave, 1) {
		faultDumpLogs(t, r.logs)
		t.Fatal("no warning that the state cannot be saved")
	}
	faultSaveRounds(t, r, 3) // three more save ticks, all failing
	if n := faultCountLog(r.logs, faultCannotSave); n != 1 {
		faultDumpLogs(t, r.logs)
		t.Errorf("got %d warnings that the state cannot be saved, want exactly 1 (not one per second)", n)
	}
	if faultStateHas(t, stateDir, kind.InvalidHash, "core", "lib/base.php") {
		t.Error("the state lists the finding although it could not be saved")
	}
	ents, _ := os.ReadDir(stateDir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left in the state directory", e.Name())
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if !faultWaitLog(r.logs, faultSavedAgain, 1) {
		faultDumpLogs(t, r.logs)
		t.Fatal("no \"state saved again\" once space was freed")
	}
	if !faultStateHas(t, stateDir, kind.InvalidHash, "core", "lib/base.php") {
		t.Error("the saved state does not list the INVALID_HASH of lib/base.php")
	}
	faultSaveRounds(t, r, 3)
	if n := faultCountLog(r.logs, faultSavedAgain); n != 1 {
		t.Errorf("got %d \"state saved again\" entries, want 1", n)
	}
}

// TestFaultStateDirReadOnly remounts the state directory read-only while
// the daemon runs: it still alerts, warns once, and saves again once the
// directory is writable again.
func TestFaultStateDirReadOnly(t *testing.T) {
	t.Parallel()
	root, _ := faultTree(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(stateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	faultMountTmpfs(t, stateDir, "1m")
	cfg := testConfig(root, stateDir)
	cfg.SaveInterval = faultSaveInterval
	r := start(t, cfg)
	if out, err := exec.Command("mount", "-o", "remount,ro", stateDir).CombinedOutput(); err != nil {
		t.Skipf("cannot remount the tmpfs read-only: %v: %s", err, bytes.TrimSpace(out))
	}
	remounted := false
	t.Cleanup(func() {
		if !remounted {
			exec.Command("mount", "-o", "remount,rw", stateDir).Run()
		}
	})

	if err := os.WriteFile(filepath.Join(root, "lib/base.php"), []byte("<?php // tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Sync needs a writable state directory: wait for the alert instead.
	if !faultWaitAlert(r, "core:lib/base.php") {
		faultDumpLogs(t, r.logs)
		t.Fatal("no alert for lib/base.php with a read-only state directory")
	}
	if !faultWaitLog(r.logs, faultCannotSave, 1) {
		faultDumpLogs(t, r.logs)
		t.Fatal("no warning that the state cannot be saved")
	}
	faultSaveRounds(t, r, 3)
	if n := faultCountLog(r.logs, faultCannotSave); n != 1 {
		faultDumpLogs(t, r.logs)
		t.Errorf("got %d warnings that the state cannot be saved, want exactly 1 (not one per second)", n)
	}
	if n := alerts(r.logs, sortAlert)["core:lib/base.php"]; n != 1 {
		t.Errorf("got %d alerts for lib/base.php, want 1", n)
	}

	if out, err := exec.Command("mount", "-o", "remount,rw", stateDir).CombinedOutput(); err != nil {
		t.Fatalf("remount rw: %v: %s", err, out)
	}
	remounted = true
	if !faultWaitLog(r.logs, faultSavedAgain, 1) {
		faultDumpLogs(t, r.logs)
		t.Fatal("no \"state saved again\" once the directory was writable")
	}
	if !faultStateHas(t, stateDir, kind.InvalidHash, "core", "lib/base.php") {
		t.Error("the saved state does not list the INVALID_HASH of lib/base.php")
	}
	r.waitIdle(t)
	assertSame(t, r, root, "state directory writable again")
}

// TestFaultFileChangingWhileHashed rewrites a 50 MB signed file again and
// again, alternating its signed content and another, in three ways
// (truncate and write, overwrite in place, replace by rename), and stops
// on the signed content: once idle, the daemon's findings equal a one-shot
// check (none), and every alert it raised on the way was resolved.
func TestFaultFileChangingWhileHashed(t *testing.T) {
	t.Parallel()
	root, keys := faultTree(t)
	const size = 50 << 20
	rnd := rand.New(rand.NewSource(1))
	block := make([]byte, 64<<10)
	rnd.Read(block)
	signed := bytes.Repeat(block, size/len(block))
	rnd.Read(block)
	other := bytes.Repeat(block, size/len(block))
	big := filepath.Join(root, "lib/big.bin")
	if err := os.WriteFile(big, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := keys.Sign(context.Background(), verifyCore(root)); err != nil {
		t.Fatal(err)
	}
	r := start(t, testConfig(root, t.TempDir()))
	assertSame(t, r, root, "initial scan")

	write := func(way int, data []byte) error {
		switch way {
		case 0:
			return os.WriteFile(big, data, 0o644)
		case 1: // in place: the file never has another size
			f, err := os.OpenFile(big, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			for off := 0; off < len(data); off += 1 << 20 {
				if _, err := f.WriteAt(data[off:off+1<<20], int64(off)); err != nil {
					f.Close()
					return err
				}
			}
			return f.Close()
		default:
			tmp := big + ".tmp"
			if err := os.WriteFile(tmp, data, 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, big)
		}
	}
	// A fixed amount of work, not a time: each of the three ways writes
	// the other content, and the next one the signed content back, four
	// times over (each write is about as long as a hash of the file).
	begin := time.Now()
	const rounds = 12
	for round := range rounds {
		way := round % 3
		if err := write(way, other); err != nil {
			t.Fatal(err)
		}
		if err := write((way+1)%3, signed); err != nil {
			t.Fatal(err)
		}
	}
	r.waitIdle(t)
	t.Logf("%d rewrites in %v; %d alerts, %d resolved", 2*rounds, time.Since(begin).Round(time.Millisecond),
		alerts(r.logs, sortAlert)["core:lib/big.bin"], alerts(r.logs, sortResolved)["core:lib/big.bin"])
	assertSame(t, r, root, "after the rewrites")
	if f := r.d.Findings(); len(f) != 0 {
		t.Errorf("got findings %s, want none", render(f))
	}
	// Each distinct content seen is alerted (a read racing a rewrite may
	// see a mix): alerts can outnumber resolved entries, but every path
	// alerted ends with a "resolved" entry.
	last := map[string]string{}
	for _, e := range r.logs.All() {
		if sort := sortOf(e); sort != "" {
			last[e.ContextMap()["integrity_scope"].(string)+":"+fmt.Sprint(e.ContextMap()["integrity_path"])] = sort
		}
	}
	raised, healed := alerts(r.logs, sortAlert), alerts(r.logs, sortResolved)
	for k, n := range raised {
		if last[k] != sortResolved || healed[k] > n {
			t.Errorf("%s: %d alerts, %d resolved, last entry %q; want the last to be resolved", k, n, healed[k], last[k])
		}
	}
}

// ---------------------------------------------------------------------
// Unreadable files and directories, under a daemon that cannot read them.

const (
	faultChildEnv = "INTEGRITYD_FAULT_CHILD"
	faultRootEnv  = "INTEGRITYD_FAULT_ROOT"
	faultStateEnv = "INTEGRITYD_FAULT_STATE"
)

// faultUnreadableChanges are made while the daemon runs, then undone.
var faultUnreadableChanges = []struct {
	path      string
	mode      os.FileMode
	alert     string // scope:path alerted
	alerts    int    // how many alerts it makes
	directory bool
}{
	{"lib/private/Server.php", 0, "core:lib/private/Server.php", 1, false},
	// Already an EXTRA_FILE: unreadable, it still is (not alerted again).
	{"lib/private/extra.php", 0, "core:lib/private/extra.php", 0, false},
	{"apps/dashboard/appinfo/signature.json", 0, "dashboard:<nil>", 1, false},
	{"core/js", 0, "core:core/js", 1, true},
	{"apps/files/lib", 0o311, "files:lib", 1, true},
}

// faultUnreadableBody runs a daemon on root; files and directories become
// unreadable to it, then readable again: each time its findings equal a
// one-shot check, every change is alerted once, and resolved.
func faultUnreadableBody(t *testing.T, root, stateDir string, directories bool) {
	r := start(t, testConfig(root, stateDir))
	assertSame(t, r, root, "initial scan")
	if err := os.WriteFile(filepath.Join(root, "lib/private/extra.php"), []byte("<?php\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "lib/base.php"), []byte("<?php // tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	assertSame(t, r, root, "files modified")
	before := alerts(r.logs, sortAlert)
	var changed []string
	for _, c := range faultUnreadableChanges {
		if c.directory && !directories {
			continue
		}
		if err := os.Chmod(filepath.Join(root, c.path), c.mode); err != nil {
			t.Fatal(err)
		}
		changed = append(changed, c.path)
		defer os.Chmod(filepath.Join(root, c.path), 0o755)
	}
	if f, err := os.Open(filepath.Join(root, "lib/private/Server.php")); err == nil {
		f.Close()
		t.Fatal("chmod 000 does not stop this user from reading: the test needs an unprivileged user")
	}
	if directories {
		r.waitIdle(t)
		// Writable by its owner in a directory it cannot list: the full
		// check cannot see it, the daemon gets its event.
		if err := os.WriteFile(filepath.Join(root, "apps/files/lib/App.php"), []byte("<?php // tampered\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.waitIdle(t)
	raised := alerts(r.logs, sortAlert)
	for _, c := range faultUnreadableChanges {
		if c.directory && !directories {
			continue
		}
		if n := raised[c.alert] - before[c.alert]; n != c.alerts {
			t.Errorf("%s made unreadable: got %d alerts, want %d", c.path, n, c.alerts)
		}
	}
	if raised["core:lib/base.php"] != 1 {
		t.Errorf("lib/base.php: got %d alerts, want 1 (when it was modified)", raised["core:lib/base.php"])
	}
	if got, want := render(r.d.Findings()), render(oneShot(t, root)); got != want {
		t.Errorf("made unreadable: daemon findings differ from a one-shot check\ndaemon:\n%s\ncheck:\n%s", got, want)
	}
	// A full rescan finds the same: nothing is alerted again.
	if err := r.d.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}
	for k, n := range alerts(r.logs, sortAlert) {
		if n != raised[k] {
			t.Errorf("%s: alerted again by a full rescan (%d alerts, %d before)", k, n, raised[k])
		}
	}
	assertSame(t, r, root, "made unreadable: "+strings.Join(changed, ", "))

	for _, c := range faultUnreadableChanges {
		if c.directory && !directories {
			continue
		}
		mode := os.FileMode(0o644)
		if c.directory {
			mode = 0o755
		}
		if err := os.Chmod(filepath.Join(root, c.path), mode); err != nil {
			t.Fatal(err)
		}
	}
	r.waitIdle(t)
	assertSame(t, r, root, "readable again")
	healed := alerts(r.logs, sortResolved)
	for _, c := range faultUnreadableChanges {
		if c.directory && !directories || c.path == "lib/private/extra.php" {
			continue
		}
		if healed[c.alert] != 1 {
			t.Errorf("%s readable again: got %d resolved entries, want 1", c.path, healed[c.alert])
		}
	}
}

// faultUnreadableDaemon runs faultUnreadableBody as a user that permissions
// apply to: as root, in a copy of this test binary running as uid 65534
// on a tree it owns.
func faultUnreadableDaemon(t *testing.T, test string, directories bool) {
	if os.Getenv(faultChildEnv) == test {
		faultUnreadableBody(t, os.Getenv(faultRootEnv), os.Getenv(faultStateEnv), directories)
		return
	}
	if os.Geteuid() != 0 {
		root, _ := faultTree(t)
		faultUnreadableBody(t, root, t.TempDir(), directories)
		return
	}
	base := asnobody.Dir(t)
	root := filepath.Join(base, "nc")
	if err := buildDemoTree(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(base, "state")
	if err := os.Mkdir(stateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, stateDir} {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, 65534, 65534)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	asnobody.Run(t, base, test, faultChildEnv+"="+test, faultRootEnv+"="+root, faultStateEnv+"="+stateDir)
}

// TestFaultDaemonUnreadableFiles: files (and a manifest) that the daemon
// cannot read while it runs: alerted once, findings as a one-shot check's,
// resolved once readable again.
func TestFaultDaemonUnreadableFiles(t *testing.T) {
	t.Parallel()
	faultUnreadableDaemon(t, "TestFaultDaemonUnreadableFiles", false)
}

// ---------------------------------------------------------------------
// Devices, FIFOs, sockets and symlink loops appearing under the daemon.

// TestFaultDaemonSpecialFiles creates FIFOs, devices (as root), links to
// /dev/zero, symlink loops and links to directories (., /, outside the
// tree) while the daemon runs, and replaces signed files by some of them:
// the daemon never hangs (FIFOs are never opened), watches no linked
// directory, and its findings equal a one-shot check, also after later
// batches (symlinks are rechecked after each).
func TestFaultDaemonSpecialFiles(t *testing.T) {
	t.Parallel()
	root, _ := faultTree(t)
	outside := filepath.Join(t.TempDir(), "outside")
	for i := 0; i < 20; i++ {
		if err := os.MkdirAll(filepath.Join(outside, fmt.Sprintf("d%d/sub", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(outside, "d0/a.php"), []byte("<?php\n"), 0o644)
	r := start(t, testConfig(root, t.TempDir()))
	dirsBefore, _ := r.d.Snapshot().WatchedDirs()
	p := func(k string) string { return filepath.Join(root, k) }

	var fifos []string
	mkfifo := func(k string) {
		if err := syscall.Mkfifo(p(k), 0o644); err != nil {
			t.Fatal(err)
		}
		fifos = append(fifos, p(k))
	}
	mkfifo("lib/fifo")
	os.Remove(p("lib/base.php"))
	mkfifo("lib/base.php")
	os.Remove(p("apps/files/js/files.js"))
	mkfifo("apps/files/js/files.js")
	for target, k := range map[string]string{
		"/dev/zero": "lib/link-zero", "fifo": "lib/link-fifo", "loop-b": "lib/loop-a", "loop-a": "lib/loop-b",
		"self": "lib/self", ".": "lib/dot", "/": "lib/slash", outside: "lib/outside", "../..": "lib/private/up",
	} {
		if err := os.Symlink(target, p(k)); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(p("index.php"))
	if err := os.Symlink("/dev/zero", p("index.php")); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := syscall.Mknod(p("lib/zero"), syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
			t.Logf("no device node: %v", err)
		}
		os.Remove(p("status.php"))
		if err := syscall.Mknod(p("status.php"), syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
			t.Logf("no device node: %v", err)
		}
	}

	var opened atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, f := range fifos {
				// Succeeds only while a reader has the FIFO open.
				if w, err := os.OpenFile(f, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					opened.Store(f)
					w.Close()
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	idle := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if err := r.sync.Sync(ctx); err != nil {
			faultDumpLogs(t, r.logs)
			t.Fatalf("%s: the daemon is not idle after %v (hangs?): %v", what, hangGuard, err)
		}
		assertSame(t, r, root, what)
		for _, f := range r.d.Findings() {
			for _, dir := range []string{"lib/dot/", "lib/slash/", "lib/outside/", "lib/private/up/"} {
				if strings.HasPrefix(f.Path, dir) {
					t.Errorf("finding below a linked directory: %+v", f)
				}
			}
		}
		if dirs, _ := r.d.Snapshot().WatchedDirs(); dirs != dirsBefore {
			t.Errorf("%s: %d directories watched, want %d as before (a linked directory was entered)", what, dirs, dirsBefore)
		}
		if f, _ := opened.Load().(string); f != "" {
			t.Fatalf("%s: the FIFO %s was opened for reading", what, f)
		}
	}
	idle("special files created")
	have := map[string]kind.Kind{}
	for _, f := range r.d.Findings() {
		have[f.Scope+":"+f.Path] = f.Kind
	}
	for k, kind := range map[string]kind.Kind{"core:lib/base.php": kind.Exception, "files:js/files.js": kind.Exception,
		"core:index.php": kind.Exception, "core:lib/fifo": kind.ExtraFile, "core:lib/link-zero": kind.ExtraFile,
		"core:lib/loop-a": kind.ExtraFile, "core:lib/self": kind.ExtraFile} {
		if have[k] != kind {
			t.Errorf("%s: got finding %q, want %s", k, have[k], kind)
		}
	}
	// Later batches recheck the symlinks: still no hang, same findings.
	for i := 0; i < 3; i++ {
		os.WriteFile(p("lib/private/Server.php"), []byte(fmt.Sprintf("<?php // %d\n", i)), 0o644)
		idle(fmt.Sprintf("batch %d", i))
	}
	if err := r.d.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}
	idle("full rescan")
}

// TestFaultDaemonUnreadableDirs is TestFaultDaemonUnreadableFiles with
// directories that cannot be listed as well.
func TestFaultDaemonUnreadableDirs(t *testing.T) {
	t.Parallel()
	faultUnreadableDaemon(t, "TestFaultDaemonUnreadableDirs", true)
}
