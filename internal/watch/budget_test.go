package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/integrityd/integrityd/internal/kind"
)

// TestAddTreesOrder: AddTrees spends watches in the order of its roots:
// the walk of the first does not enter the second, below it, which is
// walked after; Resync keeps that order. (The skip rule is asked about
// each directory just before its watch is added.)
func TestAddTreesOrder(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	apps := root + "/apps"
	mkdirs(t, apps+"/a/lib", apps+"/b", root+"/core/js", root+"/lib/private", root+"/zz")
	var mu sync.Mutex
	var asked []string
	skip := func(p string) bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, p)
		return false
	}
	h := newHarness(t, skip, Options{})
	for i, err := range h.w.AddTrees(root, apps) {
		if err != nil {
			t.Fatalf("root %d: %v", i, err)
		}
	}
	checkOrder := func(when string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		seenApps := false
		for _, p := range asked {
			inApps := p == apps || strings.HasPrefix(p, apps+"/")
			if seenApps && !inApps {
				t.Fatalf("%s: %s asked for after a directory of the apps tree: %q", when, p, asked)
			}
			seenApps = seenApps || inApps
		}
		if !seenApps {
			t.Fatalf("%s: the apps tree was not walked: %q", when, asked)
		}
		asked = nil
	}
	checkOrder("AddTrees")
	h.start(root)
	waitWatched(t, h.w, root, root+"/core", root+"/core/js", root+"/lib", root+"/lib/private", root+"/zz",
		apps, apps+"/a", apps+"/a/lib", apps+"/b")
	h.w.Resync()
	checkOrder("Resync")

	// The apps tree is a tree: a directory created in it is watched.
	mkdirs(t, apps+"/c")
	h.waitPaths(apps + "/c")
	write(t, apps+"/c/f")
	h.waitPaths(apps + "/c/f")
}

// TestRewatch: once the skip rule changes for a directory, Rewatch adds
// the watches it no longer skips and drops those it skips now; a symlink
// is not followed.
func TestRewatch(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	app := root + "/app"
	mkdirs(t, app+"/appinfo", app+"/lib/a/b", root+"/outside/d")
	if err := os.Symlink(root+"/outside", root+"/link"); err != nil {
		t.Fatal(err)
	}
	var whole atomic.Bool // the app is watched whole, not only its top and appinfo
	skip := func(p string) bool {
		rest, ok := strings.CutPrefix(p, app+"/")
		return ok && !whole.Load() && rest != "appinfo"
	}
	h := startWatcher(t, root, skip, Options{})
	top := []string{root, app, app + "/appinfo", root + "/outside", root + "/outside/d"}
	waitWatched(t, h.w, top...)
	deep := app + "/lib/a/b/f"
	write(t, deep)
	if got := under(h.sync(), app+"/lib"); len(got) != 0 {
		t.Fatalf("a write below a skipped directory reported: %q", got)
	}

	whole.Store(true)
	h.w.Rewatch(app)
	h.w.Rewatch(root + "/link") // a symlink: nothing to add
	waitWatched(t, h.w, append(top, app+"/lib", app+"/lib/a", app+"/lib/a/b")...)
	write(t, deep)
	h.waitPaths(deep)

	whole.Store(false)
	h.w.Rewatch(app)
	waitWatched(t, h.w, top...)
	write(t, deep)
	if got := under(h.sync(), app+"/lib"); len(got) != 0 {
		t.Fatalf("after the rule skips it again, a write below it is reported: %q", got)
	}
	if n, degraded := h.w.Stats(); degraded != "" {
		t.Errorf("degraded after Rewatch (%d watched): %s", n, degraded)
	}
}

// TestLargest: the watch-limit entry names the subtrees that hold the
// most watches: an app in an apps root, a top directory of the first
// tree (relative to it), a directory watched alone (absolute), and where
// most of a subtree's watches are.
func TestLargest(t *testing.T) {
	t.Parallel()
	w := &Watcher{roots: []string{"/nc", "/nc/apps", "/srv/custom_apps"}, watched: map[string]bool{}}
	add := func(dir string, n int) {
		for i := range n {
			w.watched[fmt.Sprintf("%s/d%04d", dir, i)] = true
		}
	}
	for _, p := range []string{"/nc", "/nc/apps", "/nc/apps/bigapp", "/nc/lib", "/srv/custom_apps", "/var/lib/integrityd",
		"/nc/3rdparty", "/nc/3rdparty/vendor", "/nc/3rdparty/vendor/npm"} {
		w.watched[p] = true
	}
	add("/nc/apps/bigapp", 2999)
	add("/nc/3rdparty/vendor/npm", 199) // 204 in 3rdparty, 201 in vendor, 200 in vendor/npm
	add("/nc/3rdparty", 2)
	add("/nc/lib", 119)
	add("/nc/apps/files", 40)
	add("/srv/custom_apps/x", 7)
	add("/nc/core", 7)
	for _, tt := range []struct {
		n    int
		want string
	}{
		{1, "apps/bigapp: 3,000 directories"},
		{5, "apps/bigapp: 3,000 directories; 3rdparty: 204 directories (200 in 3rdparty/vendor/npm); lib: 120 directories; apps/files: 40 directories; core: 7 directories"},
		{10, "apps/bigapp: 3,000 directories; 3rdparty: 204 directories (200 in 3rdparty/vendor/npm); lib: 120 directories; apps/files: 40 directories; core: 7 directories; " +
			"/srv/custom_apps/x: 7 directories; /nc: 1 directory; apps: 1 directory; /srv/custom_apps: 1 directory; /var/lib/integrityd: 1 directory"},
	} {
		if got := w.largest(tt.n); got != tt.want {
			t.Errorf("largest(%d):\n got %s\nwant %s", tt.n, got, tt.want)
		}
	}
}

// TestLimitEntry: the first watch refused for the watch limit is logged
// once, with its MESSAGE_ID, the limit, the sysctl and the subtrees that
// hold the most watches; the status says the same.
func TestLimitEntry(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for i := range 30 {
		mkdirs(t, fmt.Sprintf("%s/big/d%02d", root, i))
	}
	mkdirs(t, root+"/small/a")
	core, logs := observer.New(zapcore.InfoLevel)
	w, err := New(zap.New(core), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.AddTree(root); err != nil {
		t.Fatal(err)
	}
	refused := &os.SyscallError{Syscall: "inotify_add_watch", Err: syscall.ENOSPC}
	w.noteAddError(filepath.Join(root, "small/b"), refused)
	w.noteAddError(filepath.Join(root, "small/c"), refused)
	entries := logs.FilterField(zap.String("message_id", kind.IDNotWatched)).All()
	if len(entries) != 1 {
		t.Fatalf("%d entries for two refused watches, want 1", len(entries))
	}
	m := entries[0].ContextMap()
	if got, want := m["largest"], "big: 31 directories; small: 2 directories; "+root+": 1 directory"; got != want {
		t.Errorf("largest = %q, want %q", got, want)
	}
	if got := m["watches"]; got != int64(34) {
		t.Errorf("watches = %v, want 34", got)
	}
	hint := fmt.Sprint(m["hint"])
	for _, want := range []string{"max_user_watches", "sysctl -w", "big: 31 directories"} {
		if !strings.Contains(hint, want) {
			t.Errorf("hint %q does not say %q", hint, want)
		}
	}
	if _, degraded := w.Stats(); degraded != hint {
		t.Errorf("Stats says %q, the entry %q", degraded, hint)
	}
}

// TestLargestGroup: with a group function (SetGroup: the daemon's rule of
// which app a path is in), the watch-limit entry counts a directory where
// it says: the target of a symlinked app counts in the app; where it says
// nothing, the watcher's own rule holds.
func TestLargestGroup(t *testing.T) {
	t.Parallel()
	w := &Watcher{roots: []string{"/nc", "/nc/apps", "/real/link"}, watched: map[string]bool{}}
	w.SetGroup(func(dir string) string {
		if dir == "/real/link" || strings.HasPrefix(dir, "/real/link/") {
			return "/nc/apps/link"
		}
		return ""
	})
	for i := range 3 {
		w.watched[fmt.Sprintf("/real/link/d%d", i)] = true
	}
	w.watched["/nc/lib"] = true
	if got, want := w.largest(5), "apps/link: 3 directories; lib: 1 directory"; got != want {
		t.Errorf("largest: %s, want %s", got, want)
	}
}
