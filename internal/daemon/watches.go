package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/verify"
)

// trackLinks has the writers track the files of every scope that can
// change without an event under the install (symlinks' targets, files with
// several names).
func (wa *watches) trackLinks() {
	l := wa.l
	wa.linksChanged = false
	var paths []string
	for _, s := range l.scopes {
		for k := range s.links {
			paths = append(paths, s.abs(k))
		}
	}
	l.writers.Track(paths)
}

// linkKicks is the channel of changes to files with several names (nil
// without who-data), whose files it tracks from now on.
func (wa *watches) linkKicks() <-chan struct{} {
	l := wa.l
	if l.writers == nil {
		return nil
	}
	wa.trackLinks()
	return l.writers.Kicks()
}

// resync has the watcher walk its trees again on its own goroutine (the
// walk costs about half of watching the tree from scratch): the next
// full scan waits for it, so that a directory it watches is listed only
// after its watch is there.
func (wa *watches) resync() {
	wa.resynced = wa.l.w.ResyncAsync()
}

// addWatches watches, in this order (when the inotify limit is short,
// what comes first gets the watches): the state and trust directories,
// core (the server root without the apps roots), then the apps roots,
// where only the apps that are scopes are watched below their top
// (skipDir; the scopes are listed first for it).
func (wa *watches) addWatches() error {
	l := wa.l
	scopes, err := l.cat.enumerate()
	if err != nil {
		l.log.Error("cannot list apps; only their top directories are watched until they can be", zap.Error(err))
	}
	l.d.scopeDirs.Store(appScopeDirs(scopes))
	if l.cfg.StateDir != "" {
		if err := os.MkdirAll(l.cfg.StateDir, 0o750); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		if err := l.w.AddDir(l.cfg.StateDir); err != nil {
			l.log.Warn("state directory not watched", zap.Error(err))
		}
	}
	wa.watchTrust()
	if err := l.w.AddDir(l.conf.dir); err != nil && !errors.Is(err, fs.ErrNotExist) && l.cfg.FollowConfig {
		l.log.Warn("config directory not watched: a change of apps_paths is seen only on reload", zap.Error(err))
	}
	trees := []string{l.in.Root}
	for _, a := range l.in.AppsRoots {
		if !slices.Contains(trees, a) {
			trees = append(trees, a)
		}
	}
	wa.watchRoots()
	errs := l.w.AddTrees(trees...)
	if errs[0] != nil {
		return errs[0]
	}
	for i, a := range trees[1:] {
		// An apps root missing in the server root is no error (it was
		// never watched on its own); one elsewhere is.
		if err := errs[i+1]; err != nil && !(errors.Is(err, fs.ErrNotExist) && strings.HasPrefix(a, l.in.Root+"/")) {
			l.log.Error("apps directory not watched", zap.String("dir", a), zap.Error(err))
		}
	}
	return nil
}

// watchTrust watches the directories of the trust files, also those in
// the install, so that they get their watches before the trees do
// (adding a watch twice is harmless).
func (wa *watches) watchTrust() {
	l := wa.l
	for _, f := range []string{l.cfg.Trust, l.cfg.CRL} {
		if f == "" || verify.IsEmbedded(f) {
			continue
		}
		if err := l.w.AddDir(filepath.Dir(f)); err != nil {
			l.log.Error("trust file not watched", zap.String("file", f), zap.Error(err))
		}
	}
}

// watchScopes publishes the directories of the loop's app scopes for
// skipDir, and applies the rule again where the set changed: an app that
// became a scope is watched whole (before its first check, which covers
// what changed before), one that no longer is keeps the watches of its
// top and appinfo/ only. The loop calls it whenever its scopes change
// (syncScopes).
func (wa *watches) watchScopes() {
	l := wa.l
	scopes := make(map[string]*verify.Scope, len(l.scopes))
	for name, s := range l.scopes {
		scopes[name] = s.sc
	}
	next := appScopeDirs(scopes)
	prev := l.d.scopeDirs.Swap(next)
	if l.w == nil {
		return
	}
	var changed []string
	for dir := range *next {
		if !prev.has(dir) {
			changed = append(changed, dir)
		}
	}
	if prev != nil {
		for dir := range *prev {
			if !next.has(dir) {
				changed = append(changed, dir)
			}
		}
	}
	sort.Strings(changed)
	for _, dir := range changed {
		// Outside the install and its apps roots (where a symlinked app
		// resolves to) the rule never skips anything.
		if l.cat.inTree(dir) {
			l.w.Rewatch(dir)
		}
	}
}
