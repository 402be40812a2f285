package watch

// Races between the kernel's events and the watcher's bookkeeping, each a
// bug found and fixed: a deadlock with fsnotify's error channel, a replaced
// directory left unwatched, and watches lost under random churn.

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// TestMovedAwayAndDeletedWhileBusy: a watched directory is moved out of
// sight and deleted while Run is busy adding watches for a new tree.
// fsnotify's reader handles the IN_MOVE_SELF by removing the watch itself;
// the kernel already dropped it (the directory is gone), so the removal
// fails with EINVAL, and fsnotify sends that error on Errors while it holds
// its mutex (backend_inotify.go:468). Run is inside fsw.Add (addBelow) and
// waits for that mutex instead of reading Errors: deadlock. Run no longer
// reads events nor returns when its context is cancelled, and Close hangs
// too. The same happens inside a tree (mv dir elsewhere && rm -rf it, as
// updaters do) when the IN_MOVE_SELF is handled while Run's dropBelow is
// between two fsw.Remove calls: TestChurn runs into it.
func TestMovedAwayAndDeletedWhileBusy(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d := filepath.Join(t.TempDir(), "d") // e.g. the state or trust directory
	mkdirs(t, d)
	blocked := make(chan struct{})
	unblock := make(chan struct{})
	var once, onceB sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	defer release()
	skip := func(dir string) bool {
		if filepath.Base(dir) == "stall" {
			onceB.Do(func() { close(blocked) })
			<-unblock
			return true
		}
		return false
	}
	// Not newHarness: Close would hang after the deadlock.
	w, err := New(zaptest.NewLogger(t), skip, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddTree(root); err != nil {
		t.Fatal(err)
	}
	if err := w.AddDir(d); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	mkdirs(t, root+"/stall") // Run stalls in skip: the events queue up
	<-blocked
	for i := 0; i < 200; i++ { // Run will be busy adding these watches
		mkdirs(t, filepath.Join(root, "big", fmt.Sprint(i)))
	}
	if err := os.Rename(d, d+"2"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(d + "2"); err != nil {
		t.Fatal(err)
	}
	release()
	write(t, root+"/f")
	deadline := time.After(waitTimeout)
	for {
		select {
		case b := <-w.Batches():
			for _, q := range b.Paths {
				if q == root+"/f" {
					cancel()
					<-done
					w.Close()
					return
				}
			}
		case <-deadline:
			buf := make([]byte, 1<<20)
			t.Fatalf("the watcher is stuck (%s/f never reported); goroutines:\n%s", root, buf[:runtime.Stack(buf, true)])
		}
	}
}

// treeDirs lists root and the directories below it, not following
// symlinks.
func treeDirs(t *testing.T, root string) []string {
	t.Helper()
	dirs := []string{root}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// TestChurn makes random directory changes (mkdir -p, renames inside, out
// of and into the tree, removals, files) as fast as it can, then checks
// that exactly the directories of the tree are watched, that fsnotify
// agrees, and that a write in each of them is reported under its current
// path.
//
// Not parallel: under load Run falls behind the kernel, and then fsnotify
// (v1.10.1) can panic in Remove (watches.removePath) when a path was
// re-added while its new inode was watched under another name. That is a
// real bug, not a test artefact; running alone keeps this test as likely
// to pass as before the tests ran in parallel, until the bug is fixed.
func TestChurn(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			root := t.TempDir()
			outside := t.TempDir()
			h := startWatcher(t, root, nil, Options{})
			rnd := newRand(seed)
			names := []string{"a", "b", "c"}
			randPath := func(base string) string {
				p := base
				for n := 1 + rnd.Intn(3); n > 0; n-- {
					p = filepath.Join(p, names[rnd.Intn(len(names))])
				}
				return p
			}
			var opLog []string // successful operations, for failure messages
			rel := func(p string) string {
				if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
					return r
				}
				r, _ := filepath.Rel(outside, p)
				return "OUT/" + r
			}
			for i := 0; i < 400; i++ {
				var err error
				var what string
				switch op := rnd.Intn(7); op {
				case 0, 1:
					p := randPath(root)
					err, what = os.MkdirAll(p, 0o755), "mkdir -p "+rel(p)
				case 2, 3, 4:
					from, to := root, root
					if op == 3 {
						to = outside
					} else if op == 4 {
						from = outside
					}
					a := randPath(from)
					b := randPath(to)
					err, what = syscall.Rename(a, b), "mv "+rel(a)+" "+rel(b)
				case 5:
					if rnd.Intn(3) == 0 {
						p := randPath(root)
						err, what = os.RemoveAll(p), "rm -r "+rel(p)
					} else {
						p := randPath(outside)
						err, what = os.MkdirAll(p, 0o755), "mkdir -p "+rel(p)
					}
				case 6:
					p := filepath.Join(randPath(root), "f")
					err, what = os.WriteFile(p, nil, 0o644), "write "+rel(p)
				}
				if err == nil {
					opLog = append(opLog, what)
				}
			}
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("operations:\n%s", strings.Join(opLog, "\n"))
				}
			})
			h.sync()
			dirs := treeDirs(t, root)
			t.Logf("%d of 400 operations succeeded; %d directories in the tree", len(opLog), len(dirs))
			waitWatched(t, h.w, dirs...)

			var want []string
			for _, d := range dirs {
				p := filepath.Join(d, fmt.Sprint("probe-", seed))
				write(t, p)
				want = append(want, p)
			}
			got := h.waitPaths(want...)
			got = append(got, h.sync()...)
			for _, b := range got {
				for _, p := range b.Paths {
					if _, err := os.Lstat(filepath.Dir(p)); err != nil {
						t.Errorf("stale path reported: %s", p)
					}
				}
			}
		})
	}
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

// TestReplacedDirWhileBehind: while Run is behind the kernel, a directory a
// is created, removed and created again, the watched directory b (with
// b/c) is moved into the new a, and a new b is created. Run then handles
// the stale events: the removal of the first a drops the watches that
// addBelow(a) just took for a/b and a/b/c, and dropBelow re-adds "b",
// which by then names the new directory (fsnotify moves its watch record
// to the new inode and forgets the old watch descriptor, still alive in
// the kernel on the inode now at a/b). The later addBelow(a) registers
// a/b with that old descriptor, so the queued IN_MOVE_SELF of the move
// b -> a/b comes back from fsnotify as Rename "a/b": handle drops a/b and
// a/b/c, which exist, and nothing adds them again. Writes below a/b are
// lost silently (Stats and fsnotify agree; no degraded state).
func TestReplacedDirWhileBehind(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	mkdirs(t, b+"/c")
	h, stall, release := stalled(t, root)
	waitWatched(t, h.w, root, b, b+"/c")
	stall()
	mkdirs(t, a)
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	mkdirs(t, a)
	if err := os.Rename(b, a+"/b"); err != nil {
		t.Fatal(err)
	}
	mkdirs(t, b)
	release()
	h.sync()
	waitWatched(t, h.w, root, a, a+"/b", a+"/b/c", b)
	write(t, a+"/b/c/f")
	got := h.sync()
	if len(under(got, a+"/b/c/f")) == 0 {
		t.Errorf("write in %s/b/c not reported", a)
	}
}
