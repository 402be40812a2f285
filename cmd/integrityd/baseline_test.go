package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/state"
)

// integrityd baseline records, check compares, --accept takes changes in.
func TestBaselineCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	trust := filepath.Join(root, "resources/codesigning/root.crt")
	check := func(extra ...string) (int, map[string]map[string]map[string]map[string]string, string) {
		t.Helper()
		code, out, errOut := runCmd(t, append([]string{"check", "--root", root, "--trust", trust, "--state-dir", stateDir, "--output", "json"}, extra...)...)
		var got map[string]map[string]map[string]map[string]string
		if code != exitError && out != "[]\n" {
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
		return code, got, errOut
	}
	base := func(args ...string) (int, string, string) {
		t.Helper()
		return runCmd(t, append([]string{"baseline", "--root", root, "--state-dir", stateDir}, args...)...)
	}
	// No baseline: unsigned code is not checked; a web shell in themes/
	// goes unseen, as in Nextcloud.
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("themes/mine/core/templates/layout.php", "<?php // theme")
	write("apps/mine/appinfo/info.xml", "<info/>")
	write("apps/mine/lib/a.php", "<?php // unsigned app")
	code0, got0, _ := check()
	if got0["unsigned"] != nil {
		t.Fatalf("unsigned checked without a baseline: %v", got0)
	}
	if code, out, errOut := base(); code != exitClean || !strings.Contains(out, "recorded the baseline of") || !strings.Contains(out, root+"/apps/mine") {
		t.Fatalf("baseline: exit %d %s %s", code, out, errOut)
	}
	if code, _, errOut := base(); code != exitError || !strings.Contains(errOut, "--accept") {
		t.Errorf("second baseline: exit %d %s", code, errOut)
	}
	if code, got, _ := check(); code != code0 || got["unsigned"] != nil {
		t.Errorf("check right after the baseline: exit %d (want %d) %v", code, code0, got["unsigned"])
	}
	// The attacks.
	write("themes/mine/shell.php", "<?php system($_GET['c']);")
	write("apps/mine/lib/a.php", "<?php eval($_POST['x']);")
	ht, err := os.ReadFile(filepath.Join(root, ".htaccess"))
	if err != nil || !strings.Contains(string(ht), "#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####") {
		t.Fatalf("the demo's .htaccess has no marker: %v", err)
	}
	write(".htaccess", string(ht)+"php_value auto_prepend_file /tmp/x.php\n")
	code, got, _ := check()
	u := got["unsigned"]
	if code != exitFindings || u["UNSIGNED_EXTRA"]["themes/mine/shell.php"] == nil || u["UNSIGNED_CHANGED"]["apps/mine/lib/a.php"] == nil ||
		u["HTACCESS_DIRECTIVE"][".htaccess"] == nil || len(u) != 3 {
		t.Errorf("check after the attacks: exit %d %v", code, u)
	}
	if code, _, errOut := base("--accept", "themes/nothing-here.php"); code != exitError || !strings.Contains(errOut, "nothing to accept") {
		t.Errorf("accept of a path without a finding: exit %d %s", code, errOut)
	}
	if code, _, errOut := base("--accept", filepath.Join(root, "themes/mine/shell.php")); code != exitClean || !strings.Contains(errOut, "accepted UNSIGNED_EXTRA themes/mine/shell.php") {
		t.Errorf("accept: exit %d %s", code, errOut)
	}
	if _, got, _ := check(); got["unsigned"]["UNSIGNED_EXTRA"] != nil || got["unsigned"]["UNSIGNED_CHANGED"] == nil {
		t.Errorf("after one accept: %v", got["unsigned"])
	}
	if code, _, errOut := base("--accept-all"); code != exitClean || !strings.Contains(errOut, "accepted HTACCESS_DIRECTIVE .htaccess") {
		t.Errorf("accept-all: exit %d %s", code, errOut)
	}
	if code, got, _ := check(); code != code0 || got["unsigned"] != nil {
		t.Errorf("after accept-all: exit %d %v", code, got["unsigned"])
	}
	b, err := baseline.Read(filepath.Join(stateDir, baseline.FileName))
	if err != nil || len(b.Log) != 4 || !strings.Contains(b.Log[1], "accepted UNSIGNED_EXTRA themes/mine/shell.php") {
		t.Errorf("baseline log: %v %q", err, b.Log)
	}
	// A damaged baseline is an error naming it; unsigned = off ignores it.
	bad := filepath.Join(stateDir, baseline.FileName)
	os.WriteFile(bad, []byte("{"), 0o640)
	if code, _, errOut := check(); code != exitError || !strings.Contains(errOut, bad) {
		t.Errorf("check with a damaged baseline: exit %d %s", code, errOut)
	}
	if code, _, errOut := check("--unsigned", "off"); code != code0 {
		t.Errorf("check --unsigned off with a damaged baseline: exit %d %s", code, errOut)
	}
	if code, _, errOut := base("--accept", "x"); code != exitError || !strings.Contains(errOut, bad) {
		t.Errorf("accept with a damaged baseline: exit %d %s", code, errOut)
	}
	if code, _, errOut := base("--accept-all"); code != exitClean || !strings.Contains(errOut, "recording a new one") {
		t.Errorf("accept-all over a damaged baseline: exit %d %s", code, errOut)
	}
	// unsigned = on without a baseline: every covered file is a finding.
	os.Remove(bad)
	if code, got, _ := check("--unsigned", "on"); code != exitFindings || got["unsigned"]["UNSIGNED_EXTRA"]["themes/mine/shell.php"] == nil {
		t.Errorf("unsigned = on without a baseline: exit %d %v", code, got["unsigned"])
	}
	for _, args := range [][]string{{"--accept"}, {"--accept", "--accept-all", "x"}, {"stray"}} {
		if code, _, _ := base(args...); code != exitError {
			t.Errorf("baseline %q: exit %d", args, code)
		}
	}
}

// status says the unsigned mode and counts the unsigned kinds present;
// report lists the unsigned findings as a scope of their own.
func TestStatusUnsigned(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	st := &state.State{PID: os.Getpid(), Updated: now, Complete: true, LastFullScan: now, RescanInterval: time.Hour,
		Findings: []finding.Finding{{Scope: baseline.ScopeName, Kind: kind.UnsignedExtra, Path: "themes/x/shell.php", Message: "not in the baseline"}},
		Unsigned: "unsigned code: checked against the baseline of 2026-01-02T03:04:05Z by root (uid 0), 5 files", UnsignedFiles: 6}
	if err := state.Save(dir, st); err != nil {
		t.Fatal(err)
	}
	if err := state.StartHeartbeat(dir, time.Hour); err != nil { // the daemon's loop beats
		t.Fatal(err)
	}
	code, out, _ := runCmd(t, "status", "--state-dir", dir)
	if code != exitFindings || !strings.Contains(out, "unsigned code:   checked against the baseline of 2026-01-02T03:04:05Z by root (uid 0), 5 files; 6 files covered") ||
		!strings.Contains(out, "UNSIGNED_EXTRA 1") || strings.Contains(out, "HTACCESS_DIRECTIVE") || !strings.Contains(out, "INVALID_HASH 0") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "status", "--state-dir", dir, "--output", "json")
	var js map[string]any
	if err := json.Unmarshal([]byte(out), &js); err != nil || code != exitFindings || js["unsigned_files"] != 6.0 || !strings.HasPrefix(js["unsigned"].(string), "unsigned code: checked") {
		t.Errorf("status json: exit %d %v\n%s", code, err, out)
	}
	code, out, _ = runCmd(t, "report", "--state-dir", dir, "--output", "json")
	if code != exitFindings || !strings.Contains(out, `{"unsigned":{"UNSIGNED_EXTRA":{"themes\/x\/shell.php":`) {
		t.Errorf("report: exit %d\n%s", code, out)
	}
}

// baseline --accept waits while another baseline holds the lock, so two
// admins accepting at once both get their changes in.
func TestBaselineAcceptWaits(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	if code, out, errOut := runCmd(t, "baseline", "--root", root, "--state-dir", stateDir); code != exitClean {
		t.Fatalf("baseline: exit %d %s %s", code, out, errOut)
	}
	os.Mkdir(filepath.Join(root, "themes"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "themes/shell.php"), []byte("<?php"), 0o644); err != nil {
		t.Fatal(err)
	}
	held, err := state.LockBaseline(context.Background(), stateDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := runCmd(t, "baseline", "--root", root, "--state-dir", stateDir, "--accept", "themes/shell.php")
		done <- result{code, out, errOut}
	}()
	select {
	case r := <-done:
		t.Fatalf("accept did not wait for the held lock: exit %d %s %s", r.code, r.out, r.errOut)
	case <-time.After(500 * time.Millisecond):
	}
	held.Close()
	r := <-done
	if r.code != exitClean || !strings.Contains(r.errOut, "waiting for another integrityd baseline (pid ") || !strings.Contains(r.errOut, "accepted UNSIGNED_EXTRA themes/shell.php") {
		t.Errorf("accept after the lock was released: exit %d %s %s", r.code, r.out, r.errOut)
	}
}

// integrityd baseline on a running daemon: the daemon takes the new
// baseline in at once, so a web shell written right after the command
// returns is alerted by its event, and no full scan runs for it.
func TestBaselineRunningDaemon(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "themes/mine"), 0o755)
	stateDir := t.TempDir()
	p := startProc(t, root, stateDir)
	p.waitScanned(t)
	scans := len(p.entries(t, "full scan done"))
	if code, out, errOut := runCmd(t, "baseline", "--root", root, "--state-dir", stateDir); code != exitClean {
		t.Fatalf("baseline: exit %d %s %s", code, out, errOut)
	}
	deadline := time.Now().Add(hangGuard)
	read := func() bool {
		for _, e := range p.logEntries(t) {
			if m, _ := e["msg"].(string); strings.Contains(m, "checked against the baseline of") {
				return true
			}
		}
		return false
	}
	for !read() {
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not read the new baseline")
		}
		time.Sleep(20 * time.Millisecond)
	}
	shell := filepath.Join(root, "themes/mine/shell.php")
	if err := os.WriteFile(shell, []byte("<?php system($_GET['c']);"), 0o644); err != nil {
		t.Fatal(err)
	}
	for !slices.Contains(alertedPaths(p.findingEntries(t, false)), "unsigned:themes/mine/shell.php") {
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(p.log)
			t.Fatalf("no alert for a web shell written right after integrityd baseline:\n%s", data)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(p.entries(t, "full scan done")) - scans; n != 0 {
		t.Errorf("%d full scans after integrityd baseline, want none: the shell is found by its event", n)
	}
}
