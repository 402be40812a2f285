package daemon

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// An update by hand (tar or rsync over the tree, cp, a configuration
// management tool) changes hundreds of a scope's files before its new
// signed manifest arrives, if it arrives at all: nothing tells it from
// tampering until then. So a scope's alerts are folded: the first alert
// of a scope that has a manifest in force and no new or staged one is
// logged at once, as always (it names its file: a lone backdoor is
// alerted at once); the alerts that follow it are held back until the
// scope has been quiet for Settle (at most MaxHold after the first, so
// an attacker who keeps writing cannot stretch it), and then logged one
// by one for the files that still match no verified manifest, with one
// entry saying how many changes were folded and how many of them the
// update accounted for. While held back, findings are recorded as
// always (the report and the state show them); only their journal
// entries wait. Once a new or staged manifest is there, a held-back
// finding its content does not match is logged at once (an update does
// not hide a file that matches neither), and so is any alert after.

// folds are the loop's folded alerts, by scope. Only the loop touches
// them.
type folds struct {
	by         map[string]*fold
	lastChange time.Time // the last batch of events, anywhere in the install
}

// fold is one scope's alerts held back.
type fold struct {
	since, last time.Time
	first       string                     // the path of the alert logged at once
	fresh       bool                       // begun this round: its first alert is not logged yet
	held        map[string]finding.Finding // findings whose alert waits, by path
	told        bool                       // the entry saying alerts wait was written
	accounted   int                        // held-back findings an update's step healed before the fold ended
	prev        *verify.Expected           // the manifest in force when it began
	alerted     map[string]bool            // paths whose alert this fold logged: a new content there is logged at once
}

// logged notes that the alert of the file at p was logged.
func (fo *fold) logged(p string) {
	if fo.alerted == nil {
		fo.alerted = map[string]bool{}
	}
	fo.alerted[p] = true
}

// foldable reports whether an alert of f is one an update by hand
// produces: a file's content, a missing or an extra file.
func foldable(f *finding.Finding) bool {
	return f.Path != "" && (f.Kind == kind.InvalidHash || f.Kind == kind.FileMissing || f.Kind == kind.ExtraFile)
}

// take returns what of t, a transition of scope, the journal gets now:
// nothing while it waits, t, or a held-back alert and t. open says
// whether scope folds new alerts (a manifest in force, no new or staged
// one), same whether the manifest is the one the waiting alerts were
// found under, prev the manifest in force (or the last one). Only an alert of a new finding waits, and the first of a fold
// too until the end of its round (foldRound logs the most dangerous of
// that round at once). What an update does not do is logged at once:
// another content for a file whose alert waits (one alert per payload),
// and, under the same manifest (same), a file whose alert waits back at
// its signed content or a new file of an executable name gone again (a
// web shell used and removed).
func (fs *folds) take(scope string, t Transition, open, same bool, prev *verify.Expected, now time.Time) []Transition {
	fo := fs.by[scope]
	if t.New == nil {
		return fo.healed(t, same)
	}
	if held, ok := fo.heldAt(t.New.Path); ok {
		return fo.again(held, t, now)
	}
	if !t.Alert || !open || !foldable(t.New) || t.Old != nil || fo != nil && fo.alerted[t.New.Path] {
		// Not foldable, or a file whose alert this fold logged already
		// and that is wrong again (healed, then another content): one
		// alert per payload, at once.
		return []Transition{t}
	}
	fs.hold(scope, t, prev, now)
	return nil
}

// healed is take for t, a finding healed: logged at once, unless its
// alert waits in fo and the heal is a step of an update (then neither
// is logged) or not (the waiting alert is logged with it).
func (fo *fold) healed(t Transition, same bool) []Transition {
	held, ok := fo.heldAt(t.Old.Path)
	switch {
	case !ok:
		return []Transition{t}
	case !same || held.Kind == kind.FileMissing || held.Kind == kind.ExtraFile && !baseline.IsExecutableName(path.Base(held.Path)) ||
		fo.prev != nil && fo.prev.Covers(&held):
		// Healed by another manifest (a new or staged one, adopted
		// or matched), a file put back (tar re-creates every file),
		// a temporary file renamed into place (rsync), a file of the
		// release before removed once the new one is in (the cleanup
		// after tar or cp over the tree): steps of an update.
		delete(fo.held, held.Path)
		fo.accounted++
		return nil
	}
	delete(fo.held, held.Path)
	fo.logged(held.Path)
	return []Transition{{New: &held, Alert: true}, t}
}

// again is take for t, a finding at the path of held, whose alert waits
// in fo: another content is logged at once with the waiting alert (one
// alert per payload); else t waits in its place.
func (fo *fold) again(held finding.Finding, t Transition, now time.Time) []Transition {
	fo.last = now
	if !held.Current.IsZero() && !t.New.Current.IsZero() && held.Current != t.New.Current {
		delete(fo.held, held.Path)
		fo.logged(held.Path)
		return []Transition{{New: &held, Alert: true}, t}
	}
	fo.held[held.Path] = *t.New
	return nil
}

// hold makes the alert of t, a new finding of scope, wait in the scope's
// fold, which starts now if there is none (prev: the manifest in force).
func (fs *folds) hold(scope string, t Transition, prev *verify.Expected, now time.Time) {
	fo := fs.by[scope]
	if fo == nil {
		if fs.by == nil {
			fs.by = map[string]*fold{}
		}
		fo = &fold{since: now, fresh: true, held: map[string]finding.Finding{}, prev: prev}
		fs.by[scope] = fo
	}
	fo.last = now
	fo.held[t.New.Path] = *t.New
}

// holdLeftover holds the alert of t, a file of the release before left
// beside the one just adopted (replaceAfter), in the fold of scope, begun
// for it if none: no alert at once and no entry saying alerts wait (this
// is no unannounced change); the fold's end alerts it if it is still
// there, and its removal (the cleanup) is an update's step.
func (fs *folds) holdLeftover(scope string, t Transition, before *verify.Expected, now time.Time) {
	if fs.by[scope] == nil {
		fs.hold(scope, t, before, now)
		fo := fs.by[scope]
		fo.fresh, fo.told, fo.first = false, true, "its new release"
		return
	}
	fs.hold(scope, t, before, now)
}

// heldAt is the finding at p whose alert waits in fo (false: none).
func (fo *fold) heldAt(p string) (finding.Finding, bool) {
	if fo == nil {
		return finding.Finding{}, false
	}
	f, ok := fo.held[p]
	return f, ok
}

// due is when the earliest fold ends (zero: none), quiet and most being
// Config.Settle and Config.MaxHold.
func (fs *folds) due(quiet, most time.Duration) time.Time {
	var next time.Time
	for _, fo := range fs.by {
		if end := fo.end(quiet, most, fs.lastChange); next.IsZero() || end.Before(next) {
			next = end
		}
	}
	return next
}

// end is when fo ends: once it and the whole install (last changed at
// lastChange) have been quiet for quiet, at most most after it began.
func (fo *fold) end(quiet, most time.Duration, lastChange time.Time) time.Time {
	end := fo.last.Add(quiet)
	if t := lastChange.Add(quiet); t.After(end) {
		end = t
	}
	if limit := fo.since.Add(most); end.After(limit) {
		end = limit
	}
	return end
}

// foldRound ends the folds whose time has come, and logs the held-back
// alerts that no new or staged manifest accounts for. Run at the end of
// each round, before the reporter writes it.
func (rc *record) foldRound(now time.Time) {
	l := rc.l
	for name, fo := range rc.folds.by {
		s := l.scopes[name]
		if s == nil {
			delete(rc.folds.by, name) // dropped: its findings went with it
			continue
		}
		if fo.fresh {
			rc.unfoldFirst(s, fo)
		}
		if len(fo.held) > 0 && !fo.told {
			fo.told = true
			l.log.Info(fmt.Sprintf("%s: more files differ from the signed manifest after %s and no new signed manifest is in force: their alerts wait until the scope is quiet (at most %s), an update by hand looks like this",
				journal.Token(name), journal.Token(fo.first), l.cfg.MaxHold), zap.String("message_id", kind.IDFolded), zap.String("integrity_scope", name))
		}
		if exps := rc.manifestsBeside(s); len(exps) > 0 {
			rc.unfoldUncovered(s, fo, exps)
		}
		// Quiet is the whole install's: an update by hand goes from
		// scope to scope, and its cleanup (the old release's files
		// removed) comes after the copy. The limit ends it even while
		// the scope is held.
		end := fo.end(l.cfg.Settle, l.cfg.MaxHold, rc.folds.lastChange)
		ended := !now.Before(fo.since.Add(l.cfg.MaxHold)) || !now.Before(end) && s.settle.IsZero() && s.checking == nil
		if ended {
			rc.endFold(s, fo)
			delete(rc.folds.by, name)
			rc.changed = true // published: Snapshot.Folding
		}
	}
}

// unfoldFirst logs the first alert of a fold begun this round at once:
// the most dangerous of the round's (changed code before a new
// executable name, before a missing file, before another extra one),
// the first in path order among equals.
func (rc *record) unfoldFirst(s *scope, fo *fold) {
	fo.fresh = false
	var first *finding.Finding
	for p := range fo.held {
		f := rc.findings.get(s.sc.Name, p)
		if f != nil && (first == nil || danger(f) < danger(first) || danger(f) == danger(first) && f.Path < first.Path) {
			first = f
		}
	}
	if first == nil {
		return
	}
	delete(fo.held, first.Path)
	fo.logged(first.Path)
	fo.first = first.Path
	rc.l.rep.queue(Transition{New: first, Alert: true})
}

// unfoldUncovered logs at once the held-back alerts of s whose file a
// new or staged manifest (exps) does not account for either.
func (rc *record) unfoldUncovered(s *scope, fo *fold, exps []*verify.Expected) {
	for _, p := range slices.Sorted(maps.Keys(fo.held)) {
		f := rc.findings.get(s.sc.Name, p)
		if f == nil {
			continue
		}
		if !slices.ContainsFunc(exps, func(e *verify.Expected) bool { return e.Covers(f) }) {
			delete(fo.held, p)
			fo.logged(p)
			rc.l.rep.queue(Transition{New: f, Alert: true})
		}
	}
}

// endFold logs the alerts still held back for s (those still findings:
// nothing accounted for them) and one entry that sums the fold up.
func (rc *record) endFold(s *scope, fo *fold) {
	l := rc.l
	left, beside := 0, rc.manifestsBeside(s)
	for _, p := range slices.Sorted(maps.Keys(fo.held)) {
		f := rc.findings.get(s.sc.Name, p)
		switch {
		case f == nil:
		case slices.ContainsFunc(beside, func(e *verify.Expected) bool { return e.Covers(f) }):
			// Content a new or staged verified manifest signs: the
			// update's, waiting for that manifest to be adopted (a
			// fold that reached MaxHold in the middle of a long copy).
			fo.accounted++
		default:
			l.rep.queue(Transition{New: f, Alert: true})
			left++
		}
	}
	n := left + fo.accounted
	if n == 0 {
		return
	}
	name := s.sc.Name
	msg := fmt.Sprintf("%s: %d more changes after %s were folded; the update accounts for %d of them (a verified manifest's content, a file put back, a temporary file), %d still differ (logged one by one)",
		journal.Token(name), n, journal.Token(fo.first), fo.accounted, left)
	// Info: each file still differing has its own alert, just queued;
	// an alerting rule matches those.
	l.log.Info(msg, zap.String("message_id", kind.IDFolded), zap.String("integrity_scope", name),
		zap.Int("integrity_count", n), zap.Int("accounted", fo.accounted), zap.Int("left", left))
}

// folding reports whether new alerts of s are folded: it has a manifest
// in force (or, while that is gone, the last one) and no new or staged
// one that could account for a change.
func (rc *record) folding(s *scope) bool {
	return (s.exp != nil || s.last != nil) && len(rc.manifestsBeside(s)) == 0
}

// manifestsBeside are the verified manifests of s besides the one in
// force: a new one arrived in the tree, the staged release's.
func (rc *record) manifestsBeside(s *scope) []*verify.Expected {
	var out []*verify.Expected
	for _, e := range []*verify.Expected{s.next, rc.l.stage.exp(s)} {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}
