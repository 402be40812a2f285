package daemon

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// partsLoop is a loop that is not run, for the tests of its parts alone.
func partsLoop(cfg Config) *loop {
	in := verify.NewInstall("/srv/nc", []string{"/srv/nc/apps"}, "")
	return newLoop(&Daemon{log: zap.NewNop()}, cfg, in, nil)
}

// TestRecordReplaceUnsigned: the unsigned coverage is checked as a scope
// is: its findings are kept under its pseudo-scope, every transition is
// queued for the journal, and its alerts never wait in a fold.
func TestRecordReplaceUnsigned(t *testing.T) {
	l := partsLoop(Config{})
	f := finding.Finding{Scope: baseline.ScopeName, Kind: kind.UnsignedExtra, Path: "themes/x.php"}
	v := l.rec.version
	l.rec.replaceAs(l.uc, "", []finding.Finding{f}, byEvent)
	if got := l.rec.findings.get(baseline.ScopeName, f.Path); got == nil || got.Kind != kind.UnsignedExtra {
		t.Fatalf("finding after replace = %v, want %s", got, kind.UnsignedExtra)
	}
	if l.rec.version == v || !l.rec.changed {
		t.Errorf("replace did not note the change: version %d (was %d), changed %v", l.rec.version, v, l.rec.changed)
	}
	if len(l.rec.folds.by) != 0 {
		t.Errorf("the unsigned coverage's alert waits in a fold: %v", l.rec.folds.by)
	}
	if n := len(l.rep.flood); n != 1 {
		t.Errorf("%d alert groups queued, want 1", n)
	}
	l.rec.replace(l.uc, "themes", nil)
	if got := l.rec.findings.get(baseline.ScopeName, f.Path); got != nil {
		t.Errorf("finding after its key was rechecked clean = %v, want none", got)
	}
}

// TestScopeChecked: a scope without a manifest in force is judged by the
// last one, and nothing interns its paths.
func TestScopeChecked(t *testing.T) {
	s := &scope{sc: &verify.Scope{Name: "files", Dir: "/srv/nc/apps/files"}}
	if s.name() != "files" || s.inForce() != nil || s.interner() != nil {
		t.Errorf("scope without manifests: name %q, inForce %v, interner set %v", s.name(), s.inForce(), s.interner() != nil)
	}
	var c checked = &unsignedCode{}
	if c.name() != baseline.ScopeName || c.inForce() != nil || c.interner() != nil || c.folding(nil) {
		t.Errorf("unsigned coverage: name %q, inForce %v, folding %v", c.name(), c.inForce(), c.folding(nil))
	}
	fresh := []finding.Finding{{Path: "a"}}
	if got := c.withRelease(nil, "", fresh); len(got) != 1 {
		t.Errorf("unsigned coverage's release changed the findings: %v", got)
	}
}

// TestCheckedAbs: a finding's file is below the scope's directory, the
// target of a symlinked app's, or the root for the unsigned coverage
// (while it is checked).
func TestCheckedAbs(t *testing.T) {
	l := partsLoop(Config{})
	l.scopes["files"] = &scope{sc: &verify.Scope{Name: "files", Dir: "/srv/nc/apps/files"}}
	l.scopes["x"] = &scope{sc: &verify.Scope{Name: "x", Dir: "/srv/nc/apps/x"}, real: "/opt/x"}
	for _, tt := range []struct {
		f    finding.Finding
		want string
		ok   bool
	}{
		{finding.Finding{Scope: "files", Path: "lib/A.php"}, "/srv/nc/apps/files/lib/A.php", true},
		{finding.Finding{Scope: "x", Path: "lib/B.php"}, "/opt/x/lib/B.php", true},
		{finding.Finding{Scope: "gone", Path: "a.php"}, "", false},
		{finding.Finding{Scope: baseline.ScopeName, Path: "themes/a.php"}, "", false}, // not checked
	} {
		if got, ok := l.findingPath(&tt.f); got != tt.want || ok != tt.ok {
			t.Errorf("findingPath(%s:%s) = %q %v, want %q %v", tt.f.Scope, tt.f.Path, got, ok, tt.want, tt.ok)
		}
	}
	if got := l.uc.abs("themes/a.php"); got != "/srv/nc/themes/a.php" {
		t.Errorf("unsigned coverage's abs = %q, want the root's", got)
	}
}

// TestRecheckerChurn: a burst over a good part of a scope is one walk of
// it, a few paths are rechecked one by one.
func TestRecheckerChurn(t *testing.T) {
	l := partsLoop(Config{ChurnPaths: 3})
	s := &scope{sc: &verify.Scope{Name: "files", Dir: "/srv/nc/apps/files"}}
	if got := l.rk.churn(s, []string{"a", "b"}); len(got) != 2 {
		t.Errorf("churn of 2 keys below ChurnPaths = %q, want them", got)
	}
	if got := l.rk.churn(s, []string{"a", "b", "c"}); len(got) != 1 || got[0] != "" {
		t.Errorf("churn of 3 keys of an empty scope = %q, want the whole scope", got)
	}
}

// TestSwapLogNoteEntered: the names new files took add up within
// swapWindow and are forgotten after it.
func TestSwapLogNoteEntered(t *testing.T) {
	var sw swapLog
	now := time.Now()
	sw.noteEntered(map[string]int{"/srv/nc/index.php": 1}, now)
	sw.noteEntered(map[string]int{"/srv/nc/index.php": 1}, now.Add(time.Second))
	if e := sw.seen["/srv/nc/index.php"]; e.n != 2 || !e.first.Equal(now) {
		t.Errorf("after two swaps: %+v, want n 2 since %v", e, now)
	}
	if n := sw.swapped("/srv/nc/index.php"); n != 2 {
		t.Errorf("swapped = %d, want 2", n)
	}
	sw.noteEntered(nil, now.Add(swapWindow+time.Second))
	if _, ok := sw.seen["/srv/nc/index.php"]; ok {
		t.Error("a swap older than swapWindow is still remembered")
	}
}

// TestGoneAppsNext: the earliest deadline of the removed apps is the
// loop's next one for them; at it, that app is due (and forgotten), the
// other waits.
func TestGoneAppsNext(t *testing.T) {
	var ga goneApps
	if !ga.next().IsZero() {
		t.Error("a deadline without a removed app")
	}
	now := time.Now()
	ga.by = map[string]goneApp{"a": {deadline: now.Add(2 * time.Second)}, "b": {dir: "/srv/nc/apps/b", deadline: now.Add(time.Second)}}
	if got := ga.next(); !got.Equal(now.Add(time.Second)) {
		t.Errorf("goneApps.next = %v, want %v", got, now.Add(time.Second))
	}
	if got := ga.due(now.Add(time.Second)); len(got) != 1 || got["b"] != "/srv/nc/apps/b" {
		t.Errorf("due at b's deadline = %v, want b", got)
	}
	if _, ok := ga.by["a"]; !ok || len(ga.by) != 1 {
		t.Errorf("after b was due: %v, want a only", ga.by)
	}
}

// TestStagedCovers: a scope's manifest gone is an update step only while
// a staged release has one for it and one was in force.
func TestStagedCovers(t *testing.T) {
	e := &verify.Expected{}
	sg := staged{exps: map[string]*verify.Expected{"core": e}}
	core := &scope{sc: &verify.Scope{Name: "core", Dir: "/srv/nc"}, exp: e}
	files := &scope{sc: &verify.Scope{Name: "files", Dir: "/srv/nc/apps/files"}, exp: e}
	if !sg.covers(core) || sg.exp(core) != e {
		t.Error("the staged release does not cover core")
	}
	if sg.covers(files) || sg.exp(files) != nil {
		t.Error("the staged release covers an app it has no manifest for")
	}
	if core.exp = nil; sg.covers(core) {
		t.Error("covered without a manifest in force")
	}
}
