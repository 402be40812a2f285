package daemon

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/state"
)

// TestSaveOnlyChanges: an idle daemon does not rewrite its state (the
// state directory is watched: a save that counted as a change would save
// again forever), and a new finding is saved within a few intervals.
func TestSaveOnlyChanges(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(t.Context(), root); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	cfg := testConfig(root, stateDir)
	cfg.SaveInterval = 20 * time.Millisecond
	r := start(t, cfg)
	r.waitIdle(t)
	time.Sleep(5 * cfg.SaveInterval)
	ino := func() uint64 {
		fi, err := os.Stat(state.Path(stateDir))
		if err != nil {
			t.Fatal(err)
		}
		return fileIno(fi)
	}
	before := ino()
	time.Sleep(25 * cfg.SaveInterval)
	if after := ino(); after != before {
		t.Fatalf("the state was rewritten while nothing changed (inode %d -> %d)", before, after)
	}
	if err := os.WriteFile(filepath.Join(root, "index.php"), []byte("<?php // changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	deadline := time.Now().Add(5 * time.Second)
	for ino() == before {
		if time.Now().After(deadline) {
			t.Fatal("a new finding was not saved within 5 s")
		}
		time.Sleep(cfg.SaveInterval)
	}
}

func fileIno(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
