package daemon

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// target is where a changed path belongs.
type target struct {
	scope *scope
	key   string
}

// locate maps an absolute path to its scope and key. apps says the set of
// apps may have changed; trust that the trust anchors or CRL did.
func (ct *catalog) locate(p string) (t target, ok, apps, trust bool) {
	l := ct.l
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
		t, ok, appsChanged := ct.locateApp(loc)
		return t, ok, apps || appsChanged, trust
	}
	if !strings.HasPrefix(p, l.in.Root+"/") {
		return t, false, false, trust
	}
	key := p[len(l.in.Root)+1:]
	// The list of shipped apps, or a directory above it.
	apps = apps || key == "core/shipped.json" || strings.HasPrefix("core/shipped.json", key+"/")
	trust = trust || ct.isTrustDir(p)
	core := l.scopes["core"]
	return target{core, key}, core != nil, apps, trust
}

// locateApp maps a path in an apps root (not through a symlinked app's
// target) to its scope and key; apps says the set of apps may have
// changed.
func (ct *catalog) locateApp(loc verify.Location) (t target, ok, apps bool) {
	l := ct.l
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

func (ct *catalog) isTrustDir(p string) bool {
	l := ct.l
	return strings.HasPrefix(l.cfg.Trust, p+"/") || (l.cfg.CRL != "" && strings.HasPrefix(l.cfg.CRL, p+"/"))
}

func (ct *catalog) inTree(p string) bool {
	l := ct.l
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

// enumerate returns the scopes that must be checked now.
func (ct *catalog) enumerate() (map[string]*verify.Scope, error) {
	l := ct.l
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
		if _, ok := out[name]; !ok && isDir(dir) && ct.inAppsRoot(dir) {
			out[name] = l.in.App(name, dir)
		}
	}
	return out, nil
}

// inAppsRoot reports whether dir is an app directory of one of the
// current apps roots: a signed app stays a scope without its manifest
// only there, not once the configuration no longer names its root.
func (ct *catalog) inAppsRoot(dir string) bool {
	return slices.Contains(ct.l.in.AppsRoots, filepath.Dir(dir))
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// syncScopes adds new scopes and drops vanished ones; it returns the
// scopes that were added.
func (ct *catalog) syncScopes() []*scope {
	l := ct.l
	now, err := ct.enumerate()
	if err != nil {
		l.log.Error("cannot list apps; keeping the known ones", zap.Error(err))
		return nil
	}
	ct.dropGone(now)
	added := ct.addScopes(now)
	// Findings of scopes that no longer exist (from the previous state);
	// the unsigned coverage's are its own (unsigned.go).
	for _, name := range l.rec.findings.scopes() {
		if _, ok := l.scopes[name]; !ok && name != baseline.ScopeName {
			l.rec.drop(name)
		}
	}
	l.wa.watchScopes() // a new scope is watched whole before its first check
	return added
}

// dropGone drops the scopes not in now; a signed app's is an alert
// (SCOPE_GONE), also when it went while the daemon was not running.
func (ct *catalog) dropGone(now map[string]*verify.Scope) {
	l := ct.l
	for name, s := range l.scopes {
		if _, ok := now[name]; !ok {
			delete(l.scopes, name)
			_, signed := l.meta.Signed[name]
			if signed && !l.stage.shipped(name) {
				l.gone.appGone(s, time.Now().Add(l.cfg.Settle)) // SCOPE_GONE unless back at once (appupdate.go)
				l.rec.changed = true
			}
			l.rec.drop(name)
		}
	}
	for name, dir := range l.meta.Signed { // removed while not running
		if _, pending := l.gone.by[name]; pending {
			continue
		}
		if _, ok := now[name]; !ok {
			if !ct.inAppsRoot(dir) {
				// Not removed: no apps root holds it now (the
				// configuration's change was its own alert).
				delete(l.meta.Signed, name)
				l.rec.modified()
				continue
			}
			if !l.stage.shipped(name) {
				ct.scopeGone(name, dir)
			}
		}
	}
}

// scopeGone alerts the removal of the signed app name (SCOPE_GONE).
func (ct *catalog) scopeGone(name, dir string) {
	l := ct.l
	if _, signed := l.meta.Signed[name]; !signed {
		return
	}
	l.log.Warn("SCOPE_GONE "+finding.EscapeControl(name)+": a signed app directory was removed: "+finding.EscapeControl(dir), zap.String("message_id", kind.IDScopeGone),
		zap.String("integrity_scope", name), zap.String("dir", dir))
	delete(l.meta.Signed, name)
	l.rec.modified()
}

// addScopes makes a scope of each of now that is new or another
// directory now, and returns them.
func (ct *catalog) addScopes(now map[string]*verify.Scope) []*scope {
	l := ct.l
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
		l.gone.appBack(s)
		added = append(added, s)
		l.rec.modified()
		if real != "" && !ct.extraTree[real] && l.w != nil {
			// A symlinked app: Nextcloud checks it through the link, so
			// its target is watched too.
			ct.extraTree[real] = true
			if err := l.w.AddTree(real); err != nil {
				l.log.Warn("target of a symlinked app not watched", zap.String("dir", real), zap.Error(err))
			}
		}
	}
	return added
}

// appsGone alerts SCOPE_GONE for each removed app not back by now
// (appupdate.go).
func (ct *catalog) appsGone(now time.Time) {
	l := ct.l
	for name, dir := range l.gone.due(now) {
		delete(l.rec.folds.by, name)
		ct.scopeGone(name, dir)
		l.rec.changed = true
	}
}
