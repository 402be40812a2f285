package daemon

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/watch"
)

// reporter writes the journal's entries of one round of the loop (a
// batch, a merge): the transitions queued, per directory the most
// dangerous ones one by one and a summary of the rest, each alert with
// who wrote its file. Only the loop touches it.
type reporter struct {
	d       *Daemon
	flood   map[floodKey][]Transition // this round's entries, by directory
	whoData bool                      // alerts say who wrote (Config.WhoData)
	writers *watch.Writers            // nil: who-data off or refused
	// pathOf is the absolute path of a finding's file (false: unknown).
	pathOf func(*finding.Finding) (string, bool)
}

// report queues t for this round's entries (flushFlood writes them),
// unless it is recorded silently.
func (r *reporter) queue(t Transition) {
	f := t.New
	if f == nil {
		f = t.Old
	} else if !t.Alert {
		return // recorded silently
	}
	k := floodKey{f.Scope, parentKey(f.Path), t.New == nil}
	if r.flood == nil {
		r.flood = map[floodKey][]Transition{}
	}
	r.flood[k] = append(r.flood[k], t)
}

// who returns what follows the path in an alert's MESSAGE and the fields that name the
// writer of f's file: nothing when who-data is off or f is of a whole
// scope (no file was written: "EXCEPTION core, writer unknown: ..." said
// nothing), WriterUnknown when it is on and the writer is not known.
//
// The kernel queues a change's fanotify event in the system call that
// makes it, before inotify's event that led here; Lookup waits (a few ms
// at most) until the writers' reader has read the queue, reading nothing
// on the loop itself.
func (r *reporter) who(f *finding.Finding) (string, []zap.Field) {
	if !r.whoData || f.Path == "" {
		return "", nil
	}
	if r.writers == nil {
		return journal.WriterUnknown, nil
	}
	path, ok := r.pathOf(f)
	if !ok {
		return journal.WriterUnknown, nil
	}
	return r.whoAt(path)
}

// whoAt is who for the file at the absolute path.
func (r *reporter) whoAt(path string) (string, []zap.Field) {
	if r.writers == nil {
		return journal.WriterUnknown, nil
	}
	wr, ok := r.writers.Lookup(path)
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

// flush writes this round's entries: per directory, the
// alertsPerDir most dangerous ones one by one (in path order within the
// same danger), and one summary of the others naming their kinds. Then it
// starts a new round.
func (r *reporter) flush() {
	if len(r.flood) == 0 {
		return
	}
	keys := make([]floodKey, 0, len(r.flood))
	for k := range r.flood {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b floodKey) int {
		return cmp.Or(cmp.Compare(a.scope, b.scope), cmp.Compare(a.dir, b.dir), cmp.Compare(b2i(a.healed), b2i(b.healed)))
	})
	for _, k := range keys {
		ts := r.flood[k]
		slices.SortStableFunc(ts, func(a, b Transition) int {
			fa, fb := a.finding(), b.finding()
			return cmp.Or(cmp.Compare(danger(fa), danger(fb)), cmp.Compare(fa.Path, fb.Path))
		})
		for _, t := range ts[:min(len(ts), alertsPerDir)] {
			who, fields := "", []zap.Field(nil)
			if t.Alert {
				who, fields = r.who(t.New)
			}
			r.d.logTransition(t, who, fields)
		}
		if len(ts) > alertsPerDir {
			r.summarize(k, ts[alertsPerDir:])
		}
	}
	clear(r.flood)
}

// summarize writes the one entry for the transitions of k that were not
// logged one by one (their alerts are counted all the same).
func (r *reporter) summarize(k floodKey, rest []Transition) {
	kinds := map[kind.Kind]int{}
	for _, t := range rest {
		kinds[t.finding().Kind]++
		if t.Alert {
			r.d.metrics.alerts.WithLabelValues(string(t.New.Kind)).Inc()
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
	msg, level := fmt.Sprintf("%d more findings in %s (%s), not logged one by one (integrityd report lists them)", n, where, what), r.d.log.Warn
	if k.healed {
		msg, level = fmt.Sprintf("resolved %d more findings in %s (%s), not logged one by one", n, where, what), r.d.log.Info
	}
	level(msg, zap.String("message_id", kind.IDFlood), zap.String("integrity_scope", k.scope),
		zap.String("integrity_path", k.dir), zap.Int("integrity_count", n), zap.Int("logged", alertsPerDir),
		zap.Strings("integrity_kinds", folded))
}
