package daemon

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/baseline"
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
	p.trees = p.trees || l.isTreeOrAbove(path)
	p.config = p.config || l.conf.isConfigFile(path)
	if core := l.scopes["core"]; core != nil && l.in.MimetypeInput(path) {
		p.add(core, mimetypelist.Path)
	}
	t, ok, apps, trust := l.locate(path)
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
	l.refreshStage()
	p := l.classify(paths)
	if p.install() {
		l.folds.lastChange = time.Now()
	}
	if p.trees {
		l.checkTrees(ctx)
	}
	if p.config && l.fatal == nil {
		l.fatal = l.configChanged()
	}
	if p.version {
		l.versionChanged()
	}
	if p.trust && l.trustChanged() {
		l.log.Warn("trust anchors or CRL changed; verifying every manifest again")
		l.requestScan(ctx, "trust anchors changed", nil, false)
	}
	if p.pinned {
		l.checkPinned()
	}
	if p.apps {
		for _, s := range l.syncScopes() {
			l.log.Info("app to check appeared", zap.String("integrity_scope", s.sc.Name))
			l.hold(s)
		}
	}
	for _, s := range p.order {
		if !l.treeGone(s.sc.Dir) {
			l.recheckScope(ctx, s, p.keys[s])
		}
	}
	if !l.treeGone(l.in.Root) {
		l.unsignedPaths(ctx, paths, p.apps)
	}
	l.recheckLinks(ctx)
}

// recheckScope rechecks keys of s. A new manifest makes it an update.
func (l *loop) recheckScope(ctx context.Context, s *scope, keys []string) {
	if l.scopes[s.sc.Name] != s {
		return // dropped or replaced by this batch
	}
	l.touch(s, keys...)
	manifest, version := false, false
	for _, k := range keys {
		manifest = manifest || isManifest(s, k)
		version = version || (s.sc.Name == "core" && k == "version.php")
	}
	if manifest {
		l.manifestChanged(s)
	}
	if s.exp == nil {
		// No trusted manifest in force (the scope's EXCEPTION says so):
		// reload it once quiet. The last one in force and a new validly
		// signed one that arrived since are what the changes are checked
		// against meanwhile: a backdoor written during an update whose
		// old manifest was removed first is alerted, not hidden until
		// the scope is quiet.
		l.hold(s)
		if s.next == nil && s.last == nil {
			return
		}
	}
	if version || (!s.settle.IsZero() && s.checking == nil) {
		// An update may be starting, or one goes on: the scope is
		// reloaded once quiet. Nothing is held back for it: every change
		// is still checked now (against both manifests while a new one
		// waits). A change while the whole check runs is checked now
		// and wins over the check's view of it (settle.go).
		l.hold(s)
	}
	// A burst that touches a good part of the scope is one walk of the
	// scope rather than one lookup per path (cheaper from about a quarter
	// of the files on).
	if len(keys) >= l.cfg.ChurnPaths && 4*len(keys) >= s.files() {
		keys = []string{""}
	}
	for _, k := range topmost(keys) {
		if !l.recheck(ctx, s, k) {
			return
		}
	}
}

// manifestChanged handles an event on the manifest of s. Only a manifest
// whose content really changed to another validly signed one starts an
// update (a hold): a touch or a rewrite with the same bytes does nothing,
// and a manifest that cannot be verified is the scope's EXCEPTION at once.
func (l *loop) manifestChanged(s *scope) {
	m, ex := s.sc.LoadManifest(l.trust)
	switch {
	case ex != nil && l.stagedManifestGone(s):
		// An update step: checked against both meanwhile (stage.go).
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
		l.adopt(s, scopeScan{sc: s.sc, findings: []finding.Finding{*ex}})
	case s.exp != nil && m.Sum() == s.sum:
		s.next = nil // back to the manifest in force (or only touched)
	case s.next != nil && m.Sum() == s.nextSum:
		l.hold(s)
	default:
		if s.next == nil {
			l.log.Info("scope is being updated: a new signed manifest; changes that match neither manifest are still alerted",
				zap.String("integrity_scope", s.sc.Name), zap.Duration("settle", l.cfg.Settle))
		}
		s.next, s.nextSum = s.sc.NewExpected(m), m.Sum()
		l.hold(s)
	}
}

// recheckLinks rechecks the symlinks of every scope: their targets may
// have changed with this batch, without an event on them.
func (l *loop) recheckLinks(ctx context.Context) {
	for _, s := range l.scopes {
		if s.exp == nil || !s.settle.IsZero() {
			continue
		}
		for k := range s.links {
			if !l.recheck(ctx, s, k) {
				break
			}
		}
	}
}

// recheck checks key of s and records the result; on failure the scope
// is held for a whole check, and it returns false. While s is being
// updated, a path is a finding only if it is wrong under both the manifest
// in force and the new one.
func (l *loop) recheck(ctx context.Context, s *scope, key string) bool {
	exp, alts, over := s.exp, []*verify.Expected{s.next, l.stagedExp(s)}, int64(bigFile)
	if exp == nil {
		// The last manifest in force, or only a new one (recheckScope):
		// big files are hashed here, as there is no manifest in force
		// for hashLater.
		exp, alts, over = s.last, []*verify.Expected{s.next, l.stagedExp(s)}, 0
		if exp == nil {
			exp, alts = s.next, []*verify.Expected{l.stagedExp(s)}
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
		fresh = l.updateSteps(s, fresh)
	}
	if err == nil {
		// A big file being hashed off the loop at or below key was just
		// looked at again: its result, when it comes, is older.
		l.big.looked(s.sc.Name, key, big)
		fresh, links = l.keepBig(s, big, fresh, links)
		for _, k := range big {
			l.hashLater(ctx, s, k)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			l.log.Error("recheck failed; rechecking the scope", zap.String("integrity_scope", s.sc.Name), zap.String("path", key), zap.Error(err))
			l.hold(s)
		}
		return false
	}
	s.setLinks(key, links)
	l.linksChanged = true
	l.replaceAs(s, key, l.holdWriting(s, fresh, time.Now()), byEvent)
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
func (l *loop) keepBig(s *scope, big []string, fresh []finding.Finding, links []string) ([]finding.Finding, []string) {
	for _, k := range big {
		for _, f := range l.part(s, k) {
			fresh = append(fresh, *f)
		}
		if s.links[k] {
			links = append(links, k)
		}
	}
	return fresh, links
}

// adopt takes the result of a whole check of s.
func (l *loop) adopt(s *scope, r scopeScan) { l.adoptAs(s, r, false) }

// adoptAs is adopt; live says the check is one of a scope held while it
// changes (settle.go), whose new alerts a fold may hold back as a live
// recheck's (fold.go), not a full scan's.
func (l *loop) adoptAs(s *scope, r scopeScan, live bool) {
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
	l.linksChanged = true
	l.replaceAs(s, "", r.findings, how)
	l.modified()
}

// hold makes a scope wait until it has been quiet for Settle, but no
// longer than MaxHold in all: a scope that never stops changing is still
// checked.
func (l *loop) hold(s *scope) {
	now := time.Now()
	if s.settle.IsZero() {
		s.holdSince = now
	}
	s.settle = now.Add(l.cfg.Settle)
	if limit := s.holdSince.Add(l.cfg.MaxHold); s.settle.After(limit) {
		s.settle = limit
	}
	l.changed = true
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

// target is where a changed path belongs.
type target struct {
	scope *scope
	key   string
}

// locate maps an absolute path to its scope and key. apps says the set of
// apps may have changed; trust that the trust anchors or CRL did.
func (l *loop) locate(p string) (t target, ok, apps, trust bool) {
	if p == l.cfg.Trust || (l.cfg.CRL != "" && p == l.cfg.CRL) {
		trust = true
	}
	// Which app a path is in follows one rule (verify.Install.Locate):
	// the deepest apps root holding it wins.
	// (A path below the target of a symlinked app is the scope's through
	// scope.real, in classify: the target may be inside the server root,
	// whose core checks it too.)
	loc := l.in.Locate(p)
	apps = loc.Above // an apps directory (or one above it) appeared or went
	if loc.AppsRoot != "" && loc.Target == "" {
		t, ok, appsChanged := l.locateApp(loc)
		return t, ok, apps || appsChanged, trust
	}
	if !strings.HasPrefix(p, l.in.Root+"/") {
		return t, false, false, trust
	}
	key := p[len(l.in.Root)+1:]
	// The list of shipped apps, or a directory above it.
	apps = apps || key == "core/shipped.json" || strings.HasPrefix("core/shipped.json", key+"/")
	trust = trust || l.isTrustDir(p)
	core := l.scopes["core"]
	return target{core, key}, core != nil, apps, trust
}

// locateApp maps a path in an apps root (not through a symlinked app's
// target) to its scope and key; apps says the set of apps may have
// changed.
func (l *loop) locateApp(loc verify.Location) (t target, ok, apps bool) {
	if loc.App == "" {
		return t, false, false // an apps root inside another
	}
	key, id := loc.Rest, filepath.Base(loc.App)
	// The app directory itself, or its manifest, may make it a scope or
	// not (its info.xml makes it an app, and its version decides which
	// copy of an app in several roots Nextcloud loads).
	apps = key == "" || key == "appinfo" || key == "appinfo/signature.json" || key == "appinfo/info.xml"
	s := l.scopes[id]
	if s == nil || s.sc.Dir != loc.App {
		s = l.scopes[id+"@"+loc.AppsRoot] // a copy Nextcloud does not load
	}
	if s == nil || s.sc.Dir != loc.App {
		return t, false, apps // an app that is not checked
	}
	return target{s, key}, true, apps
}

func (l *loop) isTrustDir(p string) bool {
	return strings.HasPrefix(l.cfg.Trust, p+"/") || (l.cfg.CRL != "" && strings.HasPrefix(l.cfg.CRL, p+"/"))
}

func (l *loop) inTree(p string) bool {
	if under(p, l.in.Root) {
		return true
	}
	for _, a := range l.in.AppsRoots {
		if under(p, a) {
			return true
		}
	}
	return false
}

// isManifest reports whether key is the scope's signature.json (or a
// directory holding it, the scope's directory "" too: another directory
// renamed into its place brings its own manifest).
func isManifest(s *scope, key string) bool {
	m := s.sc.ManifestPath()
	rel := strings.TrimPrefix(m, s.sc.Dir+"/")
	return key == "" || key == rel || strings.HasPrefix(rel, key+"/")
}

// enumerate returns the scopes that must be checked now.
func (l *loop) enumerate() (map[string]*verify.Scope, error) {
	apps, warnings, err := l.in.Apps()
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		l.log.Warn("apps root not listed: its apps are not checked", zap.Error(w))
	}
	out := map[string]*verify.Scope{"core": l.in.Core()}
	for _, a := range apps {
		out[a.Name] = a
	}
	// An app that was signed stays a scope while its directory is there,
	// even without its manifest ("Signature data not found."): removing
	// appinfo/signature.json must not end its checks quietly.
	for name, dir := range l.meta.Signed {
		if _, ok := out[name]; !ok && isDir(dir) && l.inAppsRoot(dir) {
			out[name] = l.in.App(name, dir)
		}
	}
	return out, nil
}

// inAppsRoot reports whether dir is an app directory of one of the
// current apps roots: a signed app stays a scope without its manifest
// only there, not once the configuration no longer names its root.
func (l *loop) inAppsRoot(dir string) bool {
	return slices.Contains(l.in.AppsRoots, filepath.Dir(dir))
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// syncScopes adds new scopes and drops vanished ones; it returns the
// scopes that were added.
func (l *loop) syncScopes() []*scope {
	now, err := l.enumerate()
	if err != nil {
		l.log.Error("cannot list apps; keeping the known ones", zap.Error(err))
		return nil
	}
	l.dropGone(now)
	added := l.addScopes(now)
	// Findings of scopes that no longer exist (from the previous state);
	// the unsigned coverage's are its own (unsigned.go).
	for _, name := range l.findings.scopes() {
		if _, ok := l.scopes[name]; !ok && name != baseline.ScopeName {
			l.drop(name)
		}
	}
	l.watchScopes() // a new scope is watched whole before its first check
	return added
}

// dropGone drops the scopes not in now; a signed app's is an alert
// (SCOPE_GONE), also when it went while the daemon was not running.
func (l *loop) dropGone(now map[string]*verify.Scope) {
	for name, s := range l.scopes {
		if _, ok := now[name]; !ok {
			delete(l.scopes, name)
			_, signed := l.meta.Signed[name]
			if signed && !l.stagedGone(name) {
				l.appGone(s) // SCOPE_GONE unless back at once (appupdate.go)
			}
			l.drop(name)
		}
	}
	for name, dir := range l.meta.Signed { // removed while not running
		if _, pending := l.gone[name]; pending {
			continue
		}
		if _, ok := now[name]; !ok {
			if !l.inAppsRoot(dir) {
				// Not removed: no apps root holds it now (the
				// configuration's change was its own alert).
				delete(l.meta.Signed, name)
				l.modified()
				continue
			}
			if !l.stagedGone(name) {
				l.scopeGone(name, dir)
			}
		}
	}
}

// scopeGone alerts the removal of the signed app name (SCOPE_GONE).
func (l *loop) scopeGone(name, dir string) {
	if _, signed := l.meta.Signed[name]; !signed {
		return
	}
	l.log.Warn("SCOPE_GONE "+finding.EscapeControl(name)+": a signed app directory was removed: "+finding.EscapeControl(dir), zap.String("message_id", kind.IDScopeGone),
		zap.String("integrity_scope", name), zap.String("dir", dir))
	delete(l.meta.Signed, name)
	l.modified()
}

// addScopes makes a scope of each of now that is new or another
// directory now, and returns them.
func (l *loop) addScopes(now map[string]*verify.Scope) []*scope {
	var added []*scope
	for name, sc := range now {
		real := ""
		if r, err := filepath.EvalSymlinks(sc.Dir); err == nil && r != sc.Dir {
			real = r
		}
		if old, ok := l.scopes[name]; ok && old.sc.Dir == sc.Dir && old.real == real {
			continue
		}
		s := &scope{sc: sc, real: real}
		l.scopes[name] = s
		l.appBack(s)
		added = append(added, s)
		l.modified()
		if real != "" && !l.extraTree[real] && l.w != nil {
			// A symlinked app: Nextcloud checks it through the link, so
			// its target is watched too.
			l.extraTree[real] = true
			if err := l.w.AddTree(real); err != nil {
				l.log.Warn("target of a symlinked app not watched", zap.String("dir", real), zap.Error(err))
			}
		}
	}
	return added
}
