package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
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

// configDir is the install's config/ directory. It is not part of any
// scope, but its config.php and *.config.php say where the apps are
// (apps_paths), and the admin's mime type files change the expected
// core/js/mimetypelist.js.
func (l *loop) configDir() string { return filepath.Join(l.in.Root, "config") }

// isConfigFile reports whether p is a file Nextcloud reads its
// configuration from (config.php, *.config.php), or config/ itself.
func (l *loop) isConfigFile(p string) bool {
	dir := l.configDir()
	if p == dir {
		return true
	}
	if filepath.Dir(p) != dir {
		return false
	}
	name := filepath.Base(p)
	return name == "config.php" || strings.HasSuffix(name, ".config.php")
}

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
	if err := l.w.AddDir(l.configDir()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.log.Warn("config directory not watched: a change of apps_paths is seen only on reload", zap.Error(err))
	}
	next, err := verify.OpenInstall(l.in.Root, l.cfg.PinnedAppsPaths, l.cfg.PinnedDataDir)
	if err != nil {
		l.configUnreadable(err)
		return nil
	}
	if l.conf.logged {
		l.log.Info("Nextcloud's configuration can be read again", zap.String("message_id", kind.IDConfig))
	}
	l.conf = confRead{}
	if slices.Equal(next.AppsRoots, l.in.AppsRoots) && next.DataDir == l.in.DataDir {
		return nil
	}
	l.log.Error(fmt.Sprintf("config.php changed where Nextcloud loads apps from: apps roots %s, data directory %q; restarting the checks",
		strings.Join(next.AppsRoots, ", "), next.DataDir),
		zap.String("message_id", kind.IDConfig), zap.Strings("apps_paths", next.AppsRoots),
		zap.Strings("previous_apps_paths", l.in.AppsRoots), zap.String("data_dir", next.DataDir))
	return ErrInstallChanged
}

// confRead is how reading Nextcloud's configuration goes: since when it
// cannot be read (zero: it can), when to try again (zero: on its next
// change only), and whether the error was logged.
type confRead struct {
	since, retry time.Time
	logged       bool
	seen         string // config/'s files as they were at the last failure (confStamp)
}

// Reading Nextcloud's configuration is retried every confRetryEvery
// while it fails, and the failure is an error entry once it has lasted
// confGrace. Nextcloud rewrites config.php in place (truncate, then write,
// under an exclusive flock that readFile waits for, boundedly): a read
// can still see it empty or half written, and that is no error.
const (
	confGrace      = 3 * time.Second
	confRetryEvery = 200 * time.Millisecond
)

// configUnreadable notes that the configuration could not be read (err),
// logging it once it has stayed so for confGrace, and schedules the next
// try; once logged, the next change of the configuration tries again.
func (l *loop) configUnreadable(err error) {
	now := time.Now()
	// The time counts from the last change: a file rewritten again and
	// again (each write read half done, the lock not won) is being
	// written, not broken; one that stays as it is and fails is.
	if stamp := l.confStamp(); l.conf.since.IsZero() || stamp != l.conf.seen {
		l.conf.since, l.conf.seen = now, stamp
	}
	l.conf.retry = now.Add(confRetryEvery)
	if l.conf.logged {
		l.conf.retry = time.Time{}
		return
	}
	if now.Sub(l.conf.since) < confGrace {
		return
	}
	l.conf.logged, l.conf.retry = true, time.Time{}
	l.log.Error(fmt.Sprintf("Nextcloud's configuration cannot be read (for %s); still checking the apps roots read before", now.Sub(l.conf.since).Round(time.Second)),
		zap.String("message_id", kind.IDConfig), zap.Error(err))
}

// confStamp says what config/'s configuration files are now (name, size,
// mtime, inode of each), to tell a file still being written from one that
// stays unreadable.
func (l *loop) confStamp() string {
	var b strings.Builder
	ents, _ := os.ReadDir(l.configDir())
	for _, e := range ents {
		p := filepath.Join(l.configDir(), e.Name())
		if !l.isConfigFile(p) {
			continue
		}
		if fi, err := os.Lstat(p); err == nil {
			var ino uint64
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				ino = st.Ino
			}
			fmt.Fprintf(&b, "%s %d %d %d\n", e.Name(), fi.Size(), fi.ModTime().UnixNano(), ino)
		}
	}
	return b.String()
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
