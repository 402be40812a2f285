package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// ErrInstallChanged ends Run when Nextcloud's configuration now names other
// apps roots or another data directory than the daemon watches: the
// caller starts it again with the new ones (a full scan, with the state
// kept, so that nothing changed meanwhile goes unseen).
var ErrInstallChanged = errors.New("the apps roots or the data directory in Nextcloud's configuration changed")

// configChanged re-reads Nextcloud's configuration when the daemon follows
// it (Config.FollowConfig): new apps roots or a new data directory end Run
// with ErrInstallChanged, after an alert (whoever can write config.php can
// add an apps root that Nextcloud then loads apps from).
func (l *loop) configChanged() error {
	if !l.cfg.FollowConfig {
		return nil
	}
	// By path, not by inode: config/ may be a new directory now (renamed
	// away and made again), which no watch follows yet. Adding the watch
	// of a watched directory again changes nothing.
	if err := l.w.AddDir(l.conf.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.log.Warn("config directory not watched: a change of apps_paths is seen only on reload", zap.Error(err))
	}
	next, err := verify.OpenInstall(l.in.Root, l.cfg.PinnedAppsPaths, l.cfg.PinnedDataDir)
	if err != nil {
		l.conf.unreadable(l.log, err, time.Now())
		return nil
	}
	l.conf.readable(l.log)
	if slices.Equal(next.AppsRoots, l.in.AppsRoots) && next.DataDir == l.in.DataDir {
		return nil
	}
	l.log.Error(fmt.Sprintf("config.php changed where Nextcloud loads apps from: apps roots %s, data directory %q; restarting the checks",
		strings.Join(next.AppsRoots, ", "), next.DataDir),
		zap.String("message_id", kind.IDConfig), zap.Strings("apps_paths", next.AppsRoots),
		zap.Strings("previous_apps_paths", l.in.AppsRoots), zap.String("data_dir", next.DataDir))
	return ErrInstallChanged
}

// versionChanged follows version.php (an update): the rules that differ
// between Nextcloud releases apply to the new release from now on.
func (l *loop) versionChanged() {
	v := verify.ReadVersion(l.in.Root)
	if slices.Equal(v.Parts, l.in.Version.Parts) {
		return
	}
	in := *l.in // an Install is never changed once shared
	in.Version = v
	l.setInstall(&in)
	l.log.Info("Nextcloud release changed", zap.String("version", v.String))
}

// setInstall makes in (a changed copy of the running install) the one
// the loop, its scopes and the daemon's readers use.
func (l *loop) setInstall(in *verify.Install) {
	l.in = in
	l.d.install.Store(in)
	for _, s := range l.scopes {
		s.sc = s.sc.ForInstall(in)
	}
}
