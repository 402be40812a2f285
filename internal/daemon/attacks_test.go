package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/mountns"
	"github.com/integrityd/integrityd/internal/verify"
)

// demoTree builds the signed demo install for a test.
func demoTree(t testing.TB) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "nc")
	if err := buildDemoTree(t.Context(), root); err != nil {
		t.Fatal(err)
	}
	return root
}

// alertsWith counts the alerts for scope:path whose current hash is cur.
func (r *running) alertsWith(key, cur string) int {
	n := 0
	for _, e := range entriesOf(r.logs, sortAlert) {
		m := e.ContextMap()
		if m["integrity_scope"].(string)+":"+m["integrity_path"].(string) == key && m["integrity_current"] == cur {
			n++
		}
	}
	return n
}

// TestAttackSecondPayload: a file already INVALID_HASH (or EXTRA_FILE)
// whose content changes again, the real payload after a decoy, is alerted
// again with the new hash; the same content written again is not.
func TestAttackSecondPayload(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	r := start(t, testConfig(root, t.TempDir()))
	for _, tt := range []struct{ path, key string }{
		{"index.php", "core:index.php"},         // signed: INVALID_HASH
		{"lib/shell.php", "core:lib/shell.php"}, // extra: EXTRA_FILE
	} {
		p := filepath.Join(root, tt.path)
		for i, content := range []string{"<?php // decoy\n", "<?php system($_GET['c']);\n", "<?php system($_GET['c']);\n"} {
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			r.waitIdle(t)
			// One alert per distinct content: the third write repeats
			// the second and must not add one.
			if n := r.alertsWith(tt.key, hashOf(content).String()); n != 1 {
				t.Fatalf("%s, write %d: %d alerts with the current hash of %q, want 1", tt.path, i, n, content)
			}
		}
		if n := alerts(r.logs, sortAlert)[tt.key]; n != 2 {
			t.Errorf("%s: %d alerts for two distinct contents, want 2", tt.path, n)
		}
	}
	assertSame(t, r, root, "after the payloads")
}

// waitAlert waits for an alert for key (scope:path) and returns how long
// it took (for the log, not to assert on), or false after hangGuard.
func (r *running) waitAlert(key string) (time.Duration, bool) {
	begin := time.Now()
	for time.Since(begin) < hangGuard {
		if alerts(r.logs, sortAlert)[key] > 0 {
			return time.Since(begin), true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, false
}

// firstEntry is the index in the log of the first entry whose message
// is msg and whose integrity_scope is scope, or -1.
func (r *running) firstEntry(msg, scope string) int {
	for i, e := range r.logs.All() {
		if e.Message == msg && e.ContextMap()["integrity_scope"] == scope {
			return i
		}
	}
	return -1
}

// alertIndex is the index in the log of the first alert for key
// (scope:path), or -1.
func (r *running) alertIndex(key string) int {
	for i, e := range r.logs.All() {
		if sortOf(e) != sortAlert {
			continue
		}
		if m := e.ContextMap(); fmt.Sprint(m["integrity_scope"])+":"+fmt.Sprint(m["integrity_path"]) == key {
			return i
		}
	}
	return -1
}

// settledMsg is the entry of a held scope checked once quiet (or after
// MaxHold).
const settledMsg = "scope checked after changes"

// fullScans counts the full scans done so far.
func (r *running) fullScans() int { return len(r.logs.FilterMessage("full scan done").All()) }

// TestAttackTouchManifest: touching the manifest (attributes only, or
// rewriting the same bytes) over and over does not make the scope "being
// updated": a backdoor planted meanwhile is alerted at once, not after the
// touches stop or the scope is held (the touches go on until the alert,
// then the backdoor is removed): the alert comes before any entry of core
// checked after a hold.
func TestAttackTouchManifest(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	cfg := testConfig(root, t.TempDir())
	cfg.Settle, cfg.MaxHold = 3*time.Second, time.Minute // as shipped
	r := start(t, cfg)
	manifest := filepath.Join(root, "core/signature.json")
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	touched := make(chan struct{})
	var touches atomic.Int64
	go func() {
		defer close(touched)
		for i := 0; ctx.Err() == nil; i++ {
			now := time.Now()
			if i%2 == 0 {
				os.Chtimes(manifest, now, now) // touch
			} else {
				os.WriteFile(manifest, data, 0o644) // the same bytes
			}
			touches.Add(1)
			time.Sleep(200 * time.Millisecond)
		}
	}()
	waitFor(t, "the touches going on", func() bool { return touches.Load() >= 5 })
	base := filepath.Join(root, "lib/base.php")
	orig, _ := os.ReadFile(base)
	if err := os.WriteFile(base, []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	took, ok := r.waitAlert("core:lib/base.php")
	os.WriteFile(base, orig, 0o644) // the attacker cleans up
	cancel()
	<-touched
	if !ok {
		t.Fatalf("a backdoor live for %v while the manifest was touched every 200 ms: no alert", hangGuard)
	}
	if held := r.firstEntry(settledMsg, "core"); held >= 0 && held < r.alertIndex("core:lib/base.php") {
		t.Error("the backdoor was alerted only after core was held and checked once quiet: touches of the manifest held the scope")
	}
	t.Logf("backdoor alerted %v after it was written, while the manifest was being touched", took.Round(time.Millisecond))
	r.waitIdle(t)
	assertSame(t, r, root, "after the touches")
}

// TestAttackDuringUpdate: while a scope is being updated (a new, validly
// signed manifest is in place and files change), content that matches the
// new manifest is not alerted, but content that matches neither manifest
// is, at once: before the scope is quiet and checked (the updater goes on
// writing until the alert); once quiet, the new manifest is in force.
func TestAttackDuringUpdate(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	keys, err := buildDemo(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(root, t.TempDir())
	cfg.Settle, cfg.MaxHold = 3*time.Second, 2*hangGuard // the update never outlasts MaxHold here
	r := start(t, cfg)
	// The "release": index.php changes and core is re-signed; its files
	// then arrive one by one, as an updater writes them.
	index := filepath.Join(root, "index.php")
	orig, _ := os.ReadFile(index)
	update := []byte("<?php // release 2\n")
	if err := os.WriteFile(index, update, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := keys.Sign(t.Context(), verifyCore(root)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(root, "core/signature.json"))
	// Back to release 1 (the daemon saw the above: let it settle).
	os.WriteFile(index, orig, 0o644)
	if err := keys.Sign(t.Context(), verifyCore(root)); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	assertSame(t, r, root, "release 1")
	indexAlerts := alerts(r.logs, sortAlert)["core:index.php"]
	coreSettled := func() int {
		return len(r.logs.FilterMessage(settledMsg).FilterField(zapString("integrity_scope", "core")).All())
	}
	settledBefore := coreSettled()

	// The update starts: the new manifest, then the new index.php.
	if err := os.WriteFile(filepath.Join(root, "core/signature.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(index, update, 0o644); err != nil {
		t.Fatal(err)
	}
	// Meanwhile, a backdoor elsewhere.
	if err := os.WriteFile(filepath.Join(root, "lib/base.php"), []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The updater goes on writing (the same content): the scope stays
	// being updated until the alert.
	ctx, cancel := context.WithCancel(t.Context())
	updating := make(chan struct{})
	go func() {
		defer close(updating)
		for ctx.Err() == nil {
			os.WriteFile(index, update, 0o644)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	took, ok := r.waitAlert("core:lib/base.php")
	cancel()
	<-updating
	if !ok {
		t.Fatal("a backdoor written during an update (matching neither manifest) was not alerted")
	}
	if coreSettled() != settledBefore {
		t.Fatal("a backdoor written during an update (matching neither manifest) was alerted only once the scope was quiet and checked")
	}
	t.Logf("backdoor alerted %v after it was written, during the update", took.Round(time.Millisecond))
	r.waitIdle(t) // settles: the new manifest is in force
	if n := alerts(r.logs, sortAlert)["core:index.php"]; n != indexAlerts {
		t.Errorf("index.php, which matches the new manifest, was alerted during the update")
	}
	assertSame(t, r, root, "after the update")
	if fs := r.d.Findings(); len(fs) != 1 || fs[0].Path != "lib/base.php" {
		t.Errorf("after the update: %s, want only lib/base.php", render(fs))
	}
}

// TestAttackManifestRemoved: deleting appinfo/signature.json of a signed
// app that is not shipped (Nextcloud then stops checking it) does not end
// its checks quietly: it is "Signature data not found." at once, also
// after a restart; removing the app's directory is a warning naming it.
func TestAttackManifestRemoved(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	keys, err := buildDemo(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(root, "apps/richdocuments")
	for name, content := range map[string]string{"appinfo/info.xml": "<info><id>richdocuments</id></info>\n", "lib/Wopi.php": "<?php // wopi\n"} {
		os.MkdirAll(filepath.Dir(filepath.Join(app, name)), 0o755)
		if err := os.WriteFile(filepath.Join(app, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := keys.Sign(t.Context(), verify.NewInstall(root, nil, "").App("richdocuments", app)); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	r := start(t, testConfig(root, stateDir))
	if err := os.Remove(filepath.Join(app, "appinfo/signature.json")); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.waitAlert("richdocuments:<nil>"); !ok {
		t.Fatalf("no alert for richdocuments after its manifest was deleted; findings: %s", render(r.d.Findings()))
	}
	r.waitIdle(t)
	fs := r.d.Findings()
	if len(fs) != 1 || fs[0].Scope != "richdocuments" || fs[0].Message != verify.MsgNoSignature {
		t.Fatalf("findings %s, want richdocuments: %q", render(fs), verify.MsgNoSignature)
	}
	// A restart keeps it: the state remembers that the app was signed.
	r.stop()
	r = start(t, testConfig(root, stateDir))
	if fs := r.d.Findings(); len(fs) != 1 || fs[0].Scope != "richdocuments" {
		t.Fatalf("after a restart: findings %s, want richdocuments' EXCEPTION", render(fs))
	}
	// The app directory goes: a warning names it, and it is forgotten.
	if err := os.RemoveAll(app); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	var warned bool
	for _, e := range r.logs.FilterField(zapString("message_id", kind.IDScopeGone)).All() {
		warned = warned || e.ContextMap()["integrity_scope"] == "richdocuments"
	}
	if !warned {
		t.Error("no warning naming richdocuments when its directory was removed")
	}
	assertSame(t, r, root, "after the app was removed")
}

// TestAttackMount runs TestAttackMountInNamespace in a mount namespace of
// its own, which the daemon under test shares.
func TestAttackMount(t *testing.T) {
	t.Parallel()
	mountns.Run(t, "TestAttackMountInNamespace")
}

// TestAttackMountInNamespace: a bind mount of a doctored copy over a signed
// directory, and a tmpfs over another, are alerted at once (the mount
// itself, and the files it shows); unmounting heals them. Run by
// TestAttackMount only.
func TestAttackMountInNamespace(t *testing.T) {
	t.Parallel()
	mountns.Enter(t, "TestAttackMount")
	root := demoTree(t)
	root, _ = filepath.EvalSymlinks(root)
	r := start(t, testConfig(root, t.TempDir()))
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// A copy of lib/ with a backdoor, bound over lib/.
	copyDir := filepath.Join(t.TempDir(), "lib")
	run("cp", "-a", filepath.Join(root, "lib"), copyDir)
	if err := os.WriteFile(filepath.Join(copyDir, "base.php"), []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The mount table changes reach the daemon apart from inotify's
	// events: a Sync (through an event) can come before them. Each
	// change is waited for as handled by the loop (which then has its
	// rescan running or queued, so a Sync after it waits for that).
	mounted := func(dir string, yes bool) func() {
		point := filepath.Join(root, dir)
		n := r.sync.mountsHandled(point, yes)
		return func() {
			t.Helper()
			waitFor(t, fmt.Sprintf("the loop handling the mount change at %s (mounted %v)", dir, yes), func() bool {
				return r.sync.mountsHandled(point, yes) > n
			})
		}
	}
	mountAlerts := func() int { return len(r.logs.FilterField(zap.String("message_id", kind.IDMount)).All()) }
	handled := mounted("lib", true)
	run("mount", "--bind", copyDir, filepath.Join(root, "lib"))
	t.Cleanup(func() { exec.Command("umount", "-l", filepath.Join(root, "lib")).Run() })
	handled()
	took, ok := r.waitAlert("core:lib/base.php")
	if !ok {
		t.Fatalf("no alert for lib/base.php after a doctored copy was bound over lib/; findings: %s", render(r.d.Findings()))
	}
	t.Logf("bind mount: lib/base.php alerted %v after the mount", took.Round(time.Millisecond))
	if mountAlerts() == 0 {
		t.Error("no mount alert (MESSAGE_ID IDMount) for the bind mount over lib/")
	}
	r.waitIdle(t)
	assertSame(t, r, root, "with the bind mount")
	// A write below the mount point is seen (the mounted tree is watched).
	if err := os.WriteFile(filepath.Join(root, "lib/private/Server.php"), []byte("<?php // 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.waitAlert("core:lib/private/Server.php"); !ok {
		t.Error("a change inside the bind-mounted tree was not alerted")
	}
	handled = mounted("lib", false)
	run("umount", filepath.Join(root, "lib"))
	handled()
	r.waitIdle(t)
	assertSame(t, r, root, "after the unmount")

	// A tmpfs over core/: every file of it goes missing.
	n := mountAlerts()
	handled = mounted("core", true)
	run("mount", "-t", "tmpfs", "tmpfs", filepath.Join(root, "core"))
	t.Cleanup(func() { exec.Command("umount", "-l", filepath.Join(root, "core")).Run() })
	handled()
	if mountAlerts() == n {
		t.Error("no mount alert for the tmpfs over core/")
	}
	r.waitIdle(t)
	assertSame(t, r, root, "with a tmpfs over core/")
	handled = mounted("core", false)
	run("umount", filepath.Join(root, "core"))
	handled()
	r.waitIdle(t)
	assertSame(t, r, root, "after the tmpfs went")
}

// TestAttackHardLink: a hard link to a signed file placed in data/ (not
// watched) makes no inotify event in the install (the link count change
// goes to watches of the file itself, not of its directory): it is found
// by the next full scan, as HARD_LINK. Once known, a write through it is
// seen with the next batch of any change (hard-linked files are rechecked
// after every batch, like symlinks).
func TestAttackHardLink(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	r := start(t, testConfig(root, t.TempDir()))
	other := filepath.Join(root, "data", "innocent.txt")
	if err := os.Link(filepath.Join(root, "lib/base.php"), other); err != nil {
		t.Skipf("cannot make a hard link here: %v", err)
	}
	if err := r.d.Rescan(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.waitAlert("core:lib/base.php"); !ok {
		t.Fatal("no alert for a hard link to lib/base.php made in data/, after a full scan")
	}
	r.waitIdle(t)
	if fs := r.d.Findings(); len(fs) != 1 || fs[0].Kind != kind.HardLink {
		t.Fatalf("findings %s, want lib/base.php HARD_LINK", render(fs))
	}
	// The payload, through the other name: no event under the install.
	if err := os.WriteFile(other, []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Any change in the install makes a batch, after which linked files
	// are rechecked.
	if err := os.WriteFile(filepath.Join(root, "core/css/other.css"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	assertSame(t, r, root, "after a write through the hard link")
	found := false
	for _, f := range r.d.Findings() {
		found = found || (f.Path == "lib/base.php" && f.Kind == kind.InvalidHash)
	}
	if !found {
		t.Errorf("the write through the hard link was not seen: %s", render(r.d.Findings()))
	}
}

// TestAttackMmapWrite: a write through a MAP_SHARED mapping makes no
// inotify event; the background re-verification finds it within its
// period (2 s here; 10 min by default).
func TestAttackMmapWrite(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	cfg := testConfig(root, t.TempDir())
	cfg.ReverifyPeriod = 2 * time.Second
	r := start(t, cfg)
	f, err := os.OpenFile(filepath.Join(root, "lib/base.php"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	m, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	copy(m, "<?php eval($_GET['x']);//")
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	syscall.Munmap(m)
	took, ok := r.waitAlert("core:lib/base.php")
	if !ok {
		t.Fatalf("a write through a shared mapping was not found by re-verification (period 2 s)")
	}
	t.Logf("mmap write found %v after it was made (re-verification period %s)", took.Round(time.Millisecond), cfg.ReverifyPeriod)
	r.waitIdle(t)
	assertSame(t, r, root, "after the mmap write")
}

// TestAttackHugeFiles: a 1 GiB sparse extra file and a symlink to
// /proc/self/pagemap (which reads as 256 TiB) do not hold up the alert
// for a backdoor written right after them: big files are hashed off the
// alerting path, pseudo files are never read.
func TestAttackHugeFiles(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	r := start(t, testConfig(root, t.TempDir()))
	huge := filepath.Join(root, "lib/huge.bin")
	hugeSeen := r.sync.expectBatch(huge)
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Skipf("no sparse 1 GiB file here: %v", err)
	}
	f.Close()
	pagemapSeen := r.sync.expectBatch(filepath.Join(root, "core/x.php"))
	if err := os.Symlink("/proc/self/pagemap", filepath.Join(root, "core/x.php")); err != nil {
		t.Fatal(err)
	}
	// Their batches handled (the big file handed off the loop) before
	// the backdoor is written.
	for _, seen := range []<-chan struct{}{hugeSeen, pagemapSeen} {
		select {
		case <-seen:
		case <-time.After(hangGuard):
			t.Fatal("no batch with the huge file and the pagemap symlink")
		}
	}
	if err := os.WriteFile(filepath.Join(root, "index.php"), []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	took, ok := r.waitAlert("core:index.php")
	if !ok {
		t.Fatal("no alert for index.php after a 1 GiB file and a pagemap symlink")
	}
	t.Logf("backdoor alerted %v after it was written, behind a 1 GiB file and a pagemap symlink", took.Round(time.Millisecond))
	if _, ok := r.waitAlert("core:core/x.php"); !ok {
		t.Error("the symlink to /proc/self/pagemap was not reported")
	}
	r.waitIdle(t) // the big file hashed, off the loop
	// The order tells whether the big file held up the loop: the
	// backdoor, written after it, must be alerted before it.
	var order []string
	for _, e := range entriesOf(r.logs, sortAlert) {
		order = append(order, e.ContextMap()["integrity_path"].(string))
	}
	if i, j := slices.Index(order, "index.php"), slices.Index(order, "lib/huge.bin"); i < 0 || j < 0 || i > j {
		t.Errorf("alerts in the order %q: the backdoor in index.php waited for the 1 GiB file", order)
	}
	assertSame(t, r, root, "after the huge files")
}

// TestAttackFlood: a new directory with 20,000 files gives every finding
// in the state (and so report and metrics), but the journal gets at most
// alertsPerDir entries for it at once, then a summary with the count.
func TestAttackFlood(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	r := start(t, testConfig(root, t.TempDir()))
	const n = 20000
	tmp := filepath.Join(root, "data", "toolkit") // not checked: unpacked out of sight
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(tmp, fmt.Sprintf("s%05d.php", i)), []byte("<?php // shell\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(root, "lib", "toolkit")); err != nil { // appears at once, full
		t.Fatal(err)
	}
	r.waitIdle(t)
	if got := r.d.Snapshot().Count(); got != n {
		t.Errorf("%d findings, want %d", got, n)
	}
	logged := 0
	for k := range alerts(r.logs, sortAlert) {
		if strings.HasPrefix(k, "core:lib/toolkit/") {
			logged++
		}
	}
	counted := summarized(r, false)
	t.Logf("%d alerts logged one by one, %d counted in summaries", logged, counted)
	if logged > 2*alertsPerDir || logged+counted != n {
		t.Errorf("%d alerts and %d in summaries for %d new files, want at most %d (a couple of rounds) and all counted", logged, counted, n, 2*alertsPerDir)
	}
	assertSame(t, r, root, "after the flood")
}

// TestNonUTF8Names: file names that are not valid UTF-8 are kept exactly:
// the daemon, its saved state (read back after a restart, with no alert
// again) and a one-shot check agree on them.
func TestNonUTF8Names(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	stateDir := t.TempDir()
	r := start(t, testConfig(root, stateDir))
	names := []string{"lib/a\xffb.php", "lib/\xc3(\x80.php", "core/js/\xfe\xfe.js"}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(root, n), []byte("<?php // x\n"), 0o644); err != nil {
			t.Skipf("this file system refuses a non-UTF-8 name: %v", err)
		}
	}
	r.waitIdle(t)
	assertSame(t, r, root, "with non-UTF-8 names")
	r.stop()
	r = start(t, testConfig(root, stateDir))
	r.waitIdle(t)
	assertSame(t, r, root, "after a restart")
	if n := len(entriesOf(r.logs, sortAlert)); n != 0 {
		t.Errorf("%d alerts after a restart for findings already reported (the state lost the names?)", n)
	}
	if n := len(entriesOf(r.logs, sortResolved)); n != 0 {
		t.Errorf("%d resolved entries after a restart", n)
	}
}

// TestAttackFloodFirst: junk files that sort first, in the directory of a
// backdoored signed file and in the same round (here: the first scan),
// do not push the backdoor's own line into the flood summary: the most
// dangerous findings are logged first, and the summary names the kinds it
// folded.
func TestAttackFloodFirst(t *testing.T) {
	root := demoTree(t)
	const junk = 150
	for i := range junk {
		if err := os.WriteFile(filepath.Join(root, "lib", fmt.Sprintf("a%03d.txt", i)), []byte("junk\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "lib", "zz-shell.php"), []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "lib", "base.php"), []byte("<?php // backdoor\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, testConfig(root, t.TempDir()))
	r.waitIdle(t)
	got := alerts(r.logs, sortAlert)
	for _, k := range []string{"core:lib/base.php", "core:lib/zz-shell.php"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no alert of its own for %s among %d alerts: the junk took its place", k, len(got))
		}
	}
	if n := summarized(r, false); n != junk+2-alertsPerDir {
		t.Errorf("%d findings in summaries, want %d", n, junk+2-alertsPerDir)
	}
	sums := r.logs.FilterField(zapString("message_id", kind.IDFlood)).All()
	if len(sums) != 1 || !strings.Contains(sums[0].Message, fmt.Sprintf("(%d EXTRA_FILE)", junk+2-alertsPerDir)) {
		t.Errorf("flood summaries %v: want one naming the kind it folded", sums)
	}
	assertSame(t, r, root, "after the flood")
}

// TestAttackSwapBack: a backdoor renamed over a signed file, then the
// original renamed back (what runs modified PHP through opcache and
// leaves the signed content): the final content is valid, the swap is a
// SWAPPED alert naming the file. One honest replacement (a copy of the
// signed content renamed over it, as rsync does) is none.
func TestAttackSwapBack(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	r := start(t, testConfig(root, t.TempDir()))
	base := filepath.Join(root, "lib", "base.php")
	signed, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	swapped := func() int {
		return len(r.logs.FilterField(zap.String("message_id", kind.IDSwapped)).All())
	}
	// Honest: one new file takes the name, with the signed content.
	index := filepath.Join(root, "index.php")
	content, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, ".index.php.rsync")
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, index); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	if n := swapped(); n != 0 {
		t.Fatalf("%d SWAPPED entries for one honest replacement", n)
	}
	// The attack: original kept aside, backdoor in, original back.
	aside := filepath.Join(root, "data", "orig")
	if err := os.MkdirAll(filepath.Dir(aside), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(base, aside); err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(root, "lib", ".evil")
	if err := os.WriteFile(evil, append(signed, "\nsystem($_GET['c']);\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := r.sync.expectBatch(base)
	if err := os.Rename(evil, base); err != nil {
		t.Fatal(err)
	}
	// A PHP process compiles it now, which takes the daemon's reader
	// long enough to read the event: inotify merges two identical events
	// queued back to back (docs/security.md), a swap with nothing in
	// between is one replacement, and no code ran in between.
	select {
	case <-seen:
	case <-time.After(hangGuard):
		t.Fatalf("no batch with lib/base.php after %v", hangGuard)
	}
	if err := os.Rename(aside, base); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range r.logs.All() {
				t.Log(e.Message, e.ContextMap())
			}
		}
	})
	waitFor(t, "a SWAPPED alert for lib/base.php", func() bool { return swapped() > 0 })
	e := r.logs.FilterField(zap.String("message_id", kind.IDSwapped)).All()[0]
	if m := e.ContextMap(); m["integrity_scope"] != "core" || m["integrity_path"] != "lib/base.php" || !strings.HasPrefix(e.Message, "SWAPPED core lib/base.php") {
		t.Errorf("SWAPPED entry %q %v", e.Message, m)
	}
	r.waitIdle(t) // the snapshot published
	if fs := r.d.Findings(); len(fs) != 0 {
		t.Errorf("findings %v; the final content is the signed one", fs)
	}
}
