package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/kind"
)

// TestAttackDowngrade: an older, validly signed release of an app or of
// core put in place of the newer one the daemon verified (Nextcloud's
// check accepts it; Nextcloud runs the older app) is VERSION_DOWNGRADE,
// also after a restart, until the newer release is back or an admin
// accepts it; the highest release seen is what counts.
func TestAttackDowngrade(t *testing.T) {
	t.Parallel()
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
	v2, err := keys.SignedRelease(t.Context(), root, "files", "2.0.0") // as installed
	if err != nil {
		t.Fatal(err)
	}
	put := func(dir string, m map[string][]byte) {
		t.Helper()
		if err := demo.PutFiles(dir, m); err != nil {
			t.Fatal(err)
		}
	}
	stateDir := t.TempDir()
	r := start(t, testConfig(root, stateDir))
	if fs := r.d.Findings(); len(fs) != 0 {
		t.Fatalf("at start: %s", render(fs))
	}
	downgraded := func(context, scope, path, msg string) {
		t.Helper()
		fs := r.d.Findings()
		if len(fs) != 1 || fs[0].Kind != kind.VersionDowngrade || fs[0].Scope != scope || fs[0].Path != path || !strings.Contains(fs[0].Message, msg) {
			t.Errorf("%s: %s, want %s %s %s (%q)", context, render(fs), kind.VersionDowngrade, scope, path, msg)
		}
	}
	put(app, v1)
	r.waitIdle(t)
	downgraded("1.9.0 over 2.0.0", "files", "appinfo/info.xml", "release 1.9.0 is older than 2.0.0")
	if n := alerts(r.logs, sortAlert)["files:appinfo/info.xml"]; n != 1 {
		t.Errorf("downgrade alerted %d times, want 1", n)
	}
	// A restart remembers 2.0.0, and does not alert again.
	r.stop()
	r = start(t, testConfig(root, stateDir))
	r.waitIdle(t)
	downgraded("after a restart", "files", "appinfo/info.xml", "release 1.9.0 is older than 2.0.0")
	if n := alerts(r.logs, sortAlert)["files:appinfo/info.xml"]; n != 0 {
		t.Errorf("after a restart, the downgrade was alerted again (%d)", n)
	}
	// The newer release back: resolved; the older again: alerted again.
	put(app, v2)
	r.waitIdle(t)
	if fs := r.d.Findings(); len(fs) != 0 {
		t.Errorf("2.0.0 back: %s", render(fs))
	}
	put(app, v1)
	r.waitIdle(t)
	downgraded("1.9.0 again", "files", "appinfo/info.xml", "older than 2.0.0")
	// An admin accepts it: 1.9.0 is the release from now on.
	if _, err := r.d.AcceptReleases(t.Context(), []string{"dashboard"}, "test"); err == nil || !strings.Contains(err.Error(), "nothing to accept") {
		t.Errorf("accept of a scope without a downgrade: %v", err)
	}
	if _, err := r.d.AcceptReleases(t.Context(), []string{"nope"}, "test"); err == nil {
		t.Error("accept of an unknown scope: no error")
	}
	got, err := r.d.AcceptReleases(t.Context(), []string{"files"}, "uid 0")
	if err != nil || len(got) != 1 || got[0] != "files" {
		t.Fatalf("accept: %v %v", got, err)
	}
	r.waitIdle(t)
	if fs := r.d.Findings(); len(fs) != 0 {
		t.Errorf("after the accept: %s", render(fs))
	}
	if rel := r.d.Snapshot().meta.Releases["files"]; rel != "1.9.0" {
		t.Errorf("recorded release after the accept: %q, want 1.9.0", rel)
	}
	if r.logs.FilterMessage("release downgrade of files accepted (uid 0, was 2.0.0)").Len() != 1 {
		t.Error("the accept is not in the journal")
	}

	// Core: version.php says an older release, re-signed.
	vp := filepath.Join(root, "version.php")
	os.WriteFile(vp, []byte("<?php\n$OC_Version = array(29,0,9,2);\n$OC_VersionString = '29.0.9';\n$OC_Channel = 'stable';\n"), 0o644)
	if err := keys.Sign(t.Context(), verifyCore(root)); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	downgraded("core 29.0.9.2 over 30.0.0.0", "core", "version.php", "release 29.0.9.2 is older than 30.0.0.0")
}
