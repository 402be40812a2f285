package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest/observer"

	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/state"
	"github.com/integrityd/integrityd/internal/tamperhelper"
	"github.com/integrityd/integrityd/internal/watch"
)

func TestMain(m *testing.M) {
	tamperhelper.Main()
	code := m.Run()
	removeDemoTemplate()
	os.Exit(code)
}

// tamperAs runs a copy of the test binary named tamper-helper, as uid and
// gid 33, on file; it returns its pid and its executable once it has
// written, and it exits when the test ends.
func tamperAs(t *testing.T, file string) (int, string) {
	t.Helper()
	bin := tamperhelper.Binary(t, tamperhelper.Dir(t))
	cmd, _ := tamperhelper.Start(t, bin, file)
	return cmd.Process.Pid, bin
}

// whoTree is a demo tree under a directory uid 33 can reach, with
// lib/base.php writable by it.
func whoTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(tamperhelper.Dir(t), "nc")
	if err := buildDemoTree(t.Context(), root); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "lib/base.php"), 0o666); err != nil {
		t.Fatal(err)
	}
	return root
}

// startWho runs a daemon with who-data on, or skips the test with the
// kernel's reason when fanotify is refused here.
func startWho(t *testing.T, root string) *running {
	t.Helper()
	cfg := testConfig(root, t.TempDir())
	cfg.WhoData = true
	r := start(t, cfg)
	if es := r.logs.FilterMessageSnippet("writers unknown: ").All(); len(es) > 0 {
		// The refusal is one warning with its MESSAGE_ID and the fix.
		if m := es[0].ContextMap(); m["message_id"] != kind.IDWritersUnknown || !strings.Contains(es[0].Message, "who_data = off") {
			t.Errorf("the who-data warning %q (message_id %v) has no MESSAGE_ID %s or no hint", es[0].Message, m["message_id"], kind.IDWritersUnknown)
		}
		t.Skipf("who-data cannot be tested here: %s", es[0].Message)
	}
	if len(r.logs.FilterMessageSnippet("writers known: fanotify").All()) != 1 {
		t.Fatal("no entry saying whether writers are known")
	}
	return r
}

// alertFor waits for the alert of kind for key (scope:path) and returns
// it; it fails t after hangGuard.
func (r *running) alertFor(t *testing.T, kind, key string) observer.LoggedEntry {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		for _, e := range entriesOf(r.logs, sortAlert) {
			m := e.ContextMap()
			if m["integrity_kind"] == kind && m["integrity_scope"].(string)+":"+fmt.Sprint(m["integrity_path"]) == key {
				return e
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no %s alert for %s after %v", kind, key, hangGuard)
	return observer.LoggedEntry{}
}

// checkHelperAlert checks that e names the tamper helper (pid, as uid
// 33) in its fields and its MESSAGE.
func checkHelperAlert(t *testing.T, e observer.LoggedEntry, pid int, bin string) {
	t.Helper()
	m := e.ContextMap()
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	unit := watch.UnitOf(string(cg))
	want := map[string]any{"integrity_pid": int64(pid), "integrity_comm": "tamper-helper", "integrity_exe": bin, "integrity_uid": int64(33)}
	if unit != "" {
		want["integrity_unit"] = unit
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v (%T), want %v (%T)", k, m[k], m[k], v, v)
		}
	}
	line := journal.FindingLine(m["integrity_kind"].(string), m["integrity_scope"].(string), m["integrity_path"].(string), "") +
		journal.WrittenBy(journal.Who{Pid: pid, Exe: bin, Comm: "tamper-helper", UID: 33, Unit: unit})
	if e.Message != line {
		t.Errorf("MESSAGE = %q, want %q", e.Message, line)
	}
	if !strings.Contains(e.Message, fmt.Sprintf(", written by tamper-helper (pid %d, uid 33", pid)) {
		t.Errorf("MESSAGE %q does not name the helper", e.Message)
	}
}

// TestWhoData: a tamper by a named process is alerted with its name, pid
// and uid; a change made before the daemon started has no known writer.
func TestWhoData(t *testing.T) {
	t.Parallel()
	root := whoTree(t)
	if err := os.WriteFile(filepath.Join(root, "index.php"), []byte("<?php // before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startWho(t, root)
	if e := r.alertFor(t, "INVALID_HASH", "core:index.php"); !strings.HasSuffix(e.Message, journal.WriterUnknown) {
		t.Errorf("alert of a change before the start = %q, want it to end %q", e.Message, journal.WriterUnknown)
	}
	begin := time.Now()
	pid, bin := tamperAs(t, filepath.Join(root, "lib/base.php"))
	e := r.alertFor(t, "INVALID_HASH", "core:lib/base.php")
	t.Logf("alerted %v after the write: %s", time.Since(begin), e.Message)
	checkHelperAlert(t, e, pid, bin)
}

// TestWhoDataHardLink: a write through a hard link in data/, which
// inotify does not watch, is alerted at once and attributed to its
// writer.
func TestWhoDataHardLink(t *testing.T) {
	t.Parallel()
	root := whoTree(t)
	r := startWho(t, root)
	other := filepath.Join(root, "data", "innocent.txt")
	if err := os.Link(filepath.Join(root, "lib/base.php"), other); err != nil {
		t.Skipf("cannot make a hard link here: %v", err)
	}
	if err := r.d.Rescan(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e := r.alertFor(t, "HARD_LINK", "core:lib/base.php"); e.ContextMap()["integrity_pid"] != int64(os.Getpid()) {
		t.Logf("HARD_LINK alert: %s (the link's maker is known only with FAN_REPORT_TARGET_FID)", e.Message)
	}
	// Until the state with HARD_LINK is saved (in the watched state
	// directory: a batch, which rechecks the linked files too), then
	// nothing else changes: the writers' kick alone has the linked files
	// rechecked (without who-data, the next batch or re-verification
	// would find the write).
	// Without the kick, only re-verification (every 10 minutes, beyond
	// hangGuard) would find it.
	waitFor(t, "the state with HARD_LINK saved", func() bool {
		st, err := state.Load(r.d.cfg.StateDir)
		if err != nil || st == nil {
			return false
		}
		for _, f := range st.Findings {
			if f.Kind == kind.HardLink && f.Path == "lib/base.php" {
				return true
			}
		}
		return false
	})
	r.waitIdle(t) // the save's batch handled
	scans := r.fullScans()
	begin := time.Now()
	pid, bin := tamperAs(t, other)
	e := r.alertFor(t, "INVALID_HASH", "core:lib/base.php")
	if n := r.fullScans() - scans; n != 0 {
		t.Errorf("%d full scans before the alert, want none: it must come from the writers' kick", n)
	}
	t.Logf("alerted %v after the write through the link: %s", time.Since(begin), e.Message)
	checkHelperAlert(t, e, pid, bin)
}

// TestWhoDataOff: without who-data, a MESSAGE says nothing of writers.
func TestWhoDataOff(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	r := start(t, testConfig(root, t.TempDir()))
	if err := os.WriteFile(filepath.Join(root, "lib/base.php"), []byte("<?php\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := r.alertFor(t, "INVALID_HASH", "core:lib/base.php")
	if e.Message != "INVALID_HASH core lib/base.php" || e.ContextMap()["integrity_pid"] != nil {
		t.Errorf("alert without who-data = %q %v", e.Message, e.ContextMap())
	}
	if n := len(r.logs.FilterMessageSnippet("writers ").All()); n != 0 {
		t.Errorf("%d entries about writers with who-data off", n)
	}
}

// TestWhoDataUnsigned: an alert of the unsigned-code baseline names its
// writer as a signed scope's does (it said "writer unknown" always).
func TestWhoDataUnsigned(t *testing.T) {
	t.Parallel()
	root := whoTree(t)
	layout := root + "/themes/mine/core/templates/layout.php"
	writeFile(t, layout, "<?php // theme")
	if err := os.Chmod(layout, 0o666); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	recordBaseline(t, root, stateDir)
	cfg := testConfig(root, stateDir)
	cfg.WhoData = true
	r := start(t, cfg)
	if es := r.logs.FilterMessageSnippet("writers unknown: ").All(); len(es) > 0 {
		t.Skipf("fanotify refused here: %s", es[0].ContextMap()["error"])
	}
	pid, bin := tamperAs(t, layout)
	e := r.alertFor(t, string(kind.UnsignedChanged), "unsigned:themes/mine/core/templates/layout.php")
	checkHelperAlert(t, e, pid, bin)
}
