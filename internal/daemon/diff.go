package daemon

import (
	"cmp"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
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

// report queues t for this round's entries (flushFlood writes them),
// unless it is recorded silently.
func (l *loop) report(t Transition) {
	f := t.New
	if f == nil {
		f = t.Old
	} else if !t.Alert {
		return // recorded silently
	}
	k := floodKey{f.Scope, parentKey(f.Path), t.New == nil}
	if l.flood == nil {
		l.flood = map[floodKey][]Transition{}
	}
	l.flood[k] = append(l.flood[k], t)
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
		if verify.IsExecutableName(filepath.Base(f.Path)) {
			return 1
		}
		return 3
	}
	return 0
}

// who returns what follows the path in an alert's MESSAGE and the fields that name the
// writer of f's file: nothing when who-data is off or f is of a whole
// scope (no file was written: "EXCEPTION core, writer unknown: ..." said
// nothing), WriterUnknown when it is on and the writer is not known.
//
// No waiting: the kernel queues a change's fanotify event in the system
// call that makes it, before inotify's event that led here, and Lookup
// reads the queue before it answers.
func (l *loop) who(f *finding.Finding) (string, []zap.Field) {
	if !l.cfg.WhoData || f.Path == "" {
		return "", nil
	}
	if l.writers == nil {
		return journal.WriterUnknown, nil
	}
	var path string
	if s := l.scopes[f.Scope]; s != nil {
		dir := s.sc.Dir
		if s.real != "" {
			dir = s.real
		}
		path = filepath.Join(dir, filepath.FromSlash(f.Path))
	} else if f.Scope == verify.UnsignedScope && l.ucov != nil {
		path = filepath.Join(l.in.Root, filepath.FromSlash(f.Path)) // the unsigned coverage's keys are the root's
	} else {
		return journal.WriterUnknown, nil
	}
	return l.whoAt(path)
}

// whoAt is who for the file at the absolute path.
func (l *loop) whoAt(path string) (string, []zap.Field) {
	if l.writers == nil {
		return journal.WriterUnknown, nil
	}
	wr, ok := l.writers.Lookup(path)
	if !ok {
		return journal.WriterUnknown, nil
	}
	fs := []zap.Field{zap.Int("integrity_pid", wr.Pid)}
	str := func(key, v string) {
		if v != "" {
			fs = append(fs, zap.String(key, v))
		}
	}
	str("integrity_comm", wr.Comm)
	str("integrity_exe", wr.Exe)
	if wr.UID >= 0 {
		fs = append(fs, zap.Int("integrity_uid", wr.UID))
	}
	str("integrity_unit", wr.Unit)
	if wr.Execed {
		fs = append(fs, zap.Bool("integrity_execed", true))
	}
	return journal.WrittenBy(journal.Who{Pid: wr.Pid, Exe: wr.Exe, Comm: wr.Comm, UID: wr.UID, Unit: wr.Unit, Execed: wr.Execed}), fs
}

// flushFlood writes this round's entries: per directory, the
// alertsPerDir most dangerous ones one by one (in path order within the
// same danger), and one summary of the others naming their kinds. Then it
// starts a new round.
func (l *loop) flushFlood() {
	if len(l.flood) == 0 {
		return
	}
	keys := make([]floodKey, 0, len(l.flood))
	for k := range l.flood {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b floodKey) int {
		return cmp.Or(cmp.Compare(a.scope, b.scope), cmp.Compare(a.dir, b.dir), cmp.Compare(b2i(a.healed), b2i(b.healed)))
	})
	for _, k := range keys {
		ts := l.flood[k]
		slices.SortStableFunc(ts, func(a, b Transition) int {
			fa, fb := a.finding(), b.finding()
			return cmp.Or(cmp.Compare(danger(fa), danger(fb)), cmp.Compare(fa.Path, fb.Path))
		})
		for _, t := range ts[:min(len(ts), alertsPerDir)] {
			who, fields := "", []zap.Field(nil)
			if t.Alert {
				who, fields = l.who(t.New)
			}
			l.d.logTransition(t, who, fields)
		}
		if len(ts) > alertsPerDir {
			l.summarize(k, ts[alertsPerDir:])
		}
	}
	clear(l.flood)
}

// summarize writes the one entry for the transitions of k that were not
// logged one by one (their alerts are counted all the same).
func (l *loop) summarize(k floodKey, rest []Transition) {
	kinds := map[kind.Kind]int{}
	for _, t := range rest {
		kinds[t.finding().Kind]++
		if t.Alert {
			l.d.metrics.alerts.WithLabelValues(string(t.New.Kind)).Inc()
		}
	}
	names := slices.Sorted(maps.Keys(kinds))
	var folded []string
	for _, kind := range names {
		folded = append(folded, fmt.Sprintf("%d %s", kinds[kind], kind))
	}
	where := journal.Token(k.scope)
	if k.dir != "" {
		where += " " + journal.Token(k.dir)
	}
	n := len(rest)
	what := strings.Join(folded, ", ")
	msg, level := fmt.Sprintf("%d more findings in %s (%s), not logged one by one (integrityd report lists them)", n, where, what), l.log.Warn
	if k.healed {
		msg, level = fmt.Sprintf("resolved %d more findings in %s (%s), not logged one by one", n, where, what), l.log.Info
	}
	level(msg, zap.String("message_id", kind.IDFlood), zap.String("integrity_scope", k.scope),
		zap.String("integrity_path", k.dir), zap.Int("integrity_count", n), zap.Int("logged", alertsPerDir),
		zap.Strings("integrity_kinds", folded))
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
	str("integrity_expected", verify.EscapeControl(f.ExpectedValue()))
	str("integrity_current", f.Current.String())
	str("integrity_class", f.Class)
	str("integrity_message", f.Message)
	str("integrity_detail", f.Detail)
	return fs
}
