package daemon

import (
	"context"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/watch"
)

// watchMounts starts watching the mount table for mounts at, below or
// above the install and the apps roots: a bind, tmpfs or overlay mount
// over a signed directory hides the real files from inotify. It reports
// the mounts already over checked directories, and returns the channel
// of changes (nil when the mount table cannot be watched).
func (wa *watches) watchMounts(ctx context.Context) <-chan watch.MountChange {
	l := wa.l
	roots := []string{l.in.Root}
	for _, a := range l.in.AppsRoots {
		if !under(a, l.in.Root) {
			roots = append(roots, a)
		}
	}
	mw, err := watch.NewMountWatcher("", roots)
	if err != nil {
		l.log.Warn("mount table not watched: a mount over the install is only seen by full rescans", zap.Error(err))
		return nil
	}
	for _, c := range mw.Current() {
		if c.Point == c.Root {
			continue // the install on its own file system or volume: normal
		}
		wa.mountChanged(ctx, c, true)
	}
	out := make(chan watch.MountChange, 64)
	go func() {
		defer mw.Close()
		if err := mw.Run(ctx, out); err != nil && ctx.Err() == nil {
			l.log.Error("mount table no longer watched", zap.Error(err))
		}
	}()
	return out
}

// mountChanged alerts on a mount or unmount that changes what a checked
// directory shows (not one at a directory no scope checks, like the data
// directory), watches what is seen now and rechecks everything. atStart
// says the mount was there when the daemon started.
func (wa *watches) mountChanged(ctx context.Context, c watch.MountChange, atStart bool) {
	l := wa.l
	if l.d.onMount != nil {
		defer l.d.onMount(c)
	}
	if l.in.Excluded(c.Point) || wa.excludedBelow(c.Point) {
		l.log.Info("mount at a directory that is not checked", zap.String("mount_point", c.Point),
			zap.String("fstype", c.FSType), zap.Bool("mounted", c.Mounted))
		return
	}
	scope := ""
	if t, ok, _, _ := l.cat.locate(c.Point); ok {
		scope = t.scope.sc.Name
	}
	where := finding.EscapeControl(c.Point)
	if scope != "" {
		where = finding.EscapeControl(scope) + " " + where
	}
	what := "UNMOUNT " + where + ": a file system was unmounted at or above the install: what it showed is gone"
	if c.Mounted {
		what = "MOUNT " + where + ": a file system is mounted over a checked directory: it hides the files below it"
		if atStart {
			what = "MOUNT " + where + ": a file system was mounted over a checked directory before the start"
		}
	}
	l.log.Warn(what, zap.String("message_id", kind.IDMount), zap.String("integrity_scope", scope),
		zap.String("integrity_path", c.Point), zap.String("fstype", c.FSType), zap.String("source", c.Source),
		zap.Bool("mounted", c.Mounted), zap.String("root", c.Root))
	if atStart {
		return // the first full scan sees it as it is
	}
	if l.w != nil {
		wa.resync() // the watches stay on the hidden directories: watch what is seen now
	}
	l.sched.requestScan(ctx, "mount table changed", nil, false)
}

// excludedBelow reports whether p lies below a directory no scope checks.
func (wa *watches) excludedBelow(p string) bool {
	for q := filepath.Dir(p); q != "/" && q != "."; q = filepath.Dir(q) {
		if wa.l.in.Excluded(q) {
			return true
		}
	}
	return false
}
