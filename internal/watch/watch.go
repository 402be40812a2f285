// Package watch turns fsnotify's per-directory events into batches of
// changed paths for a whole tree.
//
// fsnotify (inotify) watches one directory at a time: Watcher adds a watch
// for every directory below its roots, adds new directories as they appear
// (the consumer rechecks a new directory as a whole, which covers what was
// written into it before its watch existed), and drops the watches below a
// directory that is renamed or removed (inotify keeps watching the inode
// under its old name). Events are coalesced: a batch is delivered once the
// tree has been quiet for Options.Delay, or Options.MaxDelay after its
// first event, and paths keep accumulating while the consumer is busy.
// When events were lost (queue overflow, watcher error) or a batch would
// exceed Options.MaxPaths, the batch says Rescan. Each Watcher has its own
// Options; the package has no mutable state.
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

// Options tune a Watcher; zero fields take the defaults.
type Options struct {
	Delay    time.Duration // quiet time before a batch goes out (default 20 ms)
	MaxDelay time.Duration // bound on the wait from a batch's first event (default 200 ms)
	MaxPaths int           // a larger batch becomes a Rescan (default 50000)
}

// The defaults of Options. A security alert must reach the journal within
// a second, so the delays are tens of milliseconds, not syncthing's 10 s.
const (
	defaultDelay    = 20 * time.Millisecond
	defaultMaxDelay = 200 * time.Millisecond
	defaultMaxPaths = 50000
)

// withDefaults returns o with the defaults in its zero (or negative)
// fields.
func (o Options) withDefaults() Options {
	if o.Delay <= 0 {
		o.Delay = defaultDelay
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = defaultMaxDelay
	}
	if o.MaxPaths <= 0 {
		o.MaxPaths = defaultMaxPaths
	}
	return o
}

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
	opt  Options // with the defaults filled in
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
// must not be watched, e.g. Nextcloud's data directory; opt tunes the
// batching.
func New(log *zap.Logger, skip func(dir string) bool, opt Options) (*Watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("start watcher: %w%s", err, limitHint(err))
	}
	if skip == nil {
		skip = func(string) bool { return false }
	}
	return &Watcher{
		fsw:     fsw,
		log:     log,
		skip:    skip,
		opt:     opt.withDefaults(),
		out:     make(chan Batch),
		watched: map[string]bool{},
		inodes:  map[uint64]map[string]bool{},
	}, nil
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
		remove(w.fsw, p) // may already be gone with its inode
	}
	for _, p := range readd {
		if err := w.fsw.Add(p); err != nil {
			w.noteAddError(p, err)
		}
	}
}

// repair adds again the watch of every directory recorded as watched.
// fsnotify's own list cannot be trusted for this: a watch shared by two
// names of one directory can be lost when one name goes, and fsnotify may
// keep the stale name listed (fsnotify#652). Adding a watch that exists
// is one cheap syscall and changes nothing.
func (w *Watcher) repair() {
	w.mu.Lock()
	all := make([]string, 0, len(w.watched))
	for p := range w.watched {
		all = append(all, p)
	}
	w.mu.Unlock()
	for _, p := range all {
		if err := w.fsw.Add(p); err != nil {
			w.noteAddError(p, err)
		}
	}
}

// Run reads events until ctx is done or the watcher is closed.
func (w *Watcher) Run(ctx context.Context) error {
	errs := w.relayErrors()
	b := newBatcher(w.opt)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var out chan<- Batch // nil, so never ready, while no batch waits
		next, ready := b.next()
		if ready {
			out = w.out
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("watcher closed")
			}
			w.handle(ev)
			b.add(ev.Name)
			timer.Reset(b.arm(time.Now()))
		case err, ok := <-errs:
			if !ok {
				return errors.New("watcher closed")
			}
			reason := "watcher error: " + err.Error()
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				reason = "inotify event queue overflow (raise fs.inotify.max_queued_events)"
			}
			if b.lose(reason) {
				w.log.Warn("events lost; rescanning everything", zap.String("message_id", journal.IDEventsLost), zap.String("reason", reason))
			}
			// Directories created or removed meanwhile: fix the watches
			// before the consumer rescans.
			w.Resync()
			timer.Reset(b.arm(time.Now()))
		case <-timer.C:
			b.flush()
		case out <- next:
			b.sent()
		}
	}
}

// relayErrors relays fsnotify's errors. fsnotify can send an error while it
// holds the lock that Add and Remove take (when it drops the watch of a
// moved directory itself): errors are read by a goroutine that never calls
// fsnotify, so Run, busy in Add, cannot deadlock with it. Errors are not
// lost: a full buffer means a rescan is coming anyway. The channel is
// closed when the watcher is.
func (w *Watcher) relayErrors() <-chan error {
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
	return errs
}

// batcher is Run's batching state: what changed since the timer last
// fired, and the batch waiting for the consumer. It reads no clock and
// does no I/O (Run owns the timer and the channels), so that its rules can
// be tested alone.
type batcher struct {
	opt     Options
	pending map[string]struct{} // paths changed since the last flush
	rescan  bool                // events lost since the last flush
	reason  string              // why rescan is set
	first   time.Time           // first event since the last flush
	armed   bool                // the timer runs; first is set
	batch   Batch               // waiting for the consumer, if ready
	ready   bool
}

func newBatcher(opt Options) *batcher {
	return &batcher{opt: opt, pending: map[string]struct{}{}}
}

// add records a changed path. Once the paths to send would exceed
// MaxPaths, they give way to a rescan.
func (b *batcher) add(p string) {
	if b.rescan {
		return
	}
	b.pending[p] = struct{}{}
	if len(b.pending)+len(b.batch.Paths) > b.opt.MaxPaths {
		b.lose(fmt.Sprintf("more than %d changed paths", b.opt.MaxPaths))
	}
}

// lose records that events were lost, so everything must be rechecked. It
// reports whether this is the first loss since the last flush, the one
// whose reason the batch gives.
func (b *batcher) lose(reason string) (first bool) {
	first = !b.rescan
	if first {
		b.rescan, b.reason = true, reason
	}
	b.pending = map[string]struct{}{}
	return first
}

// arm returns the time the timer must run from now, after an add or a
// lose: Delay of quiet, but no longer than MaxDelay after the first event
// since the last flush.
func (b *batcher) arm(now time.Time) time.Duration {
	if !b.armed {
		b.first, b.armed = now, true
		return b.opt.Delay
	}
	d := b.opt.Delay
	if left := b.opt.MaxDelay - now.Sub(b.first); left < d {
		d = max(left, 0)
	}
	return d
}

// flush is for when the timer fires: what changed merges into the batch
// waiting for the consumer (or a new one), which is then ready to go out.
// A rescan absorbs paths, and the first rescan's reason is kept.
func (b *batcher) flush() {
	b.armed = false
	if b.rescan || b.batch.Rescan {
		why := b.batch.Reason
		if why == "" {
			why = b.reason
		}
		b.batch = Batch{Rescan: true, Reason: why}
	} else {
		for _, p := range b.batch.Paths {
			b.pending[p] = struct{}{}
		}
		paths := make([]string, 0, len(b.pending))
		for p := range b.pending {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		b.batch = Batch{Paths: paths}
	}
	b.pending = map[string]struct{}{}
	b.rescan, b.reason = false, ""
	b.ready = true
}

// next returns the batch waiting for the consumer, if one is ready.
func (b *batcher) next() (Batch, bool) { return b.batch, b.ready }

// sent records that the consumer took the batch.
func (b *batcher) sent() { b.batch, b.ready = Batch{}, false }

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

// remove is fsw.Remove(p), which must not take the daemon down:
// fsnotify v1.10.1 dereferences a nil watch in Remove for a name whose
// directory was watched again under a new name before fsnotify handled
// its rename (fsnotify#652; a rename storm in the web root gets there).
// Remove's lock is released by a defer, so the watcher stays usable; the
// stale name is reported as an error.
func remove(fsw *fsnotify.Watcher, p string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("remove watch %s: fsnotify: %v", p, r)
		}
	}()
	return fsw.Remove(p)
}
