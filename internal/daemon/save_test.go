package daemon

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/state"
)

// TestSaveOnlyChanges: an idle daemon does not rewrite its state (the
// state directory is watched: a save that counted as a change would save
// again forever: 25 save rounds leave it as it is), and a new finding is
// saved.
func TestSaveOnlyChanges(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	if err := buildDemoTree(t.Context(), root); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	cfg := testConfig(root, stateDir)
	cfg.SaveInterval = 20 * time.Millisecond
	r := start(t, cfg)
	r.waitIdle(t)
	rounds := func(n uint64) { // n more save rounds, counted from now
		t.Helper()
		from := r.d.saver.rounds.Load()
		waitFor(t, "save rounds", func() bool { return r.d.saver.rounds.Load() >= from+n })
	}
	rounds(5)
	ino := func() uint64 {
		fi, err := os.Stat(state.Path(stateDir))
		if err != nil {
			t.Fatal(err)
		}
		return fileIno(fi)
	}
	before := ino()
	rounds(25)
	if after := ino(); after != before {
		t.Fatalf("the state was rewritten while nothing changed (inode %d -> %d)", before, after)
	}
	if err := os.WriteFile(filepath.Join(root, "index.php"), []byte("<?php // changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	waitFor(t, "the new finding saved", func() bool { return ino() != before })
}

func fileIno(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
