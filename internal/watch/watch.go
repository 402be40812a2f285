// Package watch turns fsnotify's per-directory events into batches of
// changed paths for a whole tree.
//
// fsnotify (inotify) watches one directory at a time: Watcher adds a watch
// for every directory below its roots, adds new directories as they appear
// (the consumer rechecks a new directory as a whole, which covers what was
// written into it before its watch existed), and drops the watches below a
// directory that is renamed or removed (inotify keeps watching the inode
// under its old name). Events are coalesced: a batch is delivered once the
// tree has been quiet for Delay, or MaxDelay after its first event, and
// paths keep accumulating while the consumer is busy. When events were
// lost (queue overflow, watcher error) or a batch would exceed MaxPaths,
// the batch says Rescan.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/journal"
)

// Tunables; package variables so that tests can change them.
var (
	// Delay is how long the tree must be quiet before a batch goes out.
	Delay = 20 * time.Millisecond
	// MaxDelay bounds the wait from the first event of a batch.
	MaxDelay = 200 * time.Millisecond
	// MaxPaths folds a larger batch into a rescan of everything.
	MaxPaths = 50000
)

// Batch is a set of changed paths.
type Batch struct {
	Paths  []string // absolute, sorted; files or directories
	Rescan bool     // events were lost: everything must be rechecked
	Reason string   // why Rescan is set
}

// Watcher watches trees and delivers batches.
type Watcher struct {
	fsw  *fsnotify.Watcher
	log  *zap.Logger
	skip func(dir string) bool
	out  chan Batch

	mu      sync.Mutex
	roots   []string        // recursive roots
	watched map[string]bool // directories with a watch
	// inodes maps a directory's inode to the watched paths that name it:
	// inotify has one watch per inode, so a directory renamed and re-added
	// under its new name shares its watch with the stale old name.
	inodes   map[uint64]map[string]bool
	degraded string // why some directories are not watched
	failures int    // watches that could not be added, ever
}

// New returns a Watcher. skip says which directories (absolute paths)
// must not be watched, e.g. Nextcloud's data directory.
func New(log *zap.Logger, skip func(dir string) bool) (*Watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("start watcher: %w%s", err, limitHint(err))
	}
	if skip == nil {
		skip = func(string) bool { return false }
	}
	return &Watcher{fsw: fsw, log: log, skip: skip, out: make(chan Batch), watched: map[string]bool{}, inodes: map[uint64]map[string]bool{}}, nil
}

// Batches delivers the batches; Run must be running.
func (w *Watcher) Batches() <-chan Batch { return w.out }

// Close stops the watcher.
func (w *Watcher) Close() error { return w.fsw.Close() }

// AddTree watches root and every directory below it. It fails only when
// root itself cannot be watched; directories below that cannot be are
// logged and make the watcher degraded.
func (w *Watcher) AddTree(root string) error {
	w.mu.Lock()
	w.roots = append(w.roots, root)
	w.mu.Unlock()
	if err := w.fsw.Add(root); err != nil {
		w.noteAddError(root, err)
		return fmt.Errorf("watch %s: %w%s", root, err, limitHint(err))
	}
	w.markWatched(root)
	w.addBelow(root)
	return nil
}

// AddDir watches dir itself only (for files outside the trees, like a
// pinned trust anchor).
func (w *Watcher) AddDir(dir string) error {
	if err := w.fsw.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w%s", dir, err, limitHint(err))
	}
	w.markWatched(dir)
	return nil
}

// Resync re-adds every tree, for after a degraded period: watches that
// could not be added may fit now. Existing watches are kept. Watching is
// no longer degraded when every directory got its watch.
func (w *Watcher) Resync() {
	w.mu.Lock()
	roots := append([]string(nil), w.roots...)
	before := w.failures
	var gone []string
	for p := range w.watched {
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			gone = append(gone, p)
		}
	}
	w.mu.Unlock()
	for _, p := range gone { // removed or renamed while events were lost
		w.dropBelow(p)
	}
	for _, r := range roots {
		if err := w.fsw.Add(r); err != nil {
			w.noteAddError(r, err)
			continue
		}
		w.markWatched(r)
		w.addBelow(r)
	}
	w.repair()
	w.mu.Lock()
	recovered := w.failures == before && w.degraded != ""
	if recovered {
		w.degraded = ""
	}
	w.mu.Unlock()
	if recovered {
		w.log.Info("every directory is watched again")
	}
}

// addBelow adds watches for the directories below dir (already watched):
// watch first, then list, so nothing created in between is missed.
func (w *Watcher) addBelow(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			w.log.Warn("cannot list directory to watch it", zap.String("dir", dir), zap.Error(err))
		}
		return
	}
	for _, e := range ents {
		if !e.IsDir() { // symlinks to directories are not followed
			continue
		}
		p := dir + "/" + e.Name()
		if w.skip(p) {
			continue
		}
		if err := w.fsw.Add(p); err != nil {
			w.noteAddError(p, err)
			continue
		}
		w.markWatched(p)
		w.addBelow(p)
	}
}

func (w *Watcher) noteAddError(p string, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		return // gone meanwhile; its removal event says so
	}
	w.mu.Lock()
	w.failures++
	first := w.degraded == ""
	if first {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE) {
			w.degraded = "inotify limit reached" + limitHint(err)
		} else {
			w.degraded = fmt.Sprintf("cannot watch %s: %v", p, err)
		}
	}
	msg := w.degraded
	w.mu.Unlock()
	if first {
		w.log.Error("directory not watched; changes below it are only seen by periodic full rescans",
			zap.String("message_id", journal.IDNotWatched), zap.String("dir", p), zap.Error(err), zap.String("hint", msg))
	}
}

// limitHint explains inotify limits in an error message.
func limitHint(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Sprintf(" (fs.inotify.max_user_watches=%s is exhausted: raise it, e.g. sysctl -w fs.inotify.max_user_watches=1048576, or install packaging/systemd/90-integrityd-inotify.conf)", readSysctl("max_user_watches"))
	case errors.Is(err, syscall.EMFILE):
		return fmt.Sprintf(" (fs.inotify.max_user_instances=%s is exhausted: raise it with sysctl -w fs.inotify.max_user_instances=1024)", readSysctl("max_user_instances"))
	}
	return ""
}

func readSysctl(name string) string {
	data, err := os.ReadFile("/proc/sys/fs/inotify/" + name)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(data))
}

// Stats returns the number of watched directories and why watching is
// degraded ("" when it is not).
func (w *Watcher) Stats() (dirs int, degraded string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.watched), w.degraded
}

// underRoot reports whether p is inside a recursive root.
func (w *Watcher) underRoot(p string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.roots {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// markWatched records that p has a watch.
func (w *Watcher) markWatched(p string) {
	var ino uint64
	var st syscall.Stat_t
	if syscall.Lstat(p, &st) == nil {
		ino = st.Ino
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.watched[p] = true
	if ino != 0 {
		if w.inodes[ino] == nil {
			w.inodes[ino] = map[string]bool{}
		}
		w.inodes[ino][p] = true
	}
}

// dropBelow removes the watches of dir and every directory below it. A
// watch that another (newer) path of the same directory shares is added
// again for that path.
func (w *Watcher) dropBelow(dir string) {
	w.mu.Lock()
	var drop []string
	for p := range w.watched {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			drop = append(drop, p)
			delete(w.watched, p)
		}
	}
	var readd []string
	for ino, paths := range w.inodes {
		shared := false
		for _, p := range drop {
			if paths[p] {
				delete(paths, p)
				shared = true
			}
		}
		if shared {
			for p := range paths {
				readd = append(readd, p)
			}
		}
		if len(paths) == 0 {
			delete(w.inodes, ino)
		}
	}
	w.mu.Unlock()
	for _, p := range drop {
		w.fsw.Remove(p) // may already be gone with its inode
	}
	for _, p := range readd {
		if err := w.fsw.Add(p); err != nil {
			w.noteAddError(p, err)
		}
	}
}

// repair re-adds the watches that fsnotify no longer has for directories
// still recorded as watched (a watch shared by two names of one directory
// can be lost when one name goes).
func (w *Watcher) repair() {
	have := map[string]bool{}
	for _, p := range w.fsw.WatchList() {
		have[p] = true
	}
	w.mu.Lock()
	var missing []string
	for p := range w.watched {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	w.mu.Unlock()
	for _, p := range missing {
		if err := w.fsw.Add(p); err != nil {
			w.noteAddError(p, err)
		}
	}
}

// Run reads events until ctx is done or the watcher is closed.
func (w *Watcher) Run(ctx context.Context) error {
	// fsnotify can send an error while it holds the lock that Add and
	// Remove take (when it drops the watch of a moved directory itself):
	// errors are read by a goroutine that never calls fsnotify, so Run,
	// busy in Add, cannot deadlock with it. Errors are not lost: a full
	// buffer means a rescan is coming anyway.
	errs := make(chan error, 16)
	go func() {
		defer close(errs)
		for err := range w.fsw.Errors {
			if errors.Is(err, syscall.EINVAL) {
				// fsnotify removing the watch of a moved directory that
				// the kernel already dropped: nothing was lost.
				continue
			}
			select {
			case errs <- err:
			default:
			}
		}
	}()
	pending := map[string]struct{}{}
	var rescan bool
	var reason string
	var first time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	var sendCh chan Batch
	var batch Batch

	arm := func() {
		now := time.Now()
		if !armed {
			first = now
			armed = true
			timer.Reset(Delay)
			return
		}
		d := Delay
		if left := MaxDelay - now.Sub(first); left < d {
			d = max(left, 0)
		}
		timer.Reset(d)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("watcher closed")
			}
			w.handle(ev)
			if !rescan {
				pending[ev.Name] = struct{}{}
				if len(pending)+len(batch.Paths) > MaxPaths {
					rescan, reason = true, fmt.Sprintf("more than %d changed paths", MaxPaths)
					pending = map[string]struct{}{}
				}
			}
			arm()
		case err, ok := <-errs:
			if !ok {
				return errors.New("watcher closed")
			}
			if !rescan {
				if errors.Is(err, fsnotify.ErrEventOverflow) {
					reason = "inotify event queue overflow (raise fs.inotify.max_queued_events)"
				} else {
					reason = "watcher error: " + err.Error()
				}
				w.log.Warn("events lost; rescanning everything", zap.String("message_id", journal.IDEventsLost), zap.String("reason", reason))
			}
			rescan = true
			pending = map[string]struct{}{}
			// Directories created or removed meanwhile: fix the watches
			// before the consumer rescans.
			w.Resync()
			arm()
		case <-timer.C:
			armed = false
			// Merge into the batch waiting to go out, if any.
			if rescan || batch.Rescan {
				why := batch.Reason // a rescan already waiting keeps its reason
				if why == "" {
					why = reason
				}
				batch = Batch{Rescan: true, Reason: why}
			} else {
				for _, p := range batch.Paths {
					pending[p] = struct{}{}
				}
				paths := make([]string, 0, len(pending))
				for p := range pending {
					paths = append(paths, p)
				}
				sort.Strings(paths)
				batch = Batch{Paths: paths}
			}
			pending = map[string]struct{}{}
			rescan, reason = false, ""
			sendCh = w.out
		case sendCh <- batch:
			sendCh, batch = nil, Batch{}
		}
	}
}

// handle maintains the watches for one event.
func (w *Watcher) handle(ev fsnotify.Event) {
	p := ev.Name
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() && w.underRoot(p) && !w.skip(p) {
			if err := w.fsw.Add(p); err != nil {
				w.noteAddError(p, err)
				return
			}
			w.markWatched(p)
			w.addBelow(p)
		}
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.mu.Lock()
		was := w.watched[p]
		w.mu.Unlock()
		if was {
			w.dropBelow(p)
			// The event may be stale: a new directory can stand at p by
			// now (its Create was handled before this), and dropping
			// took its watches. Watch it again.
			if fi, err := os.Lstat(p); err == nil && fi.IsDir() && w.underRoot(p) && !w.skip(p) {
				if err := w.fsw.Add(p); err != nil {
					w.noteAddError(p, err)
					return
				}
				w.markWatched(p)
				w.addBelow(p)
			}
		}
	}
}
