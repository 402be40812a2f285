package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// waitTimeout bounds every wait for an expected batch. The machine is
// shared and slow under -race: a generous bound, never a tight timing.
const waitTimeout = 2 * time.Minute // a hang guard, never a speed target

// harness is a Watcher, closed at the end of the test, and its Run loop
// once started.
type harness struct {
	t       *testing.T
	w       *Watcher
	syncDir string // watched directory for sentinel files
	seq     int
	cancel  context.CancelFunc
	done    chan error
	stuck   bool // Run did not return when asked to
}

// newHarness returns a harness with a Watcher, not running yet.
func newHarness(t *testing.T, skip func(string) bool, opt Options) *harness {
	t.Helper()
	w, err := New(zaptest.NewLogger(t), skip, opt)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, w: w}
	t.Cleanup(func() { // after stop: cleanups run last-in first-out
		if !h.stuck { // Close would hang too: fail, do not hang the test binary
			w.Close()
		}
	})
	return h
}

// start runs the Watcher; the test's cleanup stops it and checks how it
// ended. Sentinel files go into syncDir.
func (h *harness) start(syncDir string) {
	ctx, cancel := context.WithCancel(context.Background())
	h.syncDir, h.cancel, h.done = syncDir, cancel, make(chan error, 1)
	go func() { h.done <- h.w.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

// startWatcher watches the tree root and runs the watcher.
func startWatcher(t *testing.T, root string, skip func(string) bool, opt Options) *harness {
	t.Helper()
	h := newHarness(t, skip, opt)
	if err := h.w.AddTree(root); err != nil {
		t.Fatal(err)
	}
	h.start(root)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if !errors.Is(err, context.Canceled) && err.Error() != "stuck" {
			h.t.Errorf("Run returned %v, want context.Canceled", err)
		}
		h.done <- err // stop is idempotent
	case <-time.After(waitTimeout):
		h.stuck = true
		h.done <- errors.New("stuck") // stop is idempotent
		buf := make([]byte, 1<<20)
		h.t.Errorf("Run did not return %v after its context was cancelled; goroutines:\n%s", waitTimeout, buf[:runtime.Stack(buf, true)])
	}
}

// next returns the next batch, or false after timeout.
func (h *harness) next(timeout time.Duration) (Batch, bool) {
	h.t.Helper()
	select {
	case b := <-h.w.Batches():
		checkBatch(h.t, b)
		return b, true
	case err := <-h.done:
		h.done <- err
		h.t.Fatalf("Run returned early: %v", err)
	case <-time.After(timeout):
	}
	return Batch{}, false
}

// checkBatch checks the invariants of every batch.
func checkBatch(t *testing.T, b Batch) {
	t.Helper()
	if b.Rescan {
		if len(b.Paths) != 0 {
			t.Errorf("rescan batch with paths: %q", b.Paths)
		}
		return
	}
	if len(b.Paths) == 0 {
		t.Errorf("empty batch: %+v", b)
	}
	for i, p := range b.Paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			t.Errorf("batch path %q is not clean and absolute", p)
		}
		if i > 0 && b.Paths[i-1] >= p {
			t.Errorf("batch paths not sorted and unique: %q before %q", b.Paths[i-1], p)
		}
	}
}

// waitPaths reads batches until every path in want has been seen (each
// entry may list alternatives separated by "|"), and returns them all.
func (h *harness) waitPaths(want ...string) []Batch {
	h.t.Helper()
	var got []Batch
	seen := map[string]bool{}
	missing := func() []string {
		var m []string
		for _, w := range want {
			found := false
			for _, alt := range strings.Split(w, "|") {
				found = found || seen[alt]
			}
			if !found {
				m = append(m, w)
			}
		}
		return m
	}
	deadline := time.Now().Add(waitTimeout)
	for len(missing()) > 0 {
		b, ok := h.next(time.Until(deadline))
		if !ok {
			h.t.Fatalf("after %v still waiting for %q; got batches %+v", waitTimeout, missing(), got)
		}
		got = append(got, b)
		for _, p := range b.Paths {
			seen[p] = true
		}
	}
	return got
}

// sync writes a sentinel file into the watched syncDir and returns the
// batches up to the one holding it. inotify delivers the events of one
// watcher in order, so an event caused before sync would be in them: this
// proves that something was NOT reported, without sleeping.
func (h *harness) sync() []Batch {
	h.t.Helper()
	h.seq++
	p := filepath.Join(h.syncDir, fmt.Sprintf(".sentinel-%d", h.seq))
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		h.t.Fatal(err)
	}
	return h.waitPaths(p)
}

// waitRescan reads batches until a rescan one; it fails after timeout.
func (h *harness) waitRescan(timeout time.Duration) (Batch, []Batch) {
	h.t.Helper()
	var got []Batch
	deadline := time.Now().Add(timeout)
	for {
		b, ok := h.next(time.Until(deadline))
		if !ok {
			h.t.Fatalf("no rescan batch after %v; got %+v", timeout, got)
		}
		got = append(got, b)
		if b.Rescan {
			return b, got
		}
	}
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s; have %s", waitTimeout, what, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watchedDirs returns the directories the Watcher thinks it watches, and
// checks that fsnotify agrees (a watch fsnotify still holds but the
// Watcher forgot reports stale paths; the other way, changes are missed).
func watchedDirs(w *Watcher) (dirs []string, consistent bool) {
	w.mu.Lock()
	for p := range w.watched {
		dirs = append(dirs, p)
	}
	w.mu.Unlock()
	sort.Strings(dirs)
	fs := w.fsw.WatchList()
	sort.Strings(fs)
	return dirs, strings.Join(dirs, "\n") == strings.Join(fs, "\n")
}

// waitWatched waits until exactly dirs are watched, per the Watcher's
// Stats and per fsnotify.
func waitWatched(t *testing.T, w *Watcher, dirs ...string) {
	t.Helper()
	want := append([]string(nil), dirs...)
	sort.Strings(want)
	eventually(t, fmt.Sprintf("want %d watched directories %q", len(want), want), func() (bool, string) {
		n, degraded := w.Stats()
		got, consistent := watchedDirs(w)
		state := fmt.Sprintf("Stats()=%d %q, watched %q, fsnotify %q", n, degraded, got, w.fsw.WatchList())
		return n == len(want) && consistent && strings.Join(got, "\n") == strings.Join(want, "\n"), state
	})
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func write(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// under returns the paths of the batches equal to or below one of dirs.
func under(batches []Batch, dirs ...string) []string {
	var out []string
	for _, b := range batches {
		for _, p := range b.Paths {
			for _, d := range dirs {
				if p == d || strings.HasPrefix(p, d+"/") {
					out = append(out, p)
					break
				}
			}
		}
	}
	return out
}

func TestNestedWrite(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b", "c")
	mkdirs(t, deep)
	h := startWatcher(t, root, nil, Options{})
	waitWatched(t, h.w, root, root+"/a", root+"/a/b", deep)

	f := filepath.Join(deep, "f")
	write(t, f)
	h.waitPaths(f)
	if n, degraded := h.w.Stats(); n != 4 || degraded != "" {
		t.Errorf("Stats() = %d, %q; want 4, \"\"", n, degraded)
	}
}

// TestNewTree: mkdir -p a/b/c && write a/b/c/f, immediately: the batch
// names the new directory (the consumer rechecks it as a whole), and the
// new directories are watched, however fast they were created.
func TestNewTree(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	h := startWatcher(t, root, nil, Options{})
	const trees = 20
	var want, dirs []string
	dirs = append(dirs, root)
	for i := 0; i < trees; i++ {
		top := filepath.Join(root, fmt.Sprint("t", i))
		c := filepath.Join(top, "b", "c")
		mkdirs(t, c)
		write(t, filepath.Join(c, "f"))
		want = append(want, top+"|"+c+"|"+c+"/f")
		dirs = append(dirs, top, top+"/b", c)
	}
	h.waitPaths(want...)
	waitWatched(t, h.w, dirs...)

	want = nil
	for i := 0; i < trees; i++ {
		g := filepath.Join(root, fmt.Sprint("t", i), "b", "c", "g")
		write(t, g)
		want = append(want, g)
	}
	h.waitPaths(want...)
}

// TestRenameDir: after d -> e, writes below e are reported as e/..., never
// with d/... paths (inotify keeps watching the inodes under their old
// names unless the watches are dropped and re-added).
func TestRenameDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	outside := t.TempDir()
	d := filepath.Join(root, "d")
	mkdirs(t, d+"/s1/s2", d+"/t")
	write(t, d+"/f")
	h := startWatcher(t, root, nil, Options{})
	waitWatched(t, h.w, root, d, d+"/s1", d+"/s1/s2", d+"/t")

	// Rename inside the tree: same number of watches, new names.
	e := filepath.Join(root, "e")
	if err := os.Rename(d, e); err != nil {
		t.Fatal(err)
	}
	h.waitPaths(d, e)
	waitWatched(t, h.w, root, e, e+"/s1", e+"/s1/s2", e+"/t")
	write(t, e+"/s1/s2/g")
	write(t, e+"/t/g")
	write(t, e+"/f")
	got := h.waitPaths(e+"/s1/s2/g", e+"/t/g", e+"/f")
	got = append(got, h.sync()...)
	if stale := under(got, d); len(stale) != 0 {
		t.Errorf("stale paths after rename: %q", stale)
	}

	// Rename out of the tree: the watches go.
	out := filepath.Join(outside, "e")
	if err := os.Rename(e, out); err != nil {
		t.Fatal(err)
	}
	h.waitPaths(e)
	waitWatched(t, h.w, root)
	write(t, out+"/s1/s2/h")
	write(t, out+"/f")
	got = h.sync()
	if stale := under(got, e, out); len(stale) != 0 {
		t.Errorf("writes in a directory moved out of the tree reported: %q", stale)
	}

	// Rename into the tree: watched again, under the new name.
	back := filepath.Join(root, "back")
	if err := os.Rename(out, back); err != nil {
		t.Fatal(err)
	}
	h.waitPaths(back)
	waitWatched(t, h.w, root, back, back+"/s1", back+"/s1/s2", back+"/t")
	write(t, back+"/s1/s2/i")
	got = h.waitPaths(back + "/s1/s2/i")
	got = append(got, h.sync()...)
	if stale := under(got, d, e, out); len(stale) != 0 {
		t.Errorf("stale paths: %q", stale)
	}
}

// TestRenameDirOverEmptyDir: d renamed over an existing, empty, watched
// directory e (rename(2) replaces it; inotify reports no removal of e).
func TestRenameDirOverEmptyDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d, e := filepath.Join(root, "d"), filepath.Join(root, "e")
	mkdirs(t, d+"/s", e)
	h := startWatcher(t, root, nil, Options{})
	waitWatched(t, h.w, root, d, d+"/s", e)
	// os.Rename refuses to replace a directory; rename(2) does it.
	if err := syscall.Rename(d, e); err != nil {
		t.Fatal(err)
	}
	h.waitPaths(d, e)
	waitWatched(t, h.w, root, e, e+"/s")
	write(t, e+"/s/f")
	write(t, e+"/g")
	got := h.waitPaths(e+"/s/f", e+"/g")
	got = append(got, h.sync()...)
	if stale := under(got, d); len(stale) != 0 {
		t.Errorf("stale paths after rename: %q", stale)
	}
}

func TestRemoveTree(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	r := filepath.Join(root, "r")
	mkdirs(t, r+"/a/b", r+"/c", root+"/keep")
	write(t, r+"/a/b/f")
	h := startWatcher(t, root, nil, Options{})
	waitWatched(t, h.w, root, r, r+"/a", r+"/a/b", r+"/c", root+"/keep")
	if err := os.RemoveAll(r); err != nil {
		t.Fatal(err)
	}
	h.waitPaths(r)
	waitWatched(t, h.w, root, root+"/keep")

	// The same name again is a new directory, watched as such.
	mkdirs(t, r+"/x")
	h.waitPaths(r)
	waitWatched(t, h.w, root, root+"/keep", r, r+"/x")
	write(t, r+"/x/f")
	h.waitPaths(r + "/x/f")
}

func TestSkip(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	skipped := filepath.Join(root, "skipme")
	later := filepath.Join(root, "skiplater")
	mkdirs(t, skipped+"/sub", root+"/ok")
	var mu sync.Mutex
	var asked []string
	skip := func(dir string) bool {
		mu.Lock()
		asked = append(asked, dir)
		mu.Unlock()
		return dir == skipped || dir == later
	}
	h := startWatcher(t, root, skip, Options{})
	waitWatched(t, h.w, root, root+"/ok")

	mkdirs(t, later+"/sub")
	h.waitPaths(later)
	mkdirs(t, root+"/ok/new")
	h.waitPaths(root + "/ok/new")
	waitWatched(t, h.w, root, root+"/ok", root+"/ok/new")

	write(t, skipped+"/f")
	write(t, skipped+"/sub/f")
	write(t, later+"/f")
	write(t, later+"/sub/f")
	got := h.sync()
	if bad := under(got, skipped, later); len(bad) != 0 {
		t.Errorf("writes in skipped directories reported: %q", bad)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, d := range asked {
		if strings.HasPrefix(d, skipped+"/") || strings.HasPrefix(d, later+"/") {
			t.Errorf("skip asked about %s, below a skipped directory", d)
		}
	}
}

// TestSymlinkNotFollowed: a symlink to a directory outside the tree, there
// at the start or created later, is not followed.
func TestSymlinkNotFollowed(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	outside := t.TempDir()
	mkdirs(t, outside+"/sub")
	if err := os.Symlink(outside, root+"/l1"); err != nil {
		t.Fatal(err)
	}
	h := startWatcher(t, root, nil, Options{})
	waitWatched(t, h.w, root)

	if err := os.Symlink(outside, root+"/l2"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside+"/sub", root+"/l3"); err != nil {
		t.Fatal(err)
	}
	h.waitPaths(root+"/l2", root+"/l3")
	waitWatched(t, h.w, root)

	write(t, outside+"/f")
	write(t, outside+"/sub/f")
	mkdirs(t, outside+"/newdir")
	write(t, outside+"/newdir/f")
	got := h.sync()
	if bad := under(got, outside, root+"/l1", root+"/l2", root+"/l3"); len(bad) != 0 {
		t.Errorf("writes through a symlink reported: %q", bad)
	}
	waitWatched(t, h.w, root)
}

// TestCoalesce: many writes to one file while the consumer reads give few
// batches, each naming the file once.
func TestCoalesce(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	f := filepath.Join(root, "f")
	write(t, f)
	h := startWatcher(t, root, nil, Options{Delay: 100 * time.Millisecond, MaxDelay: time.Second})

	var got []Batch
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // read while writing
		defer wg.Done()
		for {
			select {
			case b := <-h.w.Batches():
				got = append(got, b)
			case <-stop:
				return
			}
		}
	}()
	const writes = 100
	for i := 0; i < writes; i++ {
		if err := os.WriteFile(f, []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	got = append(got, h.sync()...)
	n := 0
	for _, b := range got {
		checkBatch(t, b)
		if b.Rescan {
			t.Errorf("unexpected rescan: %+v", b)
		}
		for _, p := range b.Paths {
			if p == f {
				n++
			}
		}
	}
	if n == 0 || n > writes/10 {
		t.Errorf("%d writes reported in %d batches, want 1..%d", writes, n, writes/10)
	}
	t.Logf("%d writes: %d batches name the file", writes, n)
}

// TestCoalesceWhileBusy: while the consumer does not read, the batch
// waiting for it absorbs the later changes: paths written in rounds, each
// long enough for a batch to form, all come in the first batch the
// consumer reads (the last round's may come next on a slow machine).
// Without the merge, the earlier rounds' paths would be lost (the waiting
// batch replaced) or come in later batches.
func TestCoalesceWhileBusy(t *testing.T) {
	t.Parallel()
	opt := Options{Delay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
	const (
		rounds = 4
		round  = 2 * 50 * time.Millisecond // 2 MaxDelay: a batch forms and waits
		settle = 8 * 50 * time.Millisecond // the last round is merged too
	)
	root := t.TempDir()
	f := filepath.Join(root, "f") // written every round: named once
	write(t, f)
	h := startWatcher(t, root, nil, opt)
	early := []string{f} // written before the last round
	var last string
	for i := 0; i < rounds; i++ {
		p := filepath.Join(root, fmt.Sprint("p", i))
		write(t, p)
		write(t, f)
		if i == rounds-1 {
			last = p
			break
		}
		early = append(early, p)
		time.Sleep(round)
	}
	time.Sleep(settle)

	got := h.sync() // the consumer comes back
	all := append([]string{last}, early...)
	var named []Batch // the batches that name written paths
	for _, b := range got {
		if b.Rescan {
			t.Fatalf("unexpected rescan: %+v", b)
		}
		if len(under([]Batch{b}, all...)) > 0 {
			named = append(named, b)
		}
	}
	missing := func(batches []Batch, want []string) []string {
		var m []string
		for _, p := range want {
			if len(under(batches, p)) == 0 {
				m = append(m, p)
			}
		}
		return m
	}
	if m := missing(got, all); len(m) > 0 {
		t.Fatalf("written while the consumer was busy, never reported: %q; got batches %+v", m, got)
	}
	switch m := missing(got[:1], early); {
	case len(m) > 0:
		t.Errorf("the batch that waited for the consumer did not absorb the later rounds: %q missing from the first batch; got batches %+v", m, got)
	case len(named) > 2:
		t.Errorf("%d rounds of writes while the consumer was busy came in %d batches, want 1 (2 on a slow machine): %+v", rounds, len(named), named)
	case len(named) == 2:
		t.Logf("the last round was not merged yet (slow machine?): %+v", named)
	}
}

// TestMaxDelay: a tree that never goes quiet still gets batches.
func TestMaxDelay(t *testing.T) {
	t.Parallel()
	opt := Options{Delay: 2 * time.Second, MaxDelay: 100 * time.Millisecond}
	root := t.TempDir()
	f := filepath.Join(root, "f")
	h := startWatcher(t, root, nil, opt)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			os.WriteFile(f, []byte(strconv.Itoa(i)), 0o644)
		}
	}()
	defer func() { close(stop); <-done }()
	// Writes come every few ms, far more often than Delay: only MaxDelay
	// can make a batch go out.
	b, ok := h.next(waitTimeout)
	if !ok {
		t.Fatalf("no batch within %v while writes go on; MaxDelay is %v", waitTimeout, opt.MaxDelay)
	}
	if len(under([]Batch{b}, f)) != 1 {
		t.Errorf("batch %+v does not name %s", b, f)
	}
}

// TestMaxPaths: more changed paths than MaxPaths fold into a rescan.
func TestMaxPaths(t *testing.T) {
	t.Parallel()
	// A long Delay keeps the 200 creations in one batch window.
	opt := Options{Delay: 500 * time.Millisecond, MaxDelay: 5 * time.Second, MaxPaths: 50}
	root := t.TempDir()
	h := startWatcher(t, root, nil, opt)
	for i := 0; i < 200; i++ {
		write(t, filepath.Join(root, fmt.Sprint("f", i)))
	}
	b, got := h.waitRescan(waitTimeout + 5*time.Second)
	if !strings.Contains(b.Reason, "50") {
		t.Errorf("rescan reason %q does not give the limit", b.Reason)
	}
	if len(got) > 1 {
		t.Logf("batches before the rescan: %+v", got[:len(got)-1])
	}
	// Afterwards, batches name paths again.
	h.sync()
}

// TestRescanReasonKeptWhenMerged: a rescan batch waiting for a busy
// consumer keeps its Reason when later events merge into it.
func TestRescanReasonKeptWhenMerged(t *testing.T) {
	t.Parallel()
	opt := Options{Delay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MaxPaths: 50}
	root := t.TempDir()
	h := startWatcher(t, root, nil, opt)
	for i := 0; i < 200; i++ {
		write(t, filepath.Join(root, fmt.Sprint("f", i)))
	}
	// The consumer is busy: the rescan batch is formed and waits.
	time.Sleep(4 * opt.MaxDelay)
	// One more change, merged into the waiting batch.
	write(t, filepath.Join(root, "late"))
	time.Sleep(4 * opt.MaxDelay)
	b, _ := h.waitRescan(waitTimeout)
	if b.Reason == "" {
		t.Errorf("rescan batch without a reason after a later event merged into it: %+v", b)
	}
}

// maxQueuedEvents is the kernel's inotify queue length.
func maxQueuedEvents(t *testing.T) int {
	data, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skipf("cannot read the inotify queue limit: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Skipf("inotify queue limit %q: %v", data, err)
	}
	if n > 1<<20 {
		t.Skipf("fs.inotify.max_queued_events=%d is too large to overflow the queue quickly", n)
	}
	return n
}

// stalled starts a Watcher on root whose Run loop stalls when the
// directory root/stall appears (skip blocks until release is called), so
// that the kernel's event queue fills up for real. Just not reading the
// batches does not do it: Run keeps reading events into its pending set.
func stalled(t *testing.T, root string) (h *harness, stall func(), release func()) {
	blocked := make(chan struct{})
	unblock := make(chan struct{})
	var once, onceB sync.Once
	release = func() { once.Do(func() { close(unblock) }) }
	skip := func(dir string) bool {
		if filepath.Base(dir) == "stall" {
			onceB.Do(func() { close(blocked) })
			<-unblock
			return true
		}
		return false
	}
	h = newHarness(t, skip, Options{})
	if err := h.w.AddTree(root); err != nil {
		t.Fatal(err)
	}
	// Release before stopping Run: register stop's cleanup (in start)
	// first, as cleanups run last-in first-out.
	h.start(root)
	t.Cleanup(release)
	stall = func() {
		mkdirs(t, filepath.Join(root, "stall"))
		select {
		case <-blocked:
		case <-time.After(waitTimeout):
			t.Fatal("the Run loop did not stall")
		}
	}
	return h, stall, release
}

// flood makes n inotify events in dir, cheaply: attribute changes that
// alternate between two files (inotify merges only identical consecutive
// events).
func flood(t *testing.T, dir string, n int) {
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a)
	write(t, b)
	for i := 0; i < n; i++ {
		p := a
		if i%2 == 1 {
			p = b
		}
		if err := os.Chmod(p, os.FileMode(0o600|(i&0o44))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOverflow: a real inotify queue overflow gives a rescan batch.
func TestOverflow(t *testing.T) {
	t.Parallel()
	limit := maxQueuedEvents(t)
	root := t.TempDir()
	h, stall, release := stalled(t, root)
	stall()
	flood(t, root, 2*limit+10000)
	release()
	b, _ := h.waitRescan(10 * time.Second)
	if !strings.Contains(b.Reason, "overflow") {
		t.Errorf("rescan reason %q does not say overflow", b.Reason)
	}
	h.sync()
}

// TestOverflowNewDirWatched: a directory created while events were lost
// (its creation event is one of them) must still end up watched: the
// Watcher cannot know which directories appeared, so after an overflow it
// has to walk its trees again (or at least report itself degraded, so
// that Resync is called).
func TestOverflowNewDirWatched(t *testing.T) {
	t.Parallel()
	limit := maxQueuedEvents(t)
	root := t.TempDir()
	h, stall, release := stalled(t, root)
	mkdirs(t, root+"/old")
	waitWatched(t, h.w, root, root+"/old")
	stall()
	flood(t, root, 2*limit+10000)
	late := filepath.Join(root, "late")
	mkdirs(t, late+"/sub") // after the overflow: not reported
	if err := os.RemoveAll(root + "/old"); err != nil {
		t.Fatal(err)
	}
	release()
	b, _ := h.waitRescan(10 * time.Second)
	if !strings.Contains(b.Reason, "overflow") {
		t.Fatalf("no overflow (reason %q): the test did not provoke what it tests", b.Reason)
	}
	h.sync()

	write(t, late+"/sub/f")
	got := h.sync()
	if len(under(got, late)) == 0 {
		n, degraded := h.w.Stats()
		dirs, _ := watchedDirs(h.w)
		t.Errorf("after an overflow, writes in %s (created while events were lost) are not reported; watched %q (Stats %d, degraded %q)", late+"/sub", dirs, n, degraded)
	}
	// And the directory removed while events were lost is no longer
	// counted (root/stall is skipped, so not watched).
	waitWatched(t, h.w, root, late, late+"/sub")
}

func TestAddTreeMissingRoot(t *testing.T) {
	t.Parallel()
	w := newHarness(t, nil, Options{}).w
	missing := filepath.Join(t.TempDir(), "no", "such", "root")
	err := w.AddTree(missing)
	if err == nil {
		t.Fatal("AddTree on a missing root succeeded")
	}
	if !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q does not name %s", err, missing)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %q does not wrap ErrNotExist", err)
	}
	if n, _ := w.Stats(); n != 0 {
		t.Errorf("Stats() = %d dirs after a failed AddTree", n)
	}

	if err := w.AddDir(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("AddDir on a missing directory: %v", err)
	}
}

// TestAddDir: AddDir watches one directory; a subdirectory created in it
// is reported but not watched, unless it is under a tree.
func TestAddDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	single := t.TempDir()
	mkdirs(t, single+"/pre", root+"/in")
	h := newHarness(t, nil, Options{})
	w := h.w
	if err := w.AddTree(root); err != nil {
		t.Fatal(err)
	}
	if err := w.AddDir(single); err != nil {
		t.Fatal(err)
	}
	if err := w.AddDir(root + "/in"); err != nil { // inside the tree too
		t.Fatal(err)
	}
	h.start(single)
	waitWatched(t, w, root, root+"/in", single)

	write(t, single+"/f")
	mkdirs(t, single+"/sub")
	h.waitPaths(single+"/f", single+"/sub")
	mkdirs(t, root+"/in/sub")
	h.waitPaths(root + "/in/sub")
	waitWatched(t, w, root, root+"/in", root+"/in/sub", single)

	write(t, single+"/pre/f")
	write(t, single+"/sub/f")
	write(t, root+"/in/sub/f")
	got := h.waitPaths(root + "/in/sub/f")
	got = append(got, h.sync()...)
	if bad := under(got, single+"/pre", single+"/sub"); len(bad) != 0 {
		t.Errorf("writes below an AddDir directory reported: %q", bad)
	}
	waitWatched(t, w, root, root+"/in", root+"/in/sub", single)
}

func TestRunStops(t *testing.T) {
	t.Parallel()
	t.Run("context cancelled", func(t *testing.T) {
		t.Parallel()
		opt := Options{Delay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
		root := t.TempDir()
		h := startWatcher(t, root, nil, opt)
		write(t, root+"/f") // a batch waits for a consumer that never comes
		time.Sleep(4 * opt.MaxDelay)
		h.stop() // fails the test unless Run returns context.Canceled
	})
	t.Run("watcher closed", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		w := newHarness(t, nil, Options{}).w
		if err := w.AddTree(root); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- w.Run(context.Background()) }()
		write(t, root+"/f")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err == nil {
				t.Error("Run returned nil after Close")
			}
		case <-time.After(waitTimeout):
			t.Fatal("Run did not return after Close")
		}
	})
}

// TestNoGoroutineLeak: a watcher that ran and was stopped and closed
// leaves no goroutine behind. Not parallel: it counts the goroutines of
// the whole test binary (the parallel tests wait while it runs).
func TestNoGoroutineLeak(t *testing.T) {
	settle := func() int {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	before := settle()
	for i := 0; i < 5; i++ {
		root := t.TempDir()
		mkdirs(t, root+"/a/b")
		w, err := New(zaptest.NewLogger(t), nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddTree(root); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		write(t, root+"/a/b/f")
		select {
		case <-w.Batches():
		case <-time.After(waitTimeout):
			t.Fatal("no batch")
		}
		write(t, root+"/a/f") // leave a batch pending
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Fatal("Run did not return")
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var after int
	deadline := time.Now().Add(waitTimeout)
	for {
		after = settle()
		if after <= before+1 || time.Now().After(deadline) {
			break
		}
	}
	if after > before+1 {
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%d goroutines before, %d after 5 watchers:\n%s", before, after, buf)
	}
}

// TestRenameIntoNewDirWhileBehind: the Run loop is behind the kernel (here
// stalled on purpose; in production: busy) while a watched directory p is
// moved into a directory n created just before. When Run handles n's
// creation, n/x is the inode still watched as p: fsnotify keeps the old
// path for that watch, so dropping p's watches must not leave n/x (counted
// as watched) without a kernel watch.
func TestRenameIntoNewDirWhileBehind(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	p := filepath.Join(root, "p")
	mkdirs(t, p+"/sub")
	h, stall, release := stalled(t, root)
	waitWatched(t, h.w, root, p, p+"/sub")
	stall()
	n := filepath.Join(root, "n")
	mkdirs(t, n)
	if err := os.Rename(p, n+"/x"); err != nil {
		t.Fatal(err)
	}
	release()
	h.waitPaths(n)
	h.sync()

	write(t, n+"/x/f")
	write(t, n+"/x/sub/f")
	got := h.sync()
	if r := under(got, n+"/x"); len(r) != 2 {
		t.Errorf("writes in %s/x and %s/x/sub: reported %q, want both", n, n, r)
	}
	if stale := under(got, p); len(stale) != 0 {
		t.Errorf("stale paths: %q", stale)
	}
	dirs, consistent := watchedDirs(h.w)
	if !consistent {
		t.Errorf("the Watcher counts %q as watched, fsnotify watches %q", dirs, h.w.fsw.WatchList())
	}
}
