package watch

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// ResyncAsync walks the trees on Run's goroutine, and closes its channel
// once the walk is done; without Run it walks at once.
func TestResyncAsync(t *testing.T) {
	for _, running := range []bool{true, false} {
		root := t.TempDir()
		for _, d := range []string{"a", "b", "b/c"} {
			if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		var skipB atomic.Bool
		skipB.Store(true)
		skip := func(dir string) bool { return skipB.Load() && dir == filepath.Join(root, "b") }
		h := newHarness(t, skip, Options{})
		if err := h.w.AddTree(root); err != nil {
			t.Fatal(err)
		}
		if running {
			h.start(root)
		}
		if n, _ := h.w.Stats(); n != 2 {
			t.Fatalf("running %v: %d directories watched, want 2 (root, a)", running, n)
		}
		skipB.Store(false)
		done := h.w.ResyncAsync()
		again := h.w.ResyncAsync() // shares the walk, or has its own
		for _, ch := range []<-chan struct{}{done, again} {
			select {
			case <-ch:
			case <-time.After(time.Minute):
				t.Fatalf("running %v: re-sync not done after a minute", running)
			}
		}
		if n, _ := h.w.Stats(); n != 4 {
			t.Errorf("running %v: %d directories watched after the re-sync, want 4", running, n)
		}
	}
}
