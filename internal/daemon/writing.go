package daemon

import (
	"context"
	"os"
	"path"
	"slices"
	"time"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
)

// While a verified new release is staged for a scope (expect-release,
// the updater's stage), an update writes files in place (tar and cp
// truncate and write; rsync writes a temporary file beside): read in the
// middle, a file matches no manifest for a moment. So a new finding of
// such a scope whose file was written within writeGrace is checked again
// writeGrace after it was first seen, and is a finding (alerted) only if
// it still is then. A file written again and again is not held longer:
// the wait is from the first sighting, and a file whose mtime is old (a
// backdoor with its time set back) is alerted at once, unless it is a
// new file of a name no web server runs (rsync's temporary .NAME.XXXXXX,
// dated as its source before its rename): that waits whatever its mtime.
// Nothing is held for a scope without a staged release.

// writeGrace bounds how long a new finding of a file being written waits
// during an update (well within the second an alert may take then).
const writeGrace = 700 * time.Millisecond

// writes are the findings waiting for a file being written to be read
// again, by scope and key: when they were first seen. Only the loop
// touches them.
type writes struct {
	first map[fileKey]time.Time
	// manifests are the scopes whose manifest did not verify just
	// after an event on it, by when that was first seen.
	manifests map[string]time.Time
}

// manifestWait reports whether the manifest of scope, which does not
// verify just after an event on it, is read again later rather than
// taken as it is now: for writeGrace after it was first seen so. Once
// that has passed it is taken (and forgotten: a later change has a
// grace of its own).
func (w *writes) manifestWait(scope string, now time.Time) bool {
	first, ok := w.manifests[scope]
	switch {
	case !ok:
		if w.manifests == nil {
			w.manifests = map[string]time.Time{}
		}
		w.manifests[scope] = now
		return true
	case now.Sub(first) < writeGrace:
		return true
	}
	delete(w.manifests, scope)
	return false
}

// fileKey names a file of a scope.
type fileKey struct{ scope, key string }

// due is when the earliest wait ends (zero: none).
func (w *writes) due() time.Time {
	var next time.Time
	for _, t := range w.manifests {
		if end := t.Add(writeGrace); next.IsZero() || end.Before(next) {
			next = end
		}
	}
	for _, t := range w.first {
		if end := t.Add(writeGrace); next.IsZero() || end.Before(next) {
			next = end
		}
	}
	return next
}

// holdWriting drops from fresh, what a recheck of s found, the new
// findings of files being written while a release is staged for s, and
// remembers them to be read again (writesDue).
func (l *loop) holdWriting(s *scope, fresh []finding.Finding, now time.Time) []finding.Finding {
	if l.stage.exp(s) == nil {
		return fresh
	}
	return slices.DeleteFunc(fresh, func(f finding.Finding) bool {
		if f.Kind != kind.InvalidHash && f.Kind != kind.ExtraFile || l.rec.findings.get(s.sc.Name, f.Path) != nil {
			return false
		}
		k := fileKey{s.sc.Name, f.Path}
		first, waiting := l.writes.first[k]
		if waiting {
			return now.Sub(first) < writeGrace
		}
		p, ok := l.findingPath(&f)
		if !ok {
			return false
		}
		fi, err := os.Lstat(p)
		temp := f.Kind == kind.ExtraFile && !baseline.IsExecutableName(path.Base(f.Path))
		if err != nil || !temp && (now.Sub(fi.ModTime()) >= writeGrace || fi.ModTime().After(now.Add(time.Second))) {
			// Written a while ago (or dated ahead): no write in
			// progress. A new file of a name no web server runs
			// (rsync's .NAME.XXXXXX, dated as its source before it is
			// renamed into place) waits whatever its mtime.
			return false
		}
		if l.writes.first == nil {
			l.writes.first = map[fileKey]time.Time{}
		}
		l.writes.first[k] = now
		return true
	})
}

// writesDue reads again the files whose wait has ended: what is wrong
// now is a finding.
func (l *loop) writesDue(ctx context.Context, now time.Time) {
	for name, first := range l.writes.manifests {
		if now.Sub(first) < writeGrace {
			continue
		}
		l.rec.changed = true // published: Snapshot.Folding
		if s := l.scopes[name]; s != nil {
			l.rk.manifestChanged(s) // verifying now, or its EXCEPTION
		}
		delete(l.writes.manifests, name)
	}
	for k, first := range l.writes.first {
		if now.Sub(first) < writeGrace {
			continue
		}
		delete(l.writes.first, k)
		l.rec.changed = true
		if s := l.scopes[k.scope]; s != nil && !l.wa.treeGone(s.sc.Dir) {
			l.rk.recheck(ctx, s, k.key)
		}
	}
}
