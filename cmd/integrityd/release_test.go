package main

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/state"
)

// accept-release takes an admin's downgrade in: through the running
// daemon's control socket, and in the state file when no daemon runs.
func TestAcceptRelease(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	keys, err := demo.BuildWithKeys(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(root, "apps/files")
	v1, err := keys.SignedRelease(context.Background(), root, "files", "1.9.0")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := keys.SignedRelease(context.Background(), root, "files", "2.0.0") // as installed
	if err != nil {
		t.Fatal(err)
	}
	put := func(m map[string][]byte) {
		t.Helper()
		if err := demo.PutFiles(app, m); err != nil {
			t.Fatal(err)
		}
	}
	stateDir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "control.sock")
	start := func() *daemonProc {
		p := startProcArgs(t, "run", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--state-dir", stateDir, "--log-format", "json", "--control-socket", sock)
		p.waitScanned(t)
		return p
	}
	waitStatus := func(want int, what string) string {
		t.Helper()
		deadline := time.Now().Add(hangGuard)
		for {
			code, out, _ := runCmd(t, "status", "--state-dir", stateDir)
			if code == want && strings.Contains(out, what) {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("status never exit %d with %q: exit %d\n%s", want, what, code, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// waitRelease waits until the state records rel as the release of files.
	waitRelease := func(rel string) {
		t.Helper()
		deadline := time.Now().Add(hangGuard)
		for {
			st, err := state.Load(stateDir)
			if err == nil && st != nil && st.Releases["files"] == rel {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the state never recorded release %s of files: %v %+v", rel, err, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	p := start()
	waitRelease("2.0.0")
	put(v1)
	waitStatus(exitFindings, "VERSION_DOWNGRADE 1")
	if es := p.findingEntries(t, false); len(es) != 1 || es[0]["integrity_kind"] != "VERSION_DOWNGRADE" {
		t.Errorf("alerts: %v", es)
	}
	if code, _, errOut := runCmd(t, "accept-release", "--state-dir", stateDir, "dashboard"); code != exitError || !strings.Contains(errOut, "nothing to accept") {
		t.Errorf("accept-release of a scope without a downgrade: exit %d %s", code, errOut)
	}
	if code, _, _ := runCmd(t, "accept-release", "--state-dir", stateDir); code != exitError {
		t.Errorf("accept-release without a scope: exit %d", code)
	}
	if code, out, errOut := runCmd(t, "accept-release", "--state-dir", stateDir, "files"); code != exitClean || out != "accepted the release of files\n" {
		t.Fatalf("accept-release files: exit %d %s %s", code, out, errOut)
	}
	waitStatus(exitClean, "findings:        0")
	waitRelease("1.9.0")
	if !hasPrefixEntry(p, t, "release downgrade of files accepted (uid ") {
		t.Error("the accept is not in the daemon's log")
	}

	// 2.0.0 again, then 1.9.0 while the daemon is stopped: accepted
	// offline, the next start records 1.9.0.
	put(v2)
	waitRelease("2.0.0")
	put(v1)
	waitStatus(exitFindings, "VERSION_DOWNGRADE 1")
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	if code, out, errOut := runCmd(t, "accept-release", "--state-dir", stateDir, "files"); code != exitClean || out != "accepted the release of files\n" {
		t.Fatalf("accept-release files, daemon stopped: exit %d %s %s", code, out, errOut)
	}
	if st, err := state.Load(stateDir); err != nil || len(st.Findings) != 0 || st.Releases["files"] != "" {
		t.Errorf("state after the offline accept: %v %+v", err, st)
	}
	p = start()
	waitStatus(exitClean, "findings:        0")
	waitRelease("1.9.0")
	if es := p.findingEntries(t, false); len(es) != 0 {
		t.Errorf("alerts after the offline accept: %v", es)
	}
}

func hasPrefixEntry(p *daemonProc, t *testing.T, prefix string) bool {
	for _, e := range p.logEntries(t) {
		if msg, _ := e["msg"].(string); strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}
