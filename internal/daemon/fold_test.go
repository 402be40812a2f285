package daemon

import (
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
)

// TestFoldsTake: which journal entries a fold holds back and which it
// lets through, step by step.
func TestFoldsTake(t *testing.T) {
	f := func(k kind.Kind, path, content string) *finding.Finding {
		x := &finding.Finding{Scope: "core", Kind: k, Path: path}
		if content != "" {
			x.Current = hashOf(content)
		}
		return x
	}
	appear := func(x *finding.Finding) Transition { return Transition{New: x, Alert: true} }
	heal := func(x *finding.Finding) Transition { return Transition{Old: x} }
	change := func(old, x *finding.Finding) Transition { return Transition{Old: old, New: x, Alert: true} }
	type step struct {
		t     Transition
		open  bool
		now   int // number of transitions the journal gets now
		alert bool
	}
	base := f(kind.InvalidHash, "lib/base.php", "v2")
	tmp := f(kind.ExtraFile, "lib/.base.php.a1b2c3", "v2")
	shell := f(kind.ExtraFile, "lib/s.php", "shell")
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"a first alert waits for its round", []step{{appear(base), true, 0, false}}},
		{"no fold without a manifest to fold under", []step{{appear(base), false, 1, true}}},
		{"a change of a known finding is never held", []step{{change(f(kind.InvalidHash, "lib/base.php", "v1"), base), true, 1, true}}},
		{"an exception is never held", []step{{appear(&finding.Finding{Scope: "core", Kind: kind.Exception, Message: "x"}), true, 1, true}}},
		{"rsync's temporary file renamed away is a step", []step{{appear(base), true, 0, false}, {appear(tmp), true, 0, false}, {heal(tmp), true, 0, false}}},
		{"a web shell used and removed is logged", []step{{appear(base), true, 0, false}, {appear(shell), true, 0, false}, {heal(shell), true, 2, true}}},
		{"a web shell healed by a new manifest is a step", []step{{appear(base), true, 0, false}, {appear(shell), true, 0, false}, {heal(shell), false, 0, false}}},
		{"a file back at its signed content is logged", []step{{appear(tmp), true, 0, false}, {appear(base), true, 0, false}, {heal(base), true, 2, true}}},
		{"a missing file put back is a step", []step{{appear(base), true, 0, false}, {appear(f(kind.FileMissing, "lib/x.php", "")), true, 0, false}, {heal(f(kind.FileMissing, "lib/x.php", "")), true, 0, false}}},
		{"a second payload is logged with the first", []step{{appear(tmp), true, 0, false}, {appear(shell), true, 0, false}, {change(shell, f(kind.ExtraFile, "lib/s.php", "shell2")), true, 2, true}}},
		{"missing then back with other content stays held", []step{{appear(tmp), true, 0, false}, {appear(f(kind.FileMissing, "lib/y.php", "")), true, 0, false}, {change(f(kind.FileMissing, "lib/y.php", ""), f(kind.InvalidHash, "lib/y.php", "v2")), true, 0, false}}},
		{"a heal with no fold is logged", []step{{heal(base), true, 1, false}}},
		{"a file alerted in this fold, then wrong again, is logged at once", []step{{appear(tmp), true, 0, false}, {appear(shell), true, 0, false}, {heal(shell), true, 2, true}, {appear(f(kind.ExtraFile, "lib/s.php", "shell2")), true, 1, true}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var fs folds
			now := time.Unix(0, 0)
			for i, st := range tt.steps {
				got := fs.take("core", st.t, st.open, st.open, nil, now)
				if len(got) != st.now {
					t.Fatalf("step %d: %d entries now, want %d", i, len(got), st.now)
				}
				if st.alert && !got[0].Alert {
					t.Fatalf("step %d: the entry now is not an alert", i)
				}
			}
		})
	}
}

// TestFoldEnd: a fold ends once quiet, and at the latest most after it
// began however often it is touched.
func TestFoldEnd(t *testing.T) {
	t0 := time.Unix(1000, 0)
	fo := &fold{since: t0, last: t0}
	if got := fo.end(time.Second, time.Minute, time.Time{}); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("quiet end %v", got)
	}
	fo.last = t0.Add(59500 * time.Millisecond)
	if got := fo.end(time.Second, time.Minute, time.Time{}); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("a fold touched until its limit ends at %v, want the limit", got)
	}
	fs := folds{by: map[string]*fold{"a": {since: t0, last: t0.Add(5 * time.Second)}, "b": {since: t0, last: t0}}}
	if got := fs.due(time.Second, time.Minute); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("due %v, want the earliest end", got)
	}
}
