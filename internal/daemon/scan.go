package daemon

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/state"
	"github.com/integrityd/integrityd/internal/verify"
)

// loadScope (re)reads the scope's manifest and checks the whole scope.
func (d *Daemon) loadScope(ctx context.Context, s *scope) error {
	m, ex := s.sc.LoadManifest(d.trust)
	if ex != nil {
		d.metrics.manifestFails.Inc()
		s.exp, s.files = nil, 0
		d.replace(s.sc.Name, "", []verify.Finding{{Scope: s.sc.Name, Kind: verify.KindException,
			Class: ex.Class, Message: ex.Message, Detail: ex.Detail}})
		return nil
	}
	s.exp = s.sc.NewExpected(m)
	s.files = s.exp.Len()
	fresh, links, err := s.sc.Recheck(ctx, s.exp, "")
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fresh = []verify.Finding{verify.ListException(s.sc.Name, err)}
	}
	s.setLinks("", links)
	d.replace(s.sc.Name, "", fresh)
	return nil
}

// enumerate returns the scopes that must be checked now.
func (d *Daemon) enumerate() (map[string]*verify.Scope, error) {
	apps, err := d.in.Apps()
	if err != nil {
		return nil, err
	}
	out := map[string]*verify.Scope{"core": d.in.Core()}
	for _, a := range apps {
		out[a.Name] = a
	}
	return out, nil
}

// syncScopes adds new scopes and drops vanished ones; it returns the
// scopes that were added.
func (d *Daemon) syncScopes() []*scope {
	now, err := d.enumerate()
	if err != nil {
		d.log.Error("cannot list apps; keeping the known ones", zap.Error(err))
		return nil
	}
	var added []*scope
	d.mu.Lock()
	for name := range d.scopes {
		if _, ok := now[name]; !ok {
			delete(d.scopes, name)
			d.mu.Unlock()
			d.drop(name)
			d.mu.Lock()
		}
	}
	var watchReal []string
	for name, sc := range now {
		real := ""
		if r, err := filepath.EvalSymlinks(sc.Dir); err == nil && r != sc.Dir {
			real = r
		}
		if old, ok := d.scopes[name]; !ok || old.sc.Dir != sc.Dir || old.real != real {
			s := &scope{sc: sc, real: real}
			d.scopes[name] = s
			added = append(added, s)
			if real != "" && !d.extraTree[real] {
				d.extraTree[real] = true
				watchReal = append(watchReal, real)
			}
		}
	}
	// Findings of scopes that no longer exist (from the previous state).
	var stale []string
	for name := range d.findings {
		if _, ok := d.scopes[name]; !ok {
			stale = append(stale, name)
		}
	}
	d.mu.Unlock()
	for _, name := range stale {
		d.drop(name)
	}
	for _, r := range watchReal {
		// A symlinked app: Nextcloud checks it through the link, so its
		// target is watched too.
		if d.w != nil {
			if err := d.w.AddTree(r); err != nil {
				d.log.Warn("target of a symlinked app not watched", zap.String("dir", r), zap.Error(err))
			}
		}
	}
	return added
}

// fullScan reloads the trust, lists the scopes and checks all of them.
func (d *Daemon) fullScan(ctx context.Context, reason string) error {
	start := time.Now()
	if t, err := verify.LoadTrust(d.cfg.Trust, d.cfg.CRL); err != nil {
		d.log.Error("cannot reload the trust anchors; keeping the previous ones", zap.Error(err))
	} else {
		d.trust = t
	}
	d.syncScopes()
	d.mu.Lock()
	scopes := make([]*scope, 0, len(d.scopes))
	for _, s := range d.scopes {
		scopes = append(scopes, s)
	}
	d.mu.Unlock()
	files := 0
	for _, s := range scopes {
		if err := d.loadScope(ctx, s); err != nil {
			return err
		}
		d.mu.Lock()
		s.settle = time.Time{}
		d.mu.Unlock()
		files += s.files
	}
	d.checkPinned()
	dur := time.Since(start)
	d.metrics.scanDone(dur)
	dirs, degraded := 0, ""
	if d.w != nil {
		dirs, degraded = d.w.Stats()
	}
	d.mu.Lock()
	d.st.Complete = true
	d.st.LastFullScan = start
	d.st.LastFullDuration = dur
	d.st.RescanInterval = d.cfg.RescanInterval
	d.st.Files = files
	d.st.Scopes = len(scopes)
	d.st.WatchedDirs = dirs
	d.st.Degraded = degraded
	n := 0
	for _, m := range d.findings {
		n += len(m)
	}
	d.dirty = true
	d.mu.Unlock()
	d.log.Info("full scan done", zap.String("message_id", journal.IDFullScan), zap.String("reason", reason), zap.Int("scopes", len(scopes)),
		zap.Int("files", files), zap.Int("findings", n), zap.Duration("duration", dur),
		zap.Int("watched_dirs", dirs), zap.String("degraded", degraded))
	d.save()
	return nil
}

// target is where a changed path belongs.
type target struct {
	scope *scope
	key   string
}

// locate maps an absolute path to its scope and key. apps says the set of
// apps may have changed; trust that the trust anchors or CRL did.
func (d *Daemon) locate(p string) (t target, ok, apps, trust bool) {
	if p == d.cfg.Trust || (d.cfg.CRL != "" && p == d.cfg.CRL) {
		trust = true
	}
	for _, root := range d.in.AppsRoots {
		if p == root || strings.HasPrefix(root, p+"/") {
			apps = true // an apps directory (or one above it) appeared or went
		}
		if !strings.HasPrefix(p, root+"/") {
			continue
		}
		rel := p[len(root)+1:]
		id, key, _ := strings.Cut(rel, "/")
		d.mu.Lock()
		s := d.scopes[id]
		d.mu.Unlock()
		if s == nil || s.sc.Dir != root+"/"+id {
			// An app appeared, or one that was not checked got a manifest.
			apps = key == "" || key == "appinfo" || key == "appinfo/signature.json"
			return t, false, apps, trust
		}
		// The app directory itself, or its manifest, may make it a scope
		// or not.
		apps = key == "" || key == "appinfo" || key == "appinfo/signature.json"
		return target{s, key}, true, apps, trust
	}
	if !strings.HasPrefix(p, d.in.Root+"/") {
		return t, false, false, trust
	}
	key := p[len(d.in.Root)+1:]
	// The list of shipped apps, or a directory above it.
	apps = apps || key == "core/shipped.json" || strings.HasPrefix("core/shipped.json", key+"/")
	trust = trust || d.isTrustDir(p)
	d.mu.Lock()
	core := d.scopes["core"]
	d.mu.Unlock()
	return target{core, key}, core != nil, apps, trust
}

func (d *Daemon) isTrustDir(p string) bool {
	return strings.HasPrefix(d.cfg.Trust, p+"/") || (d.cfg.CRL != "" && strings.HasPrefix(d.cfg.CRL, p+"/"))
}

// isManifest reports whether key is the scope's signature.json (or a
// directory holding it).
func isManifest(s *scope, key string) bool {
	m := s.sc.ManifestPath()
	rel := strings.TrimPrefix(m, s.sc.Dir+"/")
	return key == rel || strings.HasPrefix(rel, key+"/")
}

// apply rechecks the changed paths of one batch.
func (d *Daemon) apply(ctx context.Context, paths []string) {
	var appsChanged, trustChanged bool
	byScope := map[*scope][]string{}
	for _, p := range paths {
		t, ok, apps, trust := d.locate(p)
		appsChanged = appsChanged || apps
		trustChanged = trustChanged || trust
		if ok {
			byScope[t.scope] = append(byScope[t.scope], t.key)
		}
		d.mu.Lock()
		for _, s := range d.scopes {
			if s.real != "" && (p == s.real || strings.HasPrefix(p, s.real+"/")) {
				byScope[s] = append(byScope[s], strings.TrimPrefix(strings.TrimPrefix(p, s.real), "/"))
			}
		}
		d.mu.Unlock()
	}
	if trustChanged {
		d.log.Warn("trust anchors or CRL changed; verifying every manifest again")
		d.fullScan(ctx, "trust anchors changed")
		return
	}
	for s, keys := range byScope {
		if s.sc.Name == "core" && slices.ContainsFunc(keys, func(k string) bool {
			return k == verify.InTreeAnchors || strings.HasPrefix(verify.InTreeAnchors, k+"/")
		}) {
			d.checkPinned()
		}
	}
	if appsChanged {
		for _, s := range d.syncScopes() {
			d.log.Info("app to check appeared", zap.String("integrity_scope", s.sc.Name))
			d.hold(s)
		}
	}
	for s, keys := range byScope {
		d.mu.Lock()
		_, live := d.scopes[s.sc.Name]
		settling := !s.settle.IsZero()
		d.mu.Unlock()
		if !live {
			continue
		}
		// An update (a new manifest, a new version.php) holds the scope's
		// alerts until it is quiet; a big burst alone does not (holding
		// then would let steady writes delay alerts for a minute): it is
		// folded into one recheck of the whole scope.
		update := false
		for _, k := range keys {
			update = update || isManifest(s, k) || (s.sc.Name == "core" && k == "version.php")
		}
		if settling || update || s.exp == nil {
			if !settling && update {
				d.log.Info("scope is being updated; holding alerts until it is quiet",
					zap.String("integrity_scope", s.sc.Name), zap.Int("changed_paths", len(keys)), zap.Duration("settle", d.cfg.Settle))
			}
			d.hold(s)
			continue
		}
		if len(keys) >= d.cfg.ChurnPaths {
			keys = []string{""}
		}
		for _, k := range topmost(keys) {
			if !d.recheck(ctx, s, k) {
				break
			}
		}
	}
	// Symlinks: their targets may have changed with this batch.
	d.mu.Lock()
	var linked []target
	for _, s := range d.scopes {
		if s.exp != nil && s.settle.IsZero() {
			for l := range s.links {
				linked = append(linked, target{s, l})
			}
		}
	}
	d.mu.Unlock()
	for _, t := range linked {
		d.recheck(ctx, t.scope, t.key)
	}
}

// recheck checks key of s and records the result; on failure the scope
// is held for a whole check, and it returns false.
func (d *Daemon) recheck(ctx context.Context, s *scope, key string) bool {
	fresh, links, err := s.sc.Recheck(ctx, s.exp, key)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("recheck failed; rechecking the scope", zap.String("integrity_scope", s.sc.Name), zap.String("path", key), zap.Error(err))
			d.hold(s)
		}
		return false
	}
	s.setLinks(key, links)
	d.replace(s.sc.Name, key, fresh)
	return true
}

// hold makes a scope wait until it has been quiet for Settle, but no
// longer than MaxHold in all: a scope that never stops changing is still
// checked.
func (d *Daemon) hold(s *scope) {
	d.mu.Lock()
	now := time.Now()
	if s.settle.IsZero() {
		s.holdSince = now
	}
	s.settle = now.Add(d.cfg.Settle)
	if limit := s.holdSince.Add(d.cfg.MaxHold); s.settle.After(limit) {
		s.settle = limit
	}
	d.mu.Unlock()
}

// settled reloads and checks the scopes whose settle time has come.
func (d *Daemon) settled(ctx context.Context) {
	now := time.Now()
	d.mu.Lock()
	var due []*scope
	for _, s := range d.scopes {
		if !s.settle.IsZero() && !s.settle.After(now) {
			due = append(due, s)
		}
	}
	d.mu.Unlock()
	for _, s := range due {
		err := d.loadScope(ctx, s)
		d.mu.Lock()
		s.settle = time.Time{} // only now: Sync waits for it
		d.mu.Unlock()
		if err != nil {
			return
		}
		d.log.Info("scope checked after changes", zap.String("integrity_scope", s.sc.Name), zap.Int("files", s.files))
	}
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

// save writes the state if it changed.
func (d *Daemon) save() {
	if d.cfg.StateDir == "" {
		return
	}
	d.mu.Lock()
	if !d.dirty {
		d.mu.Unlock()
		return
	}
	st := d.st
	st.PID = os.Getpid()
	st.Updated = time.Now()
	st.Findings = nil
	for _, m := range d.findings {
		for _, f := range m {
			st.Findings = append(st.Findings, f)
		}
	}
	d.dirty = false
	d.mu.Unlock()
	SortFindings(st.Findings)
	if err := state.Save(d.cfg.StateDir, &st); err != nil {
		d.mu.Lock()
		d.dirty = true           // retried at the next tick
		first := d.saveErr == "" // once until it works again: the message varies (temporary names)
		d.saveErr = err.Error()
		d.mu.Unlock()
		if first {
			d.log.Warn("cannot save state; still watching, will retry", zap.String("message_id", journal.IDStateError), zap.Error(err))
		}
		return
	}
	d.mu.Lock()
	if d.saveErr != "" {
		d.log.Info("state saved again", zap.String("dir", d.cfg.StateDir))
	}
	d.saveErr = ""
	d.mu.Unlock()
}

// checkPinned compares the install's root.crt with the pinned trust
// anchors (when they are pinned outside the install) and alerts when that
// changes: whoever can write the install can also write its root.crt.
func (d *Daemon) checkPinned() {
	inTree := filepath.Join(d.in.Root, verify.InTreeAnchors)
	if d.cfg.Trust == inTree {
		return
	}
	differs, why := d.trust.DiffersFrom(inTree)
	if !differs {
		why = ""
	}
	d.mu.Lock()
	was := d.st.TrustDiffers
	d.st.TrustDiffers = why
	if was != why {
		d.dirty = true
	}
	d.mu.Unlock()
	switch {
	case why != "" && was == "":
		d.log.Error("the install's trust anchor differs from the pinned one", zap.String("message_id", journal.IDTrustDiffer),
			zap.String("integrity_scope", "core"), zap.String("integrity_path", verify.InTreeAnchors),
			zap.String("pinned", d.cfg.Trust), zap.String("integrity_detail", why))
	case why == "" && was != "":
		d.log.Info("the install's trust anchor matches the pinned one again", zap.String("message_id", journal.IDResolved),
			zap.String("integrity_scope", "core"), zap.String("integrity_path", verify.InTreeAnchors), zap.String("pinned", d.cfg.Trust))
	}
}
