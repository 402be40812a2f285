package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/state"
)

// TestWatchLimit runs the daemon in a user namespace whose inotify watch
// limit is 40, on a tree of more than 100 directories: it must say which
// limit it hit, keep watching what it could, and find changes in the rest
// by periodic full rescans.
func TestWatchLimit(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare(1) not installed: cannot lower the inotify limit for this test only")
	}
	if out, err := exec.Command(unshare, "--user", "--map-root-user", "sh", "-c", "echo 40 > /proc/sys/user/max_inotify_watches").CombinedOutput(); err != nil {
		t.Skipf("user namespaces with their own inotify limit are not available here: %v %s", err, out)
	}
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 120; i++ {
		os.MkdirAll(filepath.Join(root, "lib", "many", fmt.Sprintf("d%03d", i)), 0o755)
	}
	stateDir := t.TempDir()
	log := filepath.Join(t.TempDir(), "stderr.log")
	f, _ := os.Create(log)
	cmd := exec.Command(unshare, "--user", "--map-root-user", "sh", "-c",
		`echo 40 > /proc/sys/user/max_inotify_watches && exec "$0" "$@"`,
		os.Args[0], "run", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--state-dir", stateDir, "--log-format", "json", "--rescan-interval", "1s")
	cmd.Env = append(os.Environ(), "INTEGRITYD_TEST_MAIN=1")
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &daemonProc{cmd: cmd, log: log}
	t.Cleanup(p.kill)
	p.waitScanned(t)
	notWatched := p.entries(t, "directory not watched; changes below it are only seen by periodic full rescans")
	if len(notWatched) != 1 {
		data, _ := os.ReadFile(log)
		t.Fatalf("want one 'directory not watched' entry, got %d:\n%s", len(notWatched), data)
	}
	if hint := fmt.Sprint(notWatched[0]["hint"]); !strings.Contains(hint, "max_user_watches") || !strings.Contains(hint, "sysctl") {
		t.Errorf("hint %q does not name the limit and the sysctl", hint)
	}
	// A change in a directory that has no watch is found by a rescan.
	last := filepath.Join(root, "lib", "many", "d119", "evil.php")
	if err := os.WriteFile(last, []byte("<?php"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(hangGuard)
	for {
		st, err := state.Load(stateDir)
		if err == nil && st != nil && st.Degraded != "" && hasFinding(st, "lib/many/d119/evil.php") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finding for %s %v after the change (state %+v, %v)", last, hangGuard, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Rescans ran meanwhile (every second): the limit is not logged again.
	if n := len(p.entries(t, "directory not watched; changes below it are only seen by periodic full rescans")); n != 1 {
		t.Errorf("the watch limit was logged %d times", n)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
}

func hasFinding(st *state.State, path string) bool {
	for _, f := range st.Findings {
		if f.Path == path {
			return true
		}
	}
	return false
}
