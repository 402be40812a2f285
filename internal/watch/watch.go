// Package watch is the daemon's sources of events: it turns fsnotify's
// per-directory events into batches of changed paths for a whole tree,
// reads who wrote a file from fanotify, and follows the mount table.
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
//
// Watches are a budget (fs.inotify.max_user_watches): the consumer's skip
// rule keeps them where something is checked, AddTrees spends them in the
// order given, Rewatch follows a rule that changed, and the entry logged
// when the limit is reached names the subtrees that hold the most.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/kind"
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
	// Entered counts, for the paths of Paths that got them, how many
	// times a new file took the name (created, or renamed there): a
	// signed file swapped for another and back is two, though its final
	// content is the signed one.
	Entered map[string]int
	// First is when the first event of the batch was read: the time of
	// the changes, which a busy consumer takes the batch long after.
	First time.Time
}

// Watcher watches trees and delivers batches.
type Watcher struct {
	fsw  *fsnotify.Watcher
	log  *zap.Logger
	skip func(dir string) bool
	opt  Options // with the defaults filled in
	out  chan Batch

	// group names the subtree a watched directory counts in (SetGroup).
	group func(dir string) string

	mu      sync.Mutex
	roots   []string        // recursive roots
	watched map[string]bool // directories with a watch
	// inodes maps a directory's inode to the watched paths that name it:
	// inotify has one watch per inode, so a directory renamed and re-added
	// under its new name shares its watch with the stale old name.
	inodes   map[uint64]map[string]bool
	degraded string // why some directories are not watched
	failures int    // watches that could not be added, ever
	// resyncs are the callers of ResyncAsync waiting for Run's next
	// re-sync; running says Run is reading events.
	resyncs []chan struct{}
	running bool
	kick    chan struct{} // wakes Run for resyncs
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
		kick:    make(chan struct{}, 1),
	}, nil
}

// SetGroup sets the rule of the watch-limit entry for the subtree a
// watched directory counts in: the caller's (the daemon's: the app
// directory it is in, verify.Install.Locate). Where group returns "", or
// without one, it is the directory just below the deepest tree holding
// the path. Call it before adding trees; group must be safe for
// concurrent use.
func (w *Watcher) SetGroup(group func(dir string) string) { w.group = group }

// Batches delivers the batches; Run must be running.
func (w *Watcher) Batches() <-chan Batch { return w.out }

// Close stops the watcher.
func (w *Watcher) Close() error { return w.fsw.Close() }

// AddTree watches root and every directory below it. It fails only when
// root itself cannot be watched; directories below that cannot be are
// logged and make the watcher degraded.
func (w *Watcher) AddTree(root string) error { return w.AddTrees(root)[0] }

// AddTrees is AddTree for each root in turn, with one difference: the
// walk of a root leaves out the other roots of the list below it, which
// are walked in their turn. Watches are added in the order of roots, so
// when the inotify limit is short the first trees get theirs: put first
// what matters most. It returns one error per root (nil where watched).
func (w *Watcher) AddTrees(roots ...string) []error {
	stop := map[string]bool{}
	w.mu.Lock()
	for _, r := range roots {
		stop[r] = true
		if !slices.Contains(w.roots, r) {
			w.roots = append(w.roots, r)
		}
	}
	w.mu.Unlock()
	errs := make([]error, len(roots))
	for i, r := range roots {
		if err := w.fsw.Add(r); err != nil {
			w.noteAddError(r, err)
			errs[i] = fmt.Errorf("watch %s: %w%s", r, err, limitHint(err))
			continue
		}
		w.markWatched(r)
		w.addBelow(r, stop)
	}
	return errs
}

// Rewatch applies the skip rule again at and below dir, a directory in a
// tree, after the rule changed there (an app that became one to check):
// the directories it no longer skips get their watches, those it skips
// now lose theirs. A symlink is not followed.
func (w *Watcher) Rewatch(dir string) {
	if !w.underRoot(dir) {
		return
	}
	w.mu.Lock()
	var watched []string
	for p := range w.watched {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			watched = append(watched, p)
		}
	}
	w.mu.Unlock()
	sort.Strings(watched)
	dropped := map[string]bool{}
	for _, p := range watched {
		if !droppedAbove(p, dir, dropped) && w.skip(p) {
			w.dropBelow(p)
			dropped[p] = true
		}
	}
	if dropped[dir] {
		return
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() || w.skip(dir) {
		return
	}
	if err := w.fsw.Add(dir); err != nil {
		w.noteAddError(dir, err)
		return
	}
	w.markWatched(dir)
	w.addBelow(dir, nil)
}

// droppedAbove reports whether p (at or below top) is below a directory
// in dropped, between top and p.
func droppedAbove(p, top string, dropped map[string]bool) bool {
	for q := p; len(q) > len(top); {
		i := strings.LastIndexByte(q, '/')
		if i < 0 {
			break
		}
		if q = q[:i]; dropped[q] {
			return true
		}
	}
	return false
}

// AddDir watches dir itself only: for files outside the trees, like a
// pinned trust anchor, or for a directory of a tree that must get its
// watch before the rest of the tree.
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
	// In the order the trees were added, each walked once (a tree does
	// not enter the trees below it).
	stop := map[string]bool{}
	for _, r := range roots {
		stop[r] = true
	}
	for _, r := range roots {
		if err := w.fsw.Add(r); err != nil {
			w.noteAddError(r, err)
			continue
		}
		w.markWatched(r)
		w.addBelow(r, stop)
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

// ResyncAsync has Run re-sync (Resync) on its own goroutine, so that the
// caller (the daemon's loop) does not wait for the walk of every tree;
// requests made before it starts share one walk. The channel is closed
// once done; without Run reading events, Resync runs here and the
// channel is closed already.
func (w *Watcher) ResyncAsync() <-chan struct{} {
	done := make(chan struct{})
	w.mu.Lock()
	running := w.running
	if running {
		w.resyncs = append(w.resyncs, done)
	}
	w.mu.Unlock()
	if !running {
		w.Resync()
		close(done)
		return done
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return done
}

// resyncRequested runs the re-sync that callers of ResyncAsync wait for.
func (w *Watcher) resyncRequested() {
	w.mu.Lock()
	waiting := w.resyncs
	w.resyncs = nil
	w.mu.Unlock()
	if len(waiting) == 0 {
		return
	}
	w.Resync()
	for _, ch := range waiting {
		close(ch)
	}
}

// setRunning notes whether Run reads events; when it stops, the waiting
// re-syncs are done here.
func (w *Watcher) setRunning(on bool) {
	w.mu.Lock()
	w.running = on
	w.mu.Unlock()
	if !on {
		w.resyncRequested()
	}
}

// addBelow adds watches for the directories below dir (already watched):
// watch first, then list, so nothing created in between is missed. The
// directories in stop (other trees, walked in their turn) are left out.
func (w *Watcher) addBelow(dir string, stop map[string]bool) {
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
		if stop[p] || w.skip(p) {
			continue
		}
		if err := w.fsw.Add(p); err != nil {
			w.noteAddError(p, err)
			continue
		}
		w.markWatched(p)
		w.addBelow(p, stop)
	}
}

// noteAddError records a watch that could not be added. The first one
// since watching was last complete is logged; when the watch limit is
// what stopped it, the entry also names the subtrees holding the most
// watches, which is where to look before raising the limit.
func (w *Watcher) noteAddError(p string, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		return // gone meanwhile; its removal event says so
	}
	w.mu.Lock()
	w.failures++
	first := w.degraded == ""
	var largest string
	var watches int
	if first {
		switch {
		case errors.Is(err, syscall.ENOSPC):
			largest, watches = w.largest(largestShown), len(w.watched)
			w.degraded = "inotify limit reached" + limitHint(err) + "; most watches: " + largest
		case errors.Is(err, syscall.EMFILE):
			w.degraded = "inotify limit reached" + limitHint(err)
		default:
			w.degraded = fmt.Sprintf("cannot watch %s: %v", p, err)
		}
	}
	msg := w.degraded
	w.mu.Unlock()
	if !first {
		return
	}
	fields := []zap.Field{zap.String("message_id", kind.IDNotWatched), zap.String("dir", p), zap.Error(err), zap.String("hint", msg)}
	if largest != "" {
		fields = append(fields, zap.String("largest", largest), zap.Int("watches", watches))
	}
	w.log.Error("directory not watched; changes below it are only seen by periodic full rescans", fields...)
}

// largestShown is how many subtrees the watch-limit entry names.
const largestShown = 5

// largest names the n subtrees with the most watched directories, most
// first ("apps/bigapp: 3,000 directories; lib: 120 directories"). A
// subtree is a directory just below the root of a tree (in an apps root,
// an app), or a tree's root alone, or a directory watched on its own.
// Where nine tenths of a subtree's watches are in one directory below
// it, that one is named too: "lib: 1,977 directories (1,975 in
// lib/many)". Paths are relative to the first tree, absolute outside it.
// w.mu is held.
func (w *Watcher) largest(n int) string {
	groups := map[string][]string{}
	for p := range w.watched {
		g := w.subtree(p)
		groups[g] = append(groups[g], p)
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Slice(names, func(i, j int) bool {
		if a, b := len(groups[names[i]]), len(groups[names[j]]); a != b {
			return a > b
		}
		return names[i] < names[j]
	})
	var b strings.Builder
	for i, g := range names[:min(n, len(names))] {
		if i > 0 {
			b.WriteString("; ")
		}
		c := len(groups[g])
		fmt.Fprintf(&b, "%s: %s", w.shown(g), dirCount(c))
		if in, k := heaviest(g, groups[g]); in != g {
			fmt.Fprintf(&b, " (%s in %s)", thousands(k), w.shown(in))
		}
	}
	return b.String()
}

// heaviest returns the deepest directory below top that holds nine
// tenths of paths (all at or below top), and how many it holds; top
// itself when there is none.
func heaviest(top string, paths []string) (string, int) {
	total := len(paths)
	for {
		count := map[string]int{}
		for _, p := range paths {
			if rest, ok := strings.CutPrefix(p, top+"/"); ok {
				first, _, _ := strings.Cut(rest, "/")
				count[top+"/"+first]++
			}
		}
		best, k := "", 0
		for c, m := range count {
			if m > k || (m == k && c < best) {
				best, k = c, m
			}
		}
		if best == "" || 10*k < 9*total {
			return top, len(paths)
		}
		below := paths[:0:0]
		for _, p := range paths {
			if p == best || strings.HasPrefix(p, best+"/") {
				below = append(below, p)
			}
		}
		top, paths = best, below
	}
}

// shown is p as the watch-limit entry shows it: relative to the first
// tree, absolute outside it. w.mu is held.
func (w *Watcher) shown(p string) string {
	if len(w.roots) > 0 {
		if rel, ok := strings.CutPrefix(p, w.roots[0]+"/"); ok {
			return rel
		}
	}
	return p
}

func dirCount(n int) string {
	if n == 1 {
		return "1 directory"
	}
	return thousands(n) + " directories"
}

// subtree returns the subtree of largest that p counts in: what
// the group function says (SetGroup), else the directory just below the deepest root
// holding p, or p itself. w.mu is held.
func (w *Watcher) subtree(p string) string {
	if w.group != nil {
		if g := w.group(p); g != "" {
			return g
		}
	}
	root := ""
	for _, r := range w.roots {
		if strings.HasPrefix(p, r+"/") && len(r) > len(root) {
			root = r
		}
	}
	if root == "" {
		return p
	}
	first, _, _ := strings.Cut(p[len(root)+1:], "/")
	return root + "/" + first
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// limitHint explains inotify limits in an error message.
func limitHint(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Sprintf(" (%s is exhausted: raise it, e.g. sysctl -w fs.inotify.max_user_watches=1048576, or install packaging/systemd/90-integrityd-inotify.conf)", limits("max_user_watches", "max_inotify_watches"))
	case errors.Is(err, syscall.EMFILE):
		return fmt.Sprintf(" (%s is exhausted: raise it with sysctl -w fs.inotify.max_user_instances=1024)", limits("max_user_instances", "max_inotify_instances"))
	}
	return ""
}

// limits names an inotify limit and its value, and the user namespace's
// own when it differs (fs.inotify.* shows the initial namespace's, and a
// container can have a lower one).
func limits(fsName, userName string) string {
	v := readSysctl("fs/inotify/" + fsName)
	s := "fs.inotify." + fsName + "=" + v
	if ns := readSysctl("user/" + userName); ns != "?" && ns != v {
		s += ", user." + userName + "=" + ns + " in this user namespace,"
	}
	return s
}

func readSysctl(name string) string {
	data, err := os.ReadFile("/proc/sys/" + name)
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
	w.setRunning(true)
	defer w.setRunning(false)
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
			if ev.Has(fsnotify.Create) {
				b.enter(ev.Name)
			}
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
				w.log.Warn("events lost; rescanning everything", zap.String("message_id", kind.IDEventsLost), zap.String("reason", reason))
			}
			// Directories created or removed meanwhile: fix the watches
			// before the consumer rescans.
			w.Resync()
			timer.Reset(b.arm(time.Now()))
		case <-w.kick:
			w.resyncRequested()
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
	entered map[string]int      // ... and how many times a new file took the name
	rescan  bool                // events lost since the last flush
	reason  string              // why rescan is set
	first   time.Time           // first event since the last flush
	armed   bool                // the timer runs; first is set
	batch   Batch               // waiting for the consumer, if ready
	ready   bool
}

func newBatcher(opt Options) *batcher {
	return &batcher{opt: opt, pending: map[string]struct{}{}, entered: map[string]int{}}
}

// enter records that a new file took the name p (after add(p)).
func (b *batcher) enter(p string) {
	if !b.rescan {
		b.entered[p]++
	}
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
	clear(b.entered)
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
		entered := b.batch.Entered
		for p, n := range b.entered {
			if entered == nil {
				entered = map[string]int{}
			}
			entered[p] += n
		}
		first := b.batch.First
		if first.IsZero() || b.first.Before(first) {
			first = b.first
		}
		b.batch = Batch{Paths: paths, Entered: entered, First: first}
	}
	b.pending = map[string]struct{}{}
	b.entered = map[string]int{}
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
			w.addBelow(p, nil)
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
				w.addBelow(p, nil)
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
