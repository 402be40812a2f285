package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/state"
)

// TestMain lets tests run the command as a subprocess (to kill -9 it).
func TestMain(m *testing.M) {
	if os.Getenv("INTEGRITYD_TEST_MAIN") == "1" {
		os.Exit(runWithSignals(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// daemonProc is integrityd run in a subprocess.
type daemonProc struct {
	cmd *exec.Cmd
	log string
}

func startProc(t *testing.T, root, stateDir string) *daemonProc {
	t.Helper()
	return startProcArgs(t, "run", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--state-dir", stateDir, "--log-format", "json")
}

func startProcArgs(t *testing.T, args ...string) *daemonProc {
	t.Helper()
	log := filepath.Join(t.TempDir(), "stderr.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "INTEGRITYD_TEST_MAIN=1")
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &daemonProc{cmd: cmd, log: log}
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *daemonProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

// logEntries returns the process's JSON log lines so far.
func (p *daemonProc) logEntries(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// entries returns the JSON log lines with message msg.
func (p *daemonProc) entries(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range p.logEntries(t) {
		if e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// waitScanned waits until the process logged its first full scan.
func (p *daemonProc) waitScanned(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for len(p.entries(t, "initial scan done; watching")) == 0 {
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(p.log)
			t.Fatalf("no initial scan after %v:\n%s", hangGuard, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findingEntries are the alerts (resolved false) or resolved entries of
// the process; each MESSAGE must be the one line naming its finding.
func (p *daemonProc) findingEntries(t *testing.T, resolved bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range p.logEntries(t) {
		if e["integrity_kind"] == nil || (e["message_id"] == kind.IDResolved) != resolved {
			continue
		}
		kind, scope := fmt.Sprint(e["integrity_kind"]), fmt.Sprint(e["integrity_scope"])
		path, _ := e["integrity_path"].(string) // none for a scope's EXCEPTION
		reason := ""
		if journal.LineHasMessage(kind) {
			reason, _ = e["integrity_message"].(string)
		}
		want := journal.FindingLine(kind, scope, path, reason)
		if resolved {
			want = journal.ResolvedLine(kind, scope, path)
		}
		// (who-data, on by default, names the writer after the path)
		head := journal.FindingLine(kind, scope, path, "")
		if msg := fmt.Sprint(e["msg"]); msg != want && msg != journal.AlertLine(kind, scope, path, journal.WriterUnknown, reason) &&
			!(strings.HasPrefix(msg, head+", written by ") && strings.HasSuffix(msg, strings.TrimPrefix(want, head))) {
			t.Errorf("MESSAGE %q, want %q", e["msg"], want)
		}
		out = append(out, e)
	}
	return out
}

func alertedPaths(es []map[string]any) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprint(e["integrity_scope"], ":", e["integrity_path"]))
	}
	return out
}

// TestRestart: findings already reported are not alerted again after a
// kill -9; what changed while the daemon was down is.
func TestRestart(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	write := func(rel, s string) {
		if err := os.WriteFile(filepath.Join(root, rel), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("index.php", "tampered A")  // stays
	write("status.php", "tampered B") // healed while down
	p := startProc(t, root, stateDir)
	p.waitScanned(t)
	if got := alertedPaths(p.findingEntries(t, false)); len(got) != 2 {
		t.Fatalf("first run alerts: %v", got)
	}
	p.kill()

	write("status.php", demo.Files["status.php"]) // heal B
	write("lib/base.php", "tampered C")           // new while down
	p = startProc(t, root, stateDir)
	p.waitScanned(t)
	if got := alertedPaths(p.findingEntries(t, false)); strings.Join(got, ",") != "core:lib/base.php" {
		t.Errorf("alerts after restart: %v, want only core:lib/base.php", got)
	}
	if got := alertedPaths(p.findingEntries(t, true)); strings.Join(got, ",") != "core:status.php" {
		t.Errorf("resolved after restart: %v, want core:status.php", got)
	}
	// SIGTERM stops cleanly and leaves the state.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	st, err := state.Load(stateDir)
	if err != nil || st == nil || len(st.Findings) != 2 || !st.Complete {
		t.Fatalf("state after SIGTERM: %+v, %v", st, err)
	}
}

// TestKillAnywhere kills the daemon at random moments, during its first
// scan and while it saves state under a stream of changes: the state file
// always loads, and a final run reports exactly the current findings.
func TestKillAnywhere(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	// Enough files that the scan takes a while.
	for i := 0; i < 3000; i++ {
		p := filepath.Join(root, "lib", "bulk", fmt.Sprintf("d%02d", i%30), fmt.Sprintf("f%d.php", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, make([]byte, 4096), 0o644)
	}
	stateDir := t.TempDir()
	rnd := rand.New(rand.NewSource(1))
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	for i := 0; i < rounds; i++ {
		p := startProc(t, root, stateDir)
		stop := make(chan struct{})
		go func() { // changes while it runs: findings and state saves
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				os.WriteFile(filepath.Join(root, "lib", "bulk", "d00", fmt.Sprintf("f%d.php", j%30*30)), []byte(fmt.Sprint(j)), 0o644)
				time.Sleep(time.Millisecond)
			}
		}()
		time.Sleep(time.Duration(rnd.Intn(1500)) * time.Millisecond)
		p.kill()
		close(stop)
		if _, err := state.Load(stateDir); err != nil {
			t.Fatalf("round %d: state unusable after kill -9: %v", i, err)
		}
	}
	p := startProc(t, root, stateDir)
	p.waitScanned(t)
	code, out, _ := runCmd(t, "check", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--output", "json")
	if code != exitFindings {
		t.Fatalf("check: exit %d", code)
	}
	var want map[string]map[string]map[string]any
	json.Unmarshal([]byte(out), &want)
	deadline := time.Now().Add(hangGuard)
	for {
		st, err := state.Load(stateDir)
		if err == nil && st != nil && st.Complete && st.PID == p.cmd.Process.Pid && len(st.Findings) == countFindings(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("final state %+v (err %v), want %d findings", st, err, countFindings(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
	entries, _ := os.ReadDir(stateDir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func countFindings(report map[string]map[string]map[string]any) int {
	n := 0
	for _, kinds := range report {
		for _, files := range kinds {
			n += len(files)
		}
	}
	return n
}

// TestConfigAddsAppsRoot: the attack the config/ watch is for. config.php
// is writable by the web server; an attacker adds an apps root holding an
// app Nextcloud then loads. The running daemon (following Nextcloud's
// configuration: no apps_path pinned) alerts, starts again on the new apps
// roots in the same process, and checks the new app: its unsigned copy
// shadows the signed "files" app with a higher version (DUPLICATE_APP and
// "Signature data not found." for the copy Nextcloud now loads).
func TestConfigAddsAppsRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, root, t.TempDir())
	p.waitScanned(t)
	evil := filepath.Join(root, "evil_apps")
	for name, content := range map[string]string{
		"files/appinfo/info.xml": "<?xml version=\"1.0\"?>\n<info><id>files</id><version>99.0.0</version></info>\n",
		"files/lib/shell.php":    "<?php system($_GET['c']);\n",
	} {
		os.MkdirAll(filepath.Join(evil, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(evil, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := "<?php\n$CONFIG = array(\n  'instanceid' => 'demo',\n  'apps_paths' => array(\n" +
		"    array('path' => '" + root + "/apps', 'url' => '/apps', 'writable' => false),\n" +
		"    array('path' => '" + evil + "', 'url' => '/evil', 'writable' => true),\n  ),\n);\n"
	if err := os.WriteFile(filepath.Join(root, "config", "config.php"), []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(hangGuard)
	for len(p.entries(t, "initial scan done; watching")) < 2 {
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(p.log)
			t.Fatalf("no second start after config.php added an apps root:\n%s", data)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var alerted bool
	f, _ := os.ReadFile(p.log)
	for _, line := range strings.Split(string(f), "\n") {
		alerted = alerted || strings.Contains(line, kind.IDConfig) && strings.Contains(line, evil)
	}
	if !alerted {
		t.Errorf("no entry with MESSAGE_ID %s naming %s", kind.IDConfig, evil)
	}
	got := map[string]bool{}
	for _, e := range p.findingEntries(t, false) {
		path, _ := e["integrity_path"].(string)
		got[fmt.Sprint(e["integrity_kind"], " ", e["integrity_scope"], " ", path)] = true
	}
	for _, want := range []string{"EXCEPTION files ", "DUPLICATE_APP files@" + root + "/apps appinfo/info.xml"} {
		if !got[want] {
			t.Errorf("no alert %q; alerts: %v", want, got)
		}
	}
}

// TestRunNotEnforced: nothing in the web root switches the daemon off.
// Where config.php disables Nextcloud's own check, or version.php names a
// channel Nextcloud does not enforce, integrityd run starts, says why in
// one warning with its MESSAGE_ID, and alerts all the same.
func TestRunNotEnforced(t *testing.T) {
	cases := []struct {
		name, file, content, reason string
	}{
		{"integrity.check.disabled", "config/config.php",
			"<?php\n$CONFIG = array('instanceid' => 'demo', 'integrity.check.disabled' => true);\n",
			"integrity.check.disabled is set in config.php"},
		{"git channel", "version.php",
			"<?php\n$OC_Version = array(30,0,0,0);\n$OC_VersionString = '30.0.0';\n$OC_Channel = 'git';\n",
			`release channel "git"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "nc")
			if err := demo.Build(context.Background(), root); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, c.file), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			// The one-shot commands keep Nextcloud's semantics.
			if code, _, errOut := runCmd(t, "check-core", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt")); code != exitError || !strings.Contains(errOut, c.reason) {
				t.Errorf("check-core: exit %d, %q; want %d naming %q", code, errOut, exitError, c.reason)
			}
			p := startProc(t, root, t.TempDir())
			p.waitScanned(t)
			var warned []map[string]any
			for _, e := range p.logEntries(t) {
				if e["message_id"] == kind.IDUnenforced {
					warned = append(warned, e)
				}
			}
			if len(warned) != 1 || !strings.Contains(fmt.Sprint(warned[0]["reason"]), c.reason) || warned[0]["level"] != "warn" {
				t.Errorf("unenforced warnings: %v, want one naming %q", warned, c.reason)
			}
			if err := os.WriteFile(filepath.Join(root, "lib/base.php"), []byte("<?php // backdoor"), 0o644); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(strings.Join(alertedPaths(p.findingEntries(t, false)), ","), "core:lib/base.php") {
				if time.Now().After(deadline) {
					t.Fatalf("no alert for lib/base.php; alerts: %v", alertedPaths(p.findingEntries(t, false)))
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
