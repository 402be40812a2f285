package daemon

import (
	"maps"
	"slices"
	"testing"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
)

func TestFindingSet(t *testing.T) {
	fs := newFindingSet()
	for _, p := range []string{"a/b/c.php", "a/d.php", "e.php"} {
		fs.put(finding.Finding{Scope: "core", Path: p, Kind: kind.ExtraFile})
	}
	fs.put(finding.Finding{Scope: "core", Path: "a/d.php", Kind: kind.InvalidHash}) // replaces, counted once
	fs.put(finding.Finding{Scope: "files", Path: "x.php", Kind: kind.FileMissing})
	keys := func(m map[string]*finding.Finding) []string { return slices.Sorted(maps.Keys(m)) }
	for _, tc := range []struct {
		scope, key string
		want       []string
	}{
		{"core", "", []string{"a/b/c.php", "a/d.php", "e.php"}},
		{"core", "a", []string{"a/b/c.php", "a/d.php"}},
		{"core", "a/b", []string{"a/b/c.php"}},
		{"core", "a/d.php", []string{"a/d.php"}},
		{"core", "a/x", nil},
		{"core", "e", nil}, // a prefix that is no directory
		{"files", "", []string{"x.php"}},
		{"gone", "", nil},
	} {
		if got := keys(fs.part(tc.scope, tc.key)); !slices.Equal(got, tc.want) {
			t.Errorf("part(%q, %q) = %q, want %q", tc.scope, tc.key, got, tc.want)
		}
	}
	if f := fs.get("core", "a/d.php"); f == nil || f.Kind != kind.InvalidHash {
		t.Errorf("get a/d.php = %+v", f)
	}

	// A published map never changes: apply copies it first.
	snap := fs.share()
	before := keys(snap["core"])
	healed := fs.get("core", "a/b/c.php")
	fresh := finding.Finding{Scope: "core", Path: "n/new.php", Kind: kind.ExtraFile}
	fs.apply("core", []Transition{{Old: healed}, {New: &fresh, Alert: true}}, nil)
	if got := keys(snap["core"]); !slices.Equal(got, before) {
		t.Errorf("the shared map changed: %q, was %q", got, before)
	}
	if got := keys(fs.part("core", "")); !slices.Equal(got, []string{"a/d.php", "e.php", "n/new.php"}) {
		t.Errorf("after apply: %q", got)
	}
	// The directory counts follow: a/b holds nothing now, n one finding.
	if got := keys(fs.part("core", "a/b")); got != nil {
		t.Errorf("part a/b after its finding healed: %q", got)
	}
	if got := keys(fs.part("core", "n")); !slices.Equal(got, []string{"n/new.php"}) {
		t.Errorf("part n: %q", got)
	}
	if n := fs.drop("core"); n != 3 || fs.len("core") != 0 || fs.part("core", "a") == nil || len(fs.part("core", "a")) != 0 {
		t.Errorf("drop: %d, left %d", n, fs.len("core"))
	}
	if got := fs.scopes(); !slices.Equal(got, []string{"files"}) {
		t.Errorf("scopes after drop: %q", got)
	}
}
