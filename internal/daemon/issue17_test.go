package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// checkRoots is what a one-shot check of root with the apps roots given
// reports (trust: the install's root.crt).
func checkRoots(t testing.TB, root string, appsRoots []string) []finding.Finding {
	t.Helper()
	in := verify.NewInstall(root, appsRoots, "")
	tr, err := verify.LoadTrust(filepath.Join(root, "resources/codesigning/root.crt"), "")
	if err != nil {
		t.Fatal(err)
	}
	apps, _, err := in.Apps()
	if err != nil {
		t.Fatal(err)
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

func assertSameRoots(t testing.TB, r *running, root string, appsRoots []string, context string) {
	t.Helper()
	got, want := render(r.d.Findings()), render(checkRoots(t, root, appsRoots))
	if got != want {
		t.Fatalf("%s: daemon findings differ from a one-shot check\ndaemon:\n%s\ncheck:\n%s", context, got, want)
	}
}

func copyTree(t testing.TB, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v %s", from, to, err, out)
	}
}

// passesDone counts the re-verification passes finished.
func (r *running) passesDone() int {
	n := 0
	for _, e := range r.logs.FilterMessage("full scan done").All() {
		if e.ContextMap()["reason"] == "re-verification" {
			n++
		}
	}
	return n
}

// TestReverifyKeepsDuplicate: an app in two apps roots is DUPLICATE_APP;
// a re-verification pass does not resolve it (its scopes keep the note
// of the other copy), and the findings stay those of a one-shot check.
func TestReverifyKeepsDuplicate(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	second := filepath.Join(t.TempDir(), "apps2")
	os.MkdirAll(second, 0o755)
	copyTree(t, filepath.Join(root, "apps/files"), filepath.Join(second, "files"))
	roots := []string{filepath.Join(root, "apps"), second}
	cfg := testConfig(root, t.TempDir())
	cfg.AppsPaths = roots
	cfg.ReverifyPeriod = time.Second
	r := start(t, cfg)
	dup := func() int {
		n := 0
		for _, f := range r.d.Findings() {
			if f.Kind == kind.DuplicateApp {
				n++
			}
		}
		return n
	}
	if dup() == 0 {
		t.Fatalf("no %s at start: %s", kind.DuplicateApp, render(r.d.Findings()))
	}
	assertSameRoots(t, r, root, roots, "at start")
	waitFor(t, "two re-verification passes", func() bool { return r.passesDone() >= 2 })
	r.waitIdle(t)
	for _, e := range r.logs.All() {
		if strings.HasPrefix(e.Message, "resolved "+string(kind.DuplicateApp)) {
			t.Errorf("a pass resolved the duplicate: %s", e.Message)
		}
	}
	assertSameRoots(t, r, root, roots, "after the passes")
}

// kindAlerts counts the alerts of findings of kind.
func kindAlerts(r *running, kind kind.Kind) int {
	n := 0
	for _, e := range entriesOf(r.logs, sortAlert) {
		if e.ContextMap()["integrity_kind"] == string(kind) {
			n++
		}
	}
	return n
}

// TestDowngradeByRename: an older, validly signed release of an app
// renamed into the place of the app's directory (the newer one renamed
// away) is VERSION_DOWNGRADE, as rewriting the files in place is: the
// daemon loads the manifest of the new directory (no INVALID_HASH on
// appinfo/info.xml from checking it against the old one), and its other
// findings are those of a one-shot check.
func TestDowngradeByRename(t *testing.T) {
	t.Parallel()
	for _, between := range []bool{false, true} {
		t.Run(map[bool]string{false: "at once", true: "checked between"}[between], func(t *testing.T) {
			t.Parallel()
			downgradeByRename(t, between)
		})
	}
}

// downgradeByRename renames the app away and the older release in; with
// between, the daemon handles the first rename before the second is made.
func downgradeByRename(t *testing.T, between bool) {
	root := filepath.Join(t.TempDir(), "nc")
	keys, err := buildDemo(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(root, "apps/files")
	v1, err := keys.SignedRelease(t.Context(), root, "files", "1.9.0")
	if err != nil {
		t.Fatal(err)
	}
	older := filepath.Join(t.TempDir(), "files-1.9.0")
	copyTree(t, app, older)
	if err := demo.PutFiles(older, v1); err != nil {
		t.Fatal(err)
	}
	r := start(t, testConfig(root, t.TempDir()))
	if fs := r.d.Findings(); len(fs) != 0 {
		t.Fatalf("at start: %s", render(fs))
	}
	if err := os.Rename(app, filepath.Join(t.TempDir(), "files-2.0.0")); err != nil {
		t.Fatal(err)
	}
	if between {
		r.waitIdle(t)
	}
	if err := os.Rename(older, app); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	fs := r.d.Findings()
	if len(fs) != 1 || fs[0].Kind != kind.VersionDowngrade || fs[0].Scope != "files" || fs[0].Path != "appinfo/info.xml" ||
		!strings.Contains(fs[0].Message, "release 1.9.0 is older than 2.0.0") {
		t.Errorf("after the rename: %s, want one %s of files", render(fs), kind.VersionDowngrade)
	}
	if n := kindAlerts(r, kind.InvalidHash); n != 0 {
		t.Errorf("%d %s alerts: the new directory was checked against the old manifest", n, kind.InvalidHash)
	}
	var rest []finding.Finding
	for _, f := range fs {
		if f.Kind != kind.VersionDowngrade {
			rest = append(rest, f)
		}
	}
	if got, want := render(rest), render(oneShot(t, root)); got != want {
		t.Errorf("after the rename, besides the downgrade: daemon\n%s\none-shot check\n%s", got, want)
	}
}

// TestDowngradeOrdersAsPHP: releases are ordered as Nextcloud orders them
// (version_compare), not as strings: 9.9.9 after 10.0.0 is a downgrade,
// and 10.0.0 after 2.0.0 is not.
func TestDowngradeOrdersAsPHP(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	keys, err := buildDemo(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(root, "apps/files")
	v10, err := keys.SignedRelease(t.Context(), root, "files", "10.0.0")
	if err != nil {
		t.Fatal(err)
	}
	v9, err := keys.SignedRelease(t.Context(), root, "files", "9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, testConfig(root, t.TempDir()))
	if err := demo.PutFiles(app, v10); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	if fs := r.d.Findings(); len(fs) != 0 {
		t.Errorf("10.0.0 over 2.0.0: %s", render(fs))
	}
	if err := demo.PutFiles(app, v9); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	fs := r.d.Findings()
	if len(fs) != 1 || fs[0].Kind != kind.VersionDowngrade || !strings.Contains(fs[0].Message, "release 9.9.9 is older than 10.0.0") {
		t.Errorf("9.9.9 over 10.0.0: %s, want %s", render(fs), kind.VersionDowngrade)
	}
}

// TestNestedAppsRoots: with apps roots apps and apps/nested, in either
// order, an app of apps/nested is that root's (the deepest apps root
// holding a path wins, verify.Install.Locate): a backdoor in
// apps/nested/files/lib/App.php is alerted at once, not only by the next
// full scan, and the findings are those of a one-shot check.
func TestNestedAppsRoots(t *testing.T) {
	t.Parallel()
	for _, nestedFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "apps first", true: "nested first"}[nestedFirst], func(t *testing.T) {
			t.Parallel()
			root := demoTree(t)
			apps, nested := filepath.Join(root, "apps"), filepath.Join(root, "apps/nested")
			if err := os.Mkdir(nested, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(apps, "files"), filepath.Join(nested, "files")); err != nil {
				t.Fatal(err)
			}
			roots := []string{apps, nested}
			if nestedFirst {
				roots = []string{nested, apps}
			}
			cfg := testConfig(root, t.TempDir())
			cfg.AppsPaths = roots
			cfg.ReverifyPeriod = -1 // only events (and a full scan each hour)
			r := start(t, cfg)
			assertSameRoots(t, r, root, roots, "at start")
			scans := r.fullScans()
			if err := appendTo(filepath.Join(nested, "files/lib/App.php"), "eval($_GET['x']);\n"); err != nil {
				t.Fatal(err)
			}
			r.waitIdle(t)
			if n := alerts(r.logs, sortAlert)["files:lib/App.php"]; n != 1 {
				t.Errorf("the backdoor in apps/nested/files/lib/App.php was alerted %d times, want 1: %s", n, render(r.d.Findings()))
			}
			if r.fullScans() != scans {
				t.Error("a full scan ran: the alert must come from the event")
			}
			assertSameRoots(t, r, root, roots, "after the backdoor")
		})
	}
}

// TestLocateDeepest: Install.Locate, the one rule for which app a path
// is in, takes the deepest apps root in either order, and maps a path
// below the target of a symlinked app to that app.
func TestLocateDeepest(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	apps, nested := filepath.Join(root, "apps"), filepath.Join(root, "apps/nested")
	os.Mkdir(nested, 0o755)
	target := filepath.Join(t.TempDir(), "dashboard-real")
	if err := os.Rename(filepath.Join(apps, "dashboard"), target); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(nested, "dashboard")); err != nil {
		t.Fatal(err)
	}
	for _, roots := range [][]string{{apps, nested}, {nested, apps}} {
		in := verify.NewInstall(root, roots, "")
		if _, _, err := in.Apps(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			path string
			want verify.Location
		}{
			{nested + "/files/lib/App.php", verify.Location{AppsRoot: nested, App: nested + "/files", Rest: "lib/App.php"}},
			{apps + "/files/lib/App.php", verify.Location{AppsRoot: apps, App: apps + "/files", Rest: "lib/App.php"}},
			{nested, verify.Location{AppsRoot: apps, Above: true}},
			{apps, verify.Location{Above: true}},
			{root, verify.Location{Above: true}},
			{nested + "/files", verify.Location{AppsRoot: nested, App: nested + "/files"}},
			{target + "/lib/x.php", verify.Location{AppsRoot: nested, App: nested + "/dashboard", Rest: "lib/x.php", Target: target}},
			{root + "/lib/base.php", verify.Location{}},
		} {
			if got := in.Locate(c.path); got != c.want {
				t.Errorf("roots %v: Locate(%s) = %+v, want %+v", roots, c.path, got, c.want)
			}
		}
	}
}

// TestSymlinkedAppAlert: an app directory that is a symlink (to a target
// outside the install) is checked through the link, and a backdoor
// written through the target's path is alerted once, at once.
func TestSymlinkedAppAlert(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	target := filepath.Join(t.TempDir(), "files-real")
	if err := os.Rename(filepath.Join(root, "apps/files"), target); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(root, "apps/files")); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(root, t.TempDir())
	cfg.ReverifyPeriod = -1
	r := start(t, cfg)
	assertSame(t, r, root, "at start")
	scans := r.fullScans()
	if err := appendTo(filepath.Join(target, "lib/App.php"), "eval($_GET['x']);\n"); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	if n := alerts(r.logs, sortAlert)["files:lib/App.php"]; n != 1 {
		t.Errorf("the backdoor in the symlinked app was alerted %d times, want 1: %s", n, render(r.d.Findings()))
	}
	if r.fullScans() != scans {
		t.Error("a full scan ran: the alert must come from the event")
	}
	assertSame(t, r, root, "after the backdoor")
}
