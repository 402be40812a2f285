package daemon

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// findingSet is what the loop knows is wrong, by scope and path ("" for
// the scope itself), with the number of findings below each directory
// (so that a recheck of one file key looks at that key only). Only the
// loop touches it. A scope's map is shared with the last snapshot once
// published (share) and copied before it changes again (own): readers
// never see a change.
type findingSet struct {
	by     map[string]map[string]*finding.Finding
	shared map[string]bool
	dirs   map[string]map[string]int // scope -> directory key -> findings below
}

func newFindingSet() findingSet {
	return findingSet{by: map[string]map[string]*finding.Finding{}, shared: map[string]bool{}, dirs: map[string]map[string]int{}}
}

// get returns the finding of scope at path, or nil.
func (fs *findingSet) get(scope, path string) *finding.Finding { return fs.by[scope][path] }

// len is the number of findings of scope.
func (fs *findingSet) len(scope string) int { return len(fs.by[scope]) }

// put records f.
func (fs *findingSet) put(f finding.Finding) {
	m := fs.own(f.Scope)
	if _, ok := m[f.Path]; !ok {
		fs.count(f.Scope, f.Path, 1)
	}
	m[f.Path] = &f
}

// own returns the findings of scope, ready to be changed.
func (fs *findingSet) own(scope string) map[string]*finding.Finding {
	m := fs.by[scope]
	if m == nil {
		m = map[string]*finding.Finding{}
		fs.by[scope], fs.shared[scope] = m, false
		return m
	}
	if fs.shared[scope] {
		m = maps.Clone(m)
		fs.by[scope], fs.shared[scope] = m, false
	}
	return m
}

// count adds n to the counts of the directories above path.
func (fs *findingSet) count(scope, path string, n int) {
	dirs := fs.dirs[scope]
	if dirs == nil {
		dirs = map[string]int{}
		fs.dirs[scope] = dirs
	}
	for i := strings.LastIndexByte(path, '/'); i > 0; i = strings.LastIndexByte(path[:i], '/') {
		if dirs[path[:i]] += n; dirs[path[:i]] <= 0 {
			delete(dirs, path[:i])
		}
	}
}

// part returns the findings of scope at key and below.
func (fs *findingSet) part(scope, key string) map[string]*finding.Finding {
	cur := fs.by[scope]
	out := map[string]*finding.Finding{}
	if key != "" && fs.dirs[scope][key] == 0 {
		if f, ok := cur[key]; ok {
			out[key] = f
		}
		return out
	}
	for p, f := range cur {
		if under(p, key) {
			out[p] = f
		}
	}
	return out
}

// apply makes the transitions ts (diff's, for one scope) the findings;
// intern, if not nil, gives a new finding's path the string the manifest
// holds.
func (fs *findingSet) apply(scope string, ts []Transition, intern func(string) string) {
	m := fs.own(scope)
	for _, t := range ts {
		switch {
		case t.New == nil:
			delete(m, t.Old.Path)
			fs.count(scope, t.Old.Path, -1)
		case t.Old == nil:
			f := *t.New
			if intern != nil {
				f.Path = intern(f.Path)
			}
			m[f.Path] = &f
			fs.count(scope, f.Path, 1)
		default:
			f := *t.New
			f.Path = t.Old.Path
			m[f.Path] = &f
		}
	}
}

// drop forgets scope's findings and returns how many there were.
func (fs *findingSet) drop(scope string) int {
	n := len(fs.by[scope])
	delete(fs.by, scope)
	delete(fs.shared, scope)
	delete(fs.dirs, scope)
	return n
}

// share returns every scope's findings for a snapshot: they are not
// changed in place from now on.
func (fs *findingSet) share() map[string]map[string]*finding.Finding {
	out := make(map[string]map[string]*finding.Finding, len(fs.by))
	for name, m := range fs.by {
		out[name] = m
		fs.shared[name] = true
	}
	return out
}

// scopes returns the names of the scopes with findings.
func (fs *findingSet) scopes() []string {
	out := make([]string, 0, len(fs.by))
	for name := range fs.by {
		out = append(out, name)
	}
	return out
}

// part returns the findings of scope s at key and below.
func (rc *record) part(s *scope, key string) map[string]*finding.Finding {
	return rc.findings.part(s.sc.Name, key)
}

// replace sets the findings of c at key and below (all of them when key
// is "") and logs every transition.
func (rc *record) replace(c checked, key string, fresh []finding.Finding) {
	rc.replaceAs(c, key, fresh, byScan)
}

// replaceHow says where the findings replace takes come from, for the
// fold (fold.go): a full scan's are logged as they are; a live recheck's
// and a held scope's whole check's new alerts may wait, and only under
// the same manifest is a waiting finding's heal suspicious.
type replaceHow int

const (
	byScan    replaceHow = iota // a full scan, the first one
	byEvent                     // the recheck of an event
	byAdopted                   // a held scope's whole check, with a new manifest
)

// replaceAs is replace for findings that come as how says.
func (rc *record) replaceAs(c checked, key string, fresh []finding.Finding, how replaceHow) {
	rc.replaceAfter(c, key, fresh, how, nil)
}

// replaceAfter is replaceAs for a scope that has just adopted its staged
// or expected release, before being the manifest in force until then: a
// new EXTRA_FILE whose content before signs at that path is a file of
// the release before that tar or cp left and the admin's cleanup removes
// next; its alert waits in a fold (folds.holdLeftover) rather than being
// logged at once.
func (rc *record) replaceAfter(c checked, key string, fresh []finding.Finding, how replaceHow, before *verify.Expected) {
	name := c.name()
	fresh = c.withRelease(rc, key, fresh)
	ts := diff(rc.findings.part(name, key), fresh)
	if len(ts) == 0 {
		return
	}
	rc.findings.apply(name, ts, c.interner())
	open, now := how != byScan && c.folding(rc), time.Now()
	same := open && how == byEvent
	prev := c.inForce()
	for _, t := range ts {
		if before != nil && t.Alert && t.Old == nil && t.New != nil && t.New.Kind == kind.ExtraFile && before.Covers(t.New) {
			rc.folds.holdLeftover(name, t, before, now)
			continue
		}
		for _, t := range rc.folds.take(name, t, open, same, prev, now) {
			rc.l.rep.queue(t)
		}
	}
	rc.modified()
}

// missing reports, for keys of scope, whether the file is a FILE_MISSING
// finding now.
func (rc *record) missing(scope string) func(key string) bool {
	return func(key string) bool {
		f := rc.findings.get(scope, key)
		return f != nil && f.Kind == kind.FileMissing
	}
}

// drop forgets a scope that no longer exists (an app that was removed).
func (rc *record) drop(name string) {
	l := rc.l
	if _, back := l.gone.by[name]; !back {
		delete(rc.folds.by, name) // else kept for the app copied in again
	}
	if n := rc.findings.drop(name); n > 0 {
		l.log.Info(fmt.Sprintf("app %s is no longer checked (removed, or in no apps root now); its %d findings are resolved", journal.Token(name), n),
			zap.String("integrity_scope", name), zap.Int("findings", n))
	}
	rc.modified()
}

// modified notes a change of what the state file records (findings, scan
// metadata): the saver writes it. Other changes (a batch handled, a scope
// held) are only published.
func (rc *record) modified() {
	rc.version++
	rc.changed = true
}

// publishSoon publishes what changed, at most every PublishEvery: the
// rest at publishAt.
func (rc *record) publishSoon() {
	if !rc.changed {
		return
	}
	if next := rc.published.Add(rc.l.cfg.PublishEvery); time.Now().Before(next) {
		rc.publishAt = next
		return
	}
	rc.publish()
}

// publish makes the current state the snapshot that readers see.
func (rc *record) publish() {
	l := rc.l
	s := &Snapshot{
		findings:  rc.findings.share(),
		meta:      l.meta,
		Scopes:    len(l.scopes),
		Batches:   l.batches,
		Scanning:  l.sched.q.running() || l.rk.big.busy(),
		Folding:   len(rc.folds.by) + len(l.gone.by) + len(l.writes.first) + len(l.writes.manifests),
		Published: time.Now(),
	}
	for _, sc := range l.scopes {
		s.Files += sc.files()
		if !sc.settle.IsZero() {
			s.Settling++
		}
	}
	s.meta.Files, s.meta.Scopes = s.Files, s.Scopes
	s.meta.UnsignedFiles = len(l.uc.files)
	s.meta.Signed = make(map[string]string, len(l.meta.Signed))
	for name, dir := range l.meta.Signed {
		s.meta.Signed[name] = dir
	}
	s.meta.Releases = maps.Clone(l.meta.Releases)
	if l.w != nil {
		s.meta.WatchedDirs, s.meta.Degraded = l.w.Stats()
	}
	if prev := l.d.snap.Load(); prev != nil {
		s.Seq = prev.Seq + 1
		if prev.meta.WatchedDirs != s.meta.WatchedDirs || prev.meta.Degraded != s.meta.Degraded {
			rc.version++
		}
	}
	s.Version = rc.version
	l.d.snap.Store(s)
	rc.changed, rc.published, rc.publishAt = false, s.Published, time.Time{}
}
