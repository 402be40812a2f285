package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/asnobody"
	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/state"
)

// Environment of TestOperatorChild, run as uid/gid 65534 by
// TestServiceAsOperator.
const (
	operatorStateEnv  = "INTEGRITYD_OPERATOR_STATE"  // the daemon's state directory, group 65534
	operatorDeniedEnv = "INTEGRITYD_OPERATOR_DENIED" // a state directory of root's group
)

// TestServiceAsOperator runs the daemon as the packaged unit does (its own
// group, RUNTIME_DIRECTORY set, the state dir 0750) and checks: the modes
// of what it writes; a second daemon on the same state directory is
// refused while status still reads the first; an operator in the group
// (uid 65534, who may not signal the daemon) runs status, report and
// rescan, the rescan going through the control socket; outside the group,
// permission denied is exit 2 naming the group.
func TestServiceAsOperator(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the daemon runs as root with group 65534, the operator as uid 65534")
	}
	base := asnobody.Dir(t)
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	stateDir, runDir := filepath.Join(base, "state"), filepath.Join(base, "run")
	if err := os.Mkdir(runDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(runDir, 0, 65534); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "stderr.log")
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "run", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--state-dir", stateDir, "--log-format", "json")
	cmd.Env = append(os.Environ(), "INTEGRITYD_TEST_MAIN=1", "RUNTIME_DIRECTORY="+runDir)
	cmd.Stderr = f
	// The unit's Group=integrityd, with a stricter umask than its 0027.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 65534, Groups: []uint32{65534}}}
	old := syscall.Umask(0o077)
	err = cmd.Start()
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &daemonProc{cmd: cmd, log: logFile}
	t.Cleanup(p.kill)
	p.waitScanned(t)

	sock := filepath.Join(runDir, controlDefaultName)
	for path, want := range map[string]os.FileMode{
		stateDir: state.DirMode, state.Path(stateDir): state.FileMode, filepath.Join(stateDir, state.LockName): state.FileMode,
		filepath.Join(stateDir, state.ControlName): state.FileMode, sock: socketMode,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want || fi.Sys().(*syscall.Stat_t).Gid != 65534 {
			t.Errorf("%s: mode %04o gid %d, want %04o gid 65534", path, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, want)
		}
	}
	if got, err := state.ReadControl(stateDir); err != nil || got != sock {
		t.Errorf("control socket recorded: %q %v, want %s", got, err, sock)
	}

	// A second daemon on the same state directory is refused, at once.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut strings.Builder
	code := run(ctx, []string{"run", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--state-dir", stateDir, "--log-format", "json", "--control-socket", "none"}, &out, &errOut)
	want := fmt.Sprintf("integrityd run: state directory %s is in use by another integrityd (pid %d)\n", stateDir, cmd.Process.Pid)
	if code != exitError || errOut.String() != want {
		t.Errorf("second daemon: exit %d, stderr %q, want exit %d, %q", code, errOut.String(), exitError, want)
	}
	if code, out, _ := runCmd(t, "status", "--state-dir", stateDir); code != exitClean || !strings.Contains(out, fmt.Sprintf("running (pid %d)", cmd.Process.Pid)) {
		t.Errorf("status after the second daemon was refused: exit %d\n%s", code, out)
	}

	// A state directory of root's group, for the permission error.
	denied := filepath.Join(base, "denied")
	if err := os.Mkdir(denied, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := state.Save(denied, &state.State{PID: 1}); err != nil {
		t.Fatal(err)
	}

	os.WriteFile(filepath.Join(root, "index.php"), []byte("<?php evil();"), 0o644)
	asnobody.Run(t, base, "TestOperatorChild", operatorStateEnv+"="+stateDir, operatorDeniedEnv+"="+denied)
	var asked bool
	for _, e := range p.entries(t, "full rescan requested on the control socket") {
		asked = asked || e["peer_uid"] == float64(65534)
	}
	if !asked {
		t.Error("the daemon did not log the rescan asked by uid 65534 on its control socket")
	}

	// SIGTERM: the socket and its record go, the lock is free again.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("control socket left after the daemon stopped: %v", err)
	}
	if got, _ := state.ReadControl(stateDir); got != "" {
		t.Errorf("control socket still recorded after the daemon stopped: %q", got)
	}
	l, err := state.AcquireLock(stateDir)
	if err != nil {
		t.Fatalf("lock after the daemon stopped: %v", err)
	}
	l.Close()
}

// TestOperatorChild is the operator's side of TestServiceAsOperator.
func TestOperatorChild(t *testing.T) {
	stateDir, denied := os.Getenv(operatorStateEnv), os.Getenv(operatorDeniedEnv)
	if stateDir == "" {
		t.Skip("run by TestServiceAsOperator as uid 65534")
	}
	if os.Getuid() != 65534 {
		t.Fatalf("uid %d, want 65534", os.Getuid())
	}
	// The daemon (uid 0) may not be signalled: rescan must use the socket.
	var st struct{ PID int }
	data, err := os.ReadFile(state.Path(stateDir))
	if err != nil || json.Unmarshal(data, &st) != nil {
		t.Fatalf("read the state as a member of the group: %v", err)
	}
	if err := syscall.Kill(st.PID, syscall.SIGHUP); err != syscall.EPERM {
		t.Fatalf("signal the daemon as uid 65534: %v, want EPERM", err)
	}
	deadline := time.Now().Add(hangGuard)
	for {
		code, out, errOut := runCmd(t, "status", "--state-dir", stateDir)
		if code == exitFindings && strings.Contains(out, "INVALID_HASH 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status as an operator: exit %d\n%s%s", code, out, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, out, errOut := runCmd(t, "status", "--state-dir", stateDir, "--output", "json"); code != exitFindings || !strings.Contains(out, `"pid": `+strconv.Itoa(st.PID)) {
		t.Errorf("status --output json: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, "report", "--state-dir", stateDir, "--output", "json"); code != exitFindings || !strings.Contains(out, "index.php") {
		t.Errorf("report as an operator: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, "rescan", "--state-dir", stateDir, "--output", "json", "--timeout", "30s"); code != exitFindings || !strings.Contains(out, "index.php") {
		t.Errorf("rescan as an operator: exit %d\n%s%s", code, out, errOut)
	}
	want := "permission denied reading " + state.Path(denied) + ": run as root or as a member of group integrityd (see README)"
	for _, c := range []string{"status", "report", "rescan"} {
		code, out, errOut := runCmd(t, c, "--state-dir", denied)
		if code != exitError || !strings.Contains(errOut, want) {
			t.Errorf("%s outside the group: exit %d, %s%s; want exit %d and %q", c, code, out, errOut, exitError, want)
		}
	}
}
