package daemon

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
)

// The install's root and the apps roots outside it are followed by path,
// as Nextcloud runs them: the directories above each are watched too, so
// that a rename, removal or replacement of the tree itself (mv nextcloud
// nextcloud.old, a copy put in its place: a manual upgrade, or an attack)
// is an event. The loop then compares what stands at the path with what
// stood there (device and inode), alerts (ROOT_MOVED), and watches and
// checks whole what is there now; while nothing is, nothing below the
// path is checked (every file would be FILE_MISSING).

// treeID is what stands at a tree's path: its device and inode (zero:
// nothing, or not a directory).
type treeID struct{ dev, ino uint64 }

func statTree(p string) treeID {
	fi, err := os.Stat(p) // the path as Nextcloud opens it: a symlinked root is followed
	if err != nil || !fi.IsDir() {
		return treeID{}
	}
	return idOf(fi)
}

// idOf is the device and inode of fi (zero when unknown).
func idOf(fi os.FileInfo) treeID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return treeID{}
	}
	return treeID{uint64(st.Dev), st.Ino}
}

// followedTrees are the root and the apps roots outside it.
func (wa *watches) followedTrees() []string {
	l := wa.l
	trees := []string{l.in.Root}
	for _, a := range l.in.AppsRoots {
		if !under(a, l.in.Root) {
			trees = append(trees, a)
		}
	}
	return trees
}

// watchRoots records what stands at each followed tree's path and
// watches the directories above it (adding a watch twice is harmless).
func (wa *watches) watchRoots() {
	l := wa.l
	if wa.trees == nil {
		wa.trees = map[string]treeID{}
	}
	for _, t := range wa.followedTrees() {
		if _, ok := wa.trees[t]; !ok {
			wa.trees[t] = statTree(t)
		}
		if l.w == nil {
			continue
		}
		for dir := filepath.Dir(t); ; dir = filepath.Dir(dir) {
			if err := l.w.AddDir(dir); err != nil {
				l.log.Warn("directory above the install not watched: a rename of the install is seen only by full rescans",
					zap.String("dir", dir), zap.Error(err))
			}
			if dir == "/" || dir == "." {
				break
			}
		}
	}
}

// isTreeOrAbove reports whether p is a followed tree or a directory above
// one.
func (wa *watches) isTreeOrAbove(p string) bool {
	for t := range wa.trees {
		if under(t, p) {
			return true
		}
	}
	return false
}

// treeGone reports whether nothing stands at the path of the followed
// tree holding p.
func (wa *watches) treeGone(p string) bool {
	for t, id := range wa.trees {
		if id == (treeID{}) && under(p, t) {
			return true
		}
	}
	return false
}

// checkTrees compares what stands at each followed tree's path with what
// stood there, after an event on it or above it.
func (wa *watches) checkTrees(ctx context.Context) {
	l := wa.l
	changed := false
	for t, was := range wa.trees {
		now := statTree(t)
		if now == was {
			continue
		}
		wa.trees[t] = now
		changed = true
		where := finding.EscapeControl(t)
		fields := []zap.Field{zap.String("message_id", kind.IDRootMoved), zap.String("integrity_kind", "ROOT_MOVED"),
			zap.String("integrity_path", t), zap.Uint64("previous_inode", was.ino), zap.Uint64("inode", now.ino)}
		switch {
		case now == (treeID{}):
			l.log.Error("ROOT_MOVED "+where+": the directory was moved away or removed; nothing is checked there until a directory is back at its path", fields...)
		case was == (treeID{}):
			l.log.Warn("ROOT_MOVED "+where+": a directory is at the path again; checking it whole", fields...)
		default:
			l.log.Error("ROOT_MOVED "+where+": another directory stands at the path now; checking it whole", fields...)
		}
	}
	if !changed {
		return
	}
	wa.watchRoots() // a directory above may be another one now too
	if wa.treesPresent() {
		wa.resync() // the watches follow the path: the tree there now
		l.sched.requestScan(ctx, "install directory moved or replaced", nil, false)
	}
}

// treesPresent reports whether a directory stands at every followed
// tree's path.
func (wa *watches) treesPresent() bool {
	for _, id := range wa.trees {
		if id == (treeID{}) {
			return false
		}
	}
	return true
}
