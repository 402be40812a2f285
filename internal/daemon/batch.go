package daemon

import (
	"context"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/mimetypelist"
	"github.com/integrityd/integrityd/internal/verify"
)

// plan is what one batch of changed paths asks for.
type plan struct {
	config  bool                // Nextcloud's configuration files changed
	version bool                // core's version.php changed
	apps    bool                // the set of apps may have changed
	trust   bool                // the trust anchors or CRL changed
	pinned  bool                // the install's own root.crt changed
	trees   bool                // a followed tree, or a directory above one, changed (roots.go)
	keys    map[*scope][]string // keys to recheck, by scope
	order   []*scope            // the scopes of keys, in the order seen
}

// add asks for a recheck of key of s.
func (p *plan) add(s *scope, key string) {
	if _, ok := p.keys[s]; !ok {
		p.order = append(p.order, s)
	}
	p.keys[s] = append(p.keys[s], key)
	if s.sc.Name == "core" && (key == verify.InTreeAnchors || strings.HasPrefix(verify.InTreeAnchors, key+"/")) {
		p.pinned = true
	}
}

// install reports whether p changes the install: a scope's file, the set
// of apps, Nextcloud's configuration or version. An event only in a
// directory above the tree (a temporary file in /tmp, beside the
// install) or in the state directory is not one: it must not keep a fold
// from ending (fold.go).
func (p *plan) install() bool {
	return len(p.order) > 0 || p.apps || p.config || p.version
}

// classify turns a batch into a plan.
func (l *loop) classify(paths []string) plan {
	p := plan{keys: map[*scope][]string{}}
	for _, path := range paths {
		l.classifyPath(&p, path)
	}
	return p
}

// classifyPath adds what one changed path asks for to p.
func (l *loop) classifyPath(p *plan, path string) {
	p.trees = p.trees || l.wa.isTreeOrAbove(path)
	p.config = p.config || l.conf.isConfigFile(path)
	if core := l.scopes["core"]; core != nil && l.in.MimetypeInput(path) {
		p.add(core, mimetypelist.Path)
	}
	t, ok, apps, trust := l.cat.locate(path)
	p.version = p.version || ok && t.scope.sc.Name == "core" && t.key == "version.php"
	p.apps = p.apps || apps
	p.trust = p.trust || trust
	if ok {
		p.add(t.scope, t.key)
	}
	for _, s := range l.scopes {
		if s.real != "" && under(path, s.real) {
			p.add(s, strings.TrimPrefix(strings.TrimPrefix(path, s.real), "/"))
		}
	}
}

// apply rechecks the changed paths of one batch: classify, then execute.
func (l *loop) apply(ctx context.Context, paths []string) {
	l.stage.refresh(l.trust, l.scopes, l.in.Root)
	p := l.classify(paths)
	if p.install() {
		l.rec.folds.lastChange = time.Now()
	}
	if p.trees {
		l.wa.checkTrees(ctx)
	}
	if p.config && l.fatal == nil {
		l.fatal = l.configChanged()
	}
	if p.version {
		l.versionChanged()
	}
	if p.trust && l.trustChanged() {
		l.log.Warn("trust anchors or CRL changed; verifying every manifest again")
		l.sched.requestScan(ctx, "trust anchors changed", nil, false)
	}
	if p.pinned {
		l.checkPinned()
	}
	if p.apps {
		for _, s := range l.cat.syncScopes() {
			l.log.Info("app to check appeared", zap.String("integrity_scope", s.sc.Name))
			l.rk.hold(s)
		}
	}
	for _, s := range p.order {
		if !l.wa.treeGone(s.sc.Dir) {
			l.rk.recheckScope(ctx, s, p.keys[s])
		}
	}
	if !l.wa.treeGone(l.in.Root) {
		l.uc.paths(ctx, paths, p.apps)
	}
	l.rk.recheckLinks(ctx)
}

// recheckScope rechecks keys of s. A new manifest makes it an update.
func (rk *rechecker) recheckScope(ctx context.Context, s *scope, keys []string) {
	l := rk.l
	if l.scopes[s.sc.Name] != s {
		return // dropped or replaced by this batch
	}
	l.sched.touch(s, keys...)
	if !rk.holdFor(s, keys) {
		return
	}
	for _, k := range topmost(rk.churn(s, keys)) {
		if !rk.recheck(ctx, s, k) {
			return
		}
	}
}

// holdFor takes what changed keys of s say of its manifest and its
// release: a changed manifest (manifestChanged), no manifest in force or
// an update starting or going on hold s until it is quiet. It reports
// whether the keys can be rechecked now: not without any manifest to
// check them against.
func (rk *rechecker) holdFor(s *scope, keys []string) bool {
	manifest, version := false, false
	for _, k := range keys {
		manifest = manifest || isManifest(s, k)
		version = version || (s.sc.Name == "core" && k == "version.php")
	}
	if manifest {
		rk.manifestChanged(s)
	}
	if s.exp == nil {
		// No trusted manifest in force (the scope's EXCEPTION says so):
		// reload it once quiet. The last one in force and a new validly
		// signed one that arrived since are what the changes are checked
		// against meanwhile: a backdoor written during an update whose
		// old manifest was removed first is alerted, not hidden until
		// the scope is quiet.
		rk.hold(s)
		if s.next == nil && s.last == nil {
			return false
		}
	}
	if version || (!s.settle.IsZero() && s.checking == nil) {
		// An update may be starting, or one goes on: the scope is
		// reloaded once quiet. Nothing is held back for it: every change
		// is still checked now (against both manifests while a new one
		// waits). A change while the whole check runs is checked now
		// and wins over the check's view of it (settle.go).
		rk.hold(s)
	}
	return true
}

// churn returns the keys of s to recheck: a burst that touches a good
// part of the scope is one walk of the scope ("") rather than one lookup
// per path (cheaper from about a quarter of the files on).
func (rk *rechecker) churn(s *scope, keys []string) []string {
	if len(keys) >= rk.l.cfg.ChurnPaths && 4*len(keys) >= s.files() {
		return []string{""}
	}
	return keys
}

// manifestChanged handles an event on the manifest of s. Only a manifest
// whose content really changed to another validly signed one starts an
// update (a hold): a touch or a rewrite with the same bytes does nothing,
// and a manifest that cannot be verified is the scope's EXCEPTION at once.
func (rk *rechecker) manifestChanged(s *scope) {
	l := rk.l
	m, ex := s.sc.LoadManifest(l.trust)
	switch {
	case ex != nil && l.stage.covers(s):
		// An update step: checked against both meanwhile (stage.go).
		rk.hold(s)
	case ex != nil && s.exp != nil && l.writes.manifestWait(s.sc.Name, time.Now()):
		// Right after an event on it: maybe half written, or between
		// tar's unlink and create. Read again writeGrace after the
		// first sighting (writing.go); meanwhile every file is still
		// checked against the manifest in force.
	case ex != nil:
		if s.next != nil || s.exp != nil {
			l.log.Warn("manifest no longer verifies", zap.String("integrity_scope", s.sc.Name),
				zap.String("integrity_message", ex.Message))
		}
		s.next = nil
		rk.adopt(s, scopeScan{sc: s.sc, findings: []finding.Finding{*ex}})
	case s.exp != nil && m.Sum() == s.sum:
		s.next = nil // back to the manifest in force (or only touched)
	case s.next != nil && m.Sum() == s.nextSum:
		rk.hold(s)
	default:
		if s.next == nil {
			l.log.Info("scope is being updated: a new signed manifest; changes that match neither manifest are still alerted",
				zap.String("integrity_scope", s.sc.Name), zap.Duration("settle", l.cfg.Settle))
		}
		s.next, s.nextSum = s.sc.NewExpected(m), m.Sum()
		rk.hold(s)
	}
}

// recheckLinks rechecks the symlinks of every scope: their targets may
// have changed with this batch, without an event on them.
func (rk *rechecker) recheckLinks(ctx context.Context) {
	for _, s := range rk.l.scopes {
		if s.exp == nil || !s.settle.IsZero() {
			continue
		}
		for k := range s.links {
			if !rk.recheck(ctx, s, k) {
				break
			}
		}
	}
}

// recheck checks key of s and records the result; on failure the scope
// is held for a whole check, and it returns false. While s is being
// updated, a path is a finding only if it is wrong under both the manifest
// in force and the new one.
func (rk *rechecker) recheck(ctx context.Context, s *scope, key string) bool {
	l := rk.l
	exp, alts, over := s.exp, []*verify.Expected{s.next, l.stage.exp(s)}, int64(bigFile)
	if exp == nil {
		// The last manifest in force, or only a new one (recheckScope):
		// big files are hashed here, as there is no manifest in force
		// for hashLater.
		exp, alts, over = s.last, []*verify.Expected{s.next, l.stage.exp(s)}, 0
		if exp == nil {
			exp, alts = s.next, []*verify.Expected{l.stage.exp(s)}
		}
	}
	fresh, links, big, err := s.sc.RecheckDeferred(ctx, exp, key, over)
	for _, alt := range alts {
		if err == nil && alt != nil {
			var other []finding.Finding
			if other, _, _, err = s.sc.RecheckDeferred(ctx, alt, key, over); err == nil {
				fresh = wrongUnderBoth(fresh, other)
			}
		}
	}
	if err == nil {
		missing := l.rec.missing(s.sc.Name)
		fresh = l.stage.updateSteps(s, fresh, missing)
		if s.next != nil {
			// Being updated (held, checked whole once quiet): a file
			// missing for now is the copy's step (rsync replacing a
			// symlink by a file, tar's unlink and create), not code
			// that runs; the whole check decides. One missing before
			// stays a finding.
			fresh = slices.DeleteFunc(fresh, func(f finding.Finding) bool { return f.Kind == kind.FileMissing && !missing(f.Path) })
		}
	}
	if err == nil {
		// A big file being hashed off the loop at or below key was just
		// looked at again: its result, when it comes, is older.
		rk.big.looked(s.sc.Name, key, big)
		fresh, links = rk.keepBig(s, big, fresh, links)
		for _, k := range big {
			rk.hashLater(ctx, s, k)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			l.log.Error("recheck failed; rechecking the scope", zap.String("integrity_scope", s.sc.Name), zap.String("path", key), zap.Error(err))
			rk.hold(s)
		}
		return false
	}
	s.setLinks(key, links)
	l.wa.linksChanged = true
	l.rec.replaceAs(s, key, l.holdWriting(s, fresh, time.Now()), byEvent)
	return true
}

// wrongUnderBoth keeps the findings of cur whose path is also a finding
// under next.
func wrongUnderBoth(cur, next []finding.Finding) []finding.Finding {
	also := make(map[string]bool, len(next))
	for _, f := range next {
		also[f.Path] = true
	}
	out := cur[:0]
	for _, f := range cur {
		if also[f.Path] {
			out = append(out, f)
		}
	}
	return out
}

// keepBig adds to fresh and links what is known of the big files that a
// recheck left unhashed: they keep it until they are hashed off the loop.
func (rk *rechecker) keepBig(s *scope, big []string, fresh []finding.Finding, links []string) ([]finding.Finding, []string) {
	for _, k := range big {
		for _, f := range rk.l.rec.part(s, k) {
			fresh = append(fresh, *f)
		}
		if s.links[k] {
			links = append(links, k)
		}
	}
	return fresh, links
}

// adopt takes the result of a whole check of s.
func (rk *rechecker) adopt(s *scope, r scopeScan) {
	rk.adoptAs(s, r, false)
}

// adoptAs is adopt; live says the check is one of a scope held while it
// changes (settle.go), whose new alerts a fold may hold back as a live
// recheck's (fold.go), not a full scan's.
func (rk *rechecker) adoptAs(s *scope, r scopeScan, live bool) {
	l := rk.l
	var before *verify.Expected // the release before, when this adopts the staged or expected one
	if r.exp != nil && l.stage.staged(s, r.sum) {
		before = s.exp
	}
	how := byScan
	if live {
		how = byEvent
		if s.exp == nil || r.exp == nil || r.sum != s.sum {
			how = byAdopted
		}
	}
	if r.exp == nil {
		l.d.metrics.manifestFails.Inc()
	}
	switch {
	case r.exp != nil:
		s.last = nil
	case s.exp != nil:
		s.last = s.exp // checked against meanwhile (recheck)
	}
	s.exp, s.sum, s.next = r.exp, r.sum, nil
	if r.exp != nil && s.sc.Name != "core" && l.meta.Signed[s.sc.Name] != s.sc.Dir {
		l.meta.Signed[s.sc.Name] = s.sc.Dir // remembered: it stays checked without its manifest
	}
	s.setLinks("", r.links)
	l.wa.linksChanged = true
	l.rec.replaceAfter(s, "", l.stage.accounted(s, r.sum, r.findings, l.rec.missing(s.sc.Name)), how, before)
	l.rec.modified()
}

// hold makes a scope wait until it has been quiet for Settle, but no
// longer than MaxHold in all: a scope that never stops changing is still
// checked.
func (rk *rechecker) hold(s *scope) {
	l := rk.l
	now := time.Now()
	if s.settle.IsZero() {
		s.holdSince = now
	}
	s.settle = now.Add(l.cfg.Settle)
	if limit := s.holdSince.Add(l.cfg.MaxHold); s.settle.After(limit) {
		s.settle = limit
	}
	l.rec.changed = true
}

// topmost drops keys below another key of the list ("" covers all).
func topmost(keys []string) []string {
	set := map[string]bool{}
	for _, k := range keys {
		set[k] = true
	}
	if set[""] {
		return []string{""}
	}
	var out []string
	for k := range set {
		covered := false
		for p := k; ; {
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			p = p[:i]
			if set[p] {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, k)
		}
	}
	return out
}

// isManifest reports whether key is the scope's signature.json (or a
// directory holding it, the scope's directory "" too: another directory
// renamed into its place brings its own manifest).
func isManifest(s *scope, key string) bool {
	m := s.sc.ManifestPath()
	rel := strings.TrimPrefix(m, s.sc.Dir+"/")
	return key == "" || key == rel || strings.HasPrefix(rel, key+"/")
}
