package watch

import (
	"strings"
	"testing"

	"github.com/fsnotify/fsnotify"
)

// TestRemoveRecovers: a panic inside fsnotify's Remove (fsnotify#652: a
// nil watch record, reached by a rename storm) is an error, not a crash of
// the daemon. A zero Watcher panics the same way (nil backend).
func TestRemoveRecovers(t *testing.T) {
	err := remove(&fsnotify.Watcher{}, "/x")
	if err == nil || !strings.Contains(err.Error(), "remove watch /x: fsnotify:") {
		t.Fatalf("remove on a watcher that panics: got %v, want an error naming the path", err)
	}
}
