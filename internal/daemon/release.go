package daemon

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// Releases. A scope whose manifest verifies and whose files match it can
// still be an older signed release put in place of the newer one the
// daemon verified there (with the holes that release has): Nextcloud's
// check accepts it, and Nextcloud runs an app's older code. The loop keeps
// the highest release it verified of each scope (meta.Releases, in the
// state file) and makes a lower one a VERSION_DOWNGRADE finding on the
// scope's version file, until the release is back or an admin accepts it
// (AcceptReleases).

// withRelease returns fresh, what a recheck of s at key found, with the
// scope's VERSION_DOWNGRADE when key covers its version file and that
// file has no finding of its own; it raises the scope's recorded release
// when the one verified now is higher.
func (rc *record) withRelease(s *scope, key string, fresh []finding.Finding) []finding.Finding {
	l := rc.l
	if !releaseAsked(s, key, fresh) {
		return fresh
	}
	name, vf := s.sc.Name, s.sc.VersionFile()
	if s.next != nil {
		// Being updated: the release is judged once the new manifest is
		// in force; what is known stays meanwhile.
		if f := rc.findings.get(name, vf); f != nil && f.Kind == kind.VersionDowngrade {
			fresh = append(fresh, *f)
		}
		return fresh
	}
	rel := s.sc.Release()
	if rel == "" {
		return fresh
	}
	top := l.meta.Releases[name]
	if top != "" && verify.CompareReleases(rel, top) < 0 {
		return append(fresh, finding.Finding{Scope: name, Kind: kind.VersionDowngrade, Path: vf,
			Message: fmt.Sprintf("release %s is older than %s, verified here before: an older signed release replaced a newer one (if an admin did it: integrityd accept-release %s)",
				finding.EscapeControl(rel), finding.EscapeControl(top), finding.EscapeControl(name))})
	}
	if top != rel {
		if l.meta.Releases == nil {
			l.meta.Releases = map[string]string{}
		}
		l.meta.Releases[name] = rel
		rc.modified()
	}
	return fresh
}

// releaseAsked reports whether a recheck of s at key that found fresh
// says anything of the scope's release: not for a scope without a trusted
// manifest, a copy Nextcloud does not load, a key that does not cover the
// version file, nor when that file (or the scope) has a finding of its
// own.
func releaseAsked(s *scope, key string, fresh []finding.Finding) bool {
	vf := s.sc.VersionFile()
	if s.exp == nil || strings.Contains(s.sc.Name, "@") || !under(vf, key) {
		return false
	}
	for _, f := range fresh {
		if f.Path == vf || f.Path == "" {
			return false
		}
	}
	return true
}

// acceptReleases takes the current release of each scope named as its
// recorded one: its VERSION_DOWNGRADE is resolved. It returns the scopes
// accepted; a name without such a finding is an error.
func (l *loop) acceptReleases(ctx context.Context, names []string, by string) ([]string, error) {
	var todo []*scope
	for _, name := range names {
		s := l.scopes[name]
		if s == nil {
			return nil, fmt.Errorf("no scope %q is checked", finding.EscapeControl(name))
		}
		if f := l.rec.findings.get(name, s.sc.VersionFile()); f == nil || f.Kind != kind.VersionDowngrade {
			return nil, fmt.Errorf("nothing to accept: %s has no %s finding", finding.EscapeControl(name), kind.VersionDowngrade)
		}
		todo = append(todo, s)
	}
	var done []string
	for _, s := range todo {
		old := l.meta.Releases[s.sc.Name]
		delete(l.meta.Releases, s.sc.Name)
		l.rec.modified()
		l.sched.touch(s, s.sc.VersionFile())
		if !l.rk.recheck(ctx, s, s.sc.VersionFile()) {
			return done, fmt.Errorf("recheck of %s failed: the scope is checked again once quiet", finding.EscapeControl(s.sc.Name))
		}
		l.log.Warn(fmt.Sprintf("release downgrade of %s accepted (%s, was %s)", finding.EscapeControl(s.sc.Name), by, finding.EscapeControl(old)),
			zap.String("integrity_scope", s.sc.Name), zap.String("release", l.meta.Releases[s.sc.Name]), zap.String("previous_release", old), zap.String("by", by))
		done = append(done, s.sc.Name)
	}
	return done, nil
}
