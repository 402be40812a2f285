package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/verify"
)

// checkRoots is what a one-shot check of root with the apps roots given
// reports (trust: the install's root.crt).
func checkRoots(t testing.TB, root string, appsRoots []string) []verify.Finding {
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
	var out []verify.Finding
	for _, sc := range append([]*verify.Scope{in.Core()}, apps...) {
		res, err := sc.Check(context.Background(), tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.AllFindings()...)
	}
	verify.SortFindings(out)
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
			if f.Kind == verify.DuplicateApp {
				n++
			}
		}
		return n
	}
	if dup() == 0 {
		t.Fatalf("no %s at start: %s", verify.DuplicateApp, render(r.d.Findings()))
	}
	assertSameRoots(t, r, root, roots, "at start")
	waitFor(t, "two re-verification passes", func() bool { return r.passesDone() >= 2 })
	r.waitIdle(t)
	for _, e := range r.logs.All() {
		if strings.HasPrefix(e.Message, "resolved "+string(verify.DuplicateApp)) {
			t.Errorf("a pass resolved the duplicate: %s", e.Message)
		}
	}
	assertSameRoots(t, r, root, roots, "after the passes")
}
