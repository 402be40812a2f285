package daemon

import (
	"path/filepath"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
)

// Transition is one change of a finding between what the daemon knew
// (Old) and what a check found (New).
type Transition struct {
	Old, New *finding.Finding // Old nil: it appeared; New nil: it healed
	// Alert says the journal gets an alert: a finding that appears, or
	// changes kind, or (an EXCEPTION) reason, or whose content changes
	// again (a file already INVALID_HASH or EXTRA_FILE that gets another
	// payload: one alert per distinct content). A healed finding gets a
	// "resolved" entry; other changes (an extra file that becomes
	// unreadable, another detail) are recorded silently.
	Alert bool
}

// diff is the alert rule: the transitions from old (the findings known for
// a part of a scope, by path) to fresh (a check of that part). It is a
// pure function.
func diff(old map[string]*finding.Finding, fresh []finding.Finding) []Transition {
	var out []Transition
	seen := make(map[string]bool, len(fresh))
	for i := range fresh {
		f := &fresh[i]
		seen[f.Path] = true
		o, ok := old[f.Path]
		switch {
		case !ok:
			out = append(out, Transition{New: f, Alert: true})
		case o.Kind != f.Kind || (f.Kind == kind.Exception && o.Message != f.Message) ||
			(!f.Current.IsZero() && f.Current != o.Current):
			out = append(out, Transition{Old: o, New: f, Alert: true})
		case *o != *f:
			out = append(out, Transition{Old: o, New: f})
		}
	}
	for p, o := range old {
		if !seen[p] {
			out = append(out, Transition{Old: o})
		}
	}
	return out
}

// alertsPerDir is how many entries (alerts, and apart resolved entries)
// the journal gets for one directory of one scope in one round of the
// loop (a batch, a merge); the rest are counted in one summary entry. The
// findings themselves are all in the state, the report and the metrics.
const alertsPerDir = 100

// floodKey groups journal entries by scope, directory and sort.
type floodKey struct {
	scope, dir string
	healed     bool
}

// danger orders the findings of one directory for the journal, most
// dangerous first, so that a flood of junk cannot push the one line that
// matters into a summary: changed code (a signed file's content, an
// older release, what cannot be verified, the unsigned code's changes),
// then new executable files (a web shell), then missing files, then
// other new files.
func danger(f *finding.Finding) int {
	switch f.Kind {
	case kind.FileMissing, kind.UnsignedMissing:
		return 2
	case kind.ExtraFile, kind.UnsignedExtra:
		if baseline.IsExecutableName(filepath.Base(f.Path)) {
			return 1
		}
		return 3
	}
	return 0
}

// finding is the finding t is about: the new one, or the healed one.
func (t Transition) finding() *finding.Finding {
	if t.New != nil {
		return t.New
	}
	return t.Old
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// logTransition writes t to the journal (and counts alerts); an alert's
// MESSAGE has who after its path and its fields include whoFields
// (loop.who).
func (d *Daemon) logTransition(t Transition, who string, whoFields []zap.Field) {
	switch {
	case t.New == nil:
		d.log.Info(journal.ResolvedLine(string(t.Old.Kind), t.Old.Scope, t.Old.Path), append(alertFields(t.Old), zap.String("message_id", kind.IDResolved))...)
	case t.Alert:
		f := t.New
		d.metrics.alerts.WithLabelValues(string(f.Kind)).Inc()
		fields := append(append(alertFields(f), zap.String("message_id", journal.AlertID(string(f.Kind)))), whoFields...)
		msg := ""
		if journal.LineHasMessage(string(f.Kind)) {
			msg = f.Message
		}
		line := journal.AlertLine(string(f.Kind), f.Scope, f.Path, who, msg)
		if f.Kind == kind.Exception && f.Path == "" || highPriority(f) {
			d.log.Error(line, fields...)
			return
		}
		d.log.Warn(line, fields...)
	}
}

func alertFields(f *finding.Finding) []zap.Field {
	fs := []zap.Field{zap.String("integrity_kind", string(f.Kind)), zap.String("integrity_scope", f.Scope)}
	str := func(key, v string) {
		if v != "" {
			fs = append(fs, zap.String(key, v))
		}
	}
	str("integrity_path", f.Path)
	str("integrity_expected", finding.EscapeControl(f.ExpectedValue()))
	str("integrity_current", f.Current.String())
	str("integrity_class", f.Class)
	str("integrity_message", f.Message)
	str("integrity_detail", f.Detail)
	return fs
}
