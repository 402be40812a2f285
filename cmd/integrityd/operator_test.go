package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/integrityd/integrityd/internal/demo"
	buildversion "github.com/integrityd/integrityd/internal/version"
)

// TestOperatorCommands: status, report and rescan against a running
// daemon; the metrics textfile it writes parses as node_exporter reads it.
func TestOperatorCommands(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	prom := filepath.Join(t.TempDir(), "integrityd.prom")
	conf := filepath.Join(t.TempDir(), "integrityd.conf")
	os.WriteFile(conf, []byte("root = "+root+"\ntrust = "+filepath.Join(root, "resources/codesigning/root.crt")+"\nstate_dir = "+stateDir+"\nmetrics_textfile = "+prom+"\n"), 0o644)

	// Not started yet: status says so with exit 3.
	if code, out, errOut := runCmd(t, "status", "--state-dir", stateDir); code != exitNotRunning || !strings.Contains(errOut, "no state") {
		t.Errorf("status before start: exit %d, %s %s", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, "check-config", "--config", conf); code != exitClean || !strings.Contains(out, "configuration OK") {
		t.Errorf("check-config: exit %d, %s %s", code, out, errOut)
	}

	p := startProcArgs(t, "run", "--config", conf, "--log-format", "json")
	p.waitScanned(t)
	code, out, _ := runCmd(t, "status", "--config", conf)
	if code != exitClean || !strings.Contains(out, "running (pid") || !strings.Contains(out, "findings:        0") {
		t.Errorf("status, clean: exit %d:\n%s", code, out)
	}

	// Tamper: status and report show it.
	os.WriteFile(filepath.Join(root, "index.php"), []byte("<?php evil();"), 0o644)
	deadline := time.Now().Add(hangGuard)
	for {
		code, out, _ = runCmd(t, "status", "--state-dir", stateDir)
		if code == exitFindings {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the finding: exit %d\n%s", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out, "INVALID_HASH 1") {
		t.Errorf("status:\n%s", out)
	}
	// A container's HEALTHCHECK: healthy with findings (they are alerts).
	if code, out, errOut := runCmd(t, "status", "--health", "--state-dir", stateDir); code != exitClean {
		t.Errorf("status --health with findings: exit %d, want 0\n%s%s", code, out, errOut)
	}
	// status --all: this daemon (its dir's integrityd.conf) and a template
	// instance that never ran; a broken configuration makes it exit 2.
	confDir := filepath.Dir(conf)
	os.WriteFile(filepath.Join(confDir, "b.conf"), []byte("root = "+root+"\nstate_dir = "+t.TempDir()+"\n"), 0o644)
	code, out, errOut := runCmd(t, "status", "--all", "--config-dir", confDir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitNotRunning || len(lines) != 3 || !strings.HasPrefix(lines[1], "integrityd ") || !strings.Contains(lines[1], root) ||
		!strings.Contains(lines[1], "running") || !strings.Contains(lines[1], " 1 ") || !strings.HasPrefix(lines[2], "integrityd@b ") || !strings.Contains(lines[2], "STALE: no state") {
		t.Errorf("status --all: exit %d, want %d (one never ran):\n%s%s", code, exitNotRunning, out, errOut)
	}
	code, out, _ = runCmd(t, "status", "--all", "--config-dir", confDir, "--output", "json")
	var all []map[string]any
	if err := json.Unmarshal([]byte(out), &all); err != nil || len(all) != 2 || all[0]["instance"] != "integrityd" || all[0]["findings"] != 1.0 ||
		all[0]["running"] != true || all[1]["instance"] != "integrityd@b" || all[1]["running"] != false || code != exitNotRunning {
		t.Errorf("status --all --output json: exit %d, %v:\n%s", code, err, out)
	}
	os.WriteFile(filepath.Join(confDir, "b.conf"), []byte("no_such_key = 1\n"), 0o644)
	if code, out, errOut = runCmd(t, "status", "--all", "--config-dir", confDir); code != exitError || !strings.Contains(out, "ERROR: ") || !strings.Contains(out, "no_such_key") {
		t.Errorf("status --all with a broken configuration: exit %d, want %d:\n%s%s", code, exitError, out, errOut)
	}
	os.Remove(filepath.Join(confDir, "b.conf"))
	if code, out, errOut = runCmd(t, "status", "--all", "--config-dir", confDir); code != exitFindings {
		t.Errorf("status --all, one instance with a finding: exit %d, want %d:\n%s%s", code, exitFindings, out, errOut)
	}
	code, out, _ = runCmd(t, "report", "--state-dir", stateDir, "--output", "json")
	var rep map[string]map[string]map[string]map[string]string
	if err := json.Unmarshal([]byte(out), &rep); code != exitFindings || err != nil || rep["core"]["INVALID_HASH"]["index.php"]["current"] == "" {
		t.Errorf("report: exit %d, %v:\n%s", code, err, out)
	}
	code, textOut, _ := runCmd(t, "report", "--state-dir", stateDir)
	if code != exitFindings || !strings.HasPrefix(textOut, "Technical information") || !strings.Contains(textOut, "\t\t- index.php") {
		t.Errorf("report text: exit %d, want %d:\n%s", code, exitFindings, textOut)
	}

	// Fix it, rescan: the result is clean.
	os.WriteFile(filepath.Join(root, "index.php"), []byte(demo.Files["index.php"]), 0o644)
	code, out, errOut = runCmd(t, "rescan", "--state-dir", stateDir)
	if code != exitClean || !strings.Contains(out, "No errors have been found.") {
		t.Errorf("rescan: exit %d: %s %s", code, out, errOut)
	}

	// Stop: the textfile is valid exposition format.
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	data, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation) // what node_exporter accepts
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("textfile does not parse: %v\n%s", err, data)
	}
	value := func(name string, labels map[string]string) float64 {
		mf := mfs[name]
		if mf == nil {
			t.Fatalf("no %s in the textfile", name)
		}
	next:
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	if v := value("integrityd_alerts_total", map[string]string{"kind": "INVALID_HASH"}); v != 1 {
		t.Errorf("alerts_total{INVALID_HASH} = %v, want 1", v)
	}
	if v := value("integrityd_findings_all", nil); v != 0 {
		t.Errorf("findings_all = %v after the fix, want 0", v)
	}
	if mf := mfs["integrityd_findings"]; mf != nil && len(mf.Metric) > 0 {
		t.Errorf("integrityd_findings series with no finding: %v", mf.Metric)
	}
	if v := value("integrityd_full_scans_total", nil); v < 2 {
		t.Errorf("full_scans_total = %v, want >= 2 (start and rescan)", v)
	}
	if v := value("integrityd_watched_files", nil); v != 15 {
		t.Errorf("watched_files = %v, want 15", v)
	}
	// The version integrityd --version prints (here "devel": no stamp,
	// no module version), not the build info's "(devel)".
	value("integrityd_build_info", map[string]string{"version": buildversion.String()})
	for name, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "root" {
					if l.GetValue() != root {
						t.Errorf("%s has root=%q, want %q", name, l.GetValue(), root)
					}
					continue
				}
				if strings.Contains(l.GetValue(), "/") {
					t.Errorf("%s has a path-like label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	// Not running any more.
	if code, out, _ := runCmd(t, "status", "--state-dir", stateDir); code != exitNotRunning || !strings.Contains(out, "NOT RUNNING") {
		t.Errorf("status after stop: exit %d\n%s", code, out)
	}
}

// --metrics-listen on a unix socket serves the exposition format.
func TestMetricsListenUnix(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	p := startProcArgs(t, "run", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--state-dir", t.TempDir(), "--log-format", "json", "--metrics-listen", "unix:"+sock)
	p.waitScanned(t)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := client.Get("http://integrityd/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("integrityd_build_info{")) || !bytes.Contains(body, []byte("integrityd_watched_files{root=\""+root+"\"} 15")) {
		t.Errorf("GET /metrics: %s\n%s", resp.Status, body)
	}
}

// Progress lines appear on a terminal only.
func TestProgress(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000; i++ { // enough work for a few progress ticks
		p := filepath.Join(root, "lib", "bulk", strconv.Itoa(i%20), strconv.Itoa(i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, bytes.Repeat([]byte{'x'}, 64<<10), 0o644)
	}
	_, _, errOut := runCmd(t, "check-core", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--workers", "1")
	if errOut != "" {
		t.Errorf("not a terminal, yet stderr got %q", errOut)
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not installed: no pseudo-terminal to test the progress line")
	}
	cmd := exec.Command(script, "-qec", os.Args[0]+" check-core --root "+root+" --trust "+filepath.Join(root, "resources/codesigning/root.crt")+" --workers 1", "/dev/null")
	cmd.Env = append(os.Environ(), "INTEGRITYD_TEST_MAIN=1")
	out, _ := cmd.CombinedOutput()
	if !bytes.Contains(out, []byte("\r\033[Kchecked ")) || !bytes.Contains(out, []byte(" MB/s")) {
		t.Errorf("no progress line on a terminal:\n%q", out)
	}
}

// SIGHUP reloads the configuration: a new exclusion applies; an invalid
// file is refused and the running configuration kept.
func TestReloadConfig(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	conf := filepath.Join(t.TempDir(), "integrityd.conf")
	os.WriteFile(conf, []byte("root = "+root+"\ntrust = "+filepath.Join(root, "resources/codesigning/root.crt")+"\nstate_dir = "+stateDir+"\n"), 0o644)
	os.WriteFile(filepath.Join(root, "lib", "extra.php"), []byte("<?php"), 0o644)
	p := startProcArgs(t, "run", "--config", conf, "--log-format", "json")
	p.waitScanned(t)
	if code, _, _ := runCmd(t, "status", "--state-dir", stateDir); code != exitFindings {
		t.Fatalf("status: exit %d, want findings", code)
	}
	// Invalid: kept, and said so.
	os.WriteFile(conf, []byte("root = "+root+"\ntrust = "+filepath.Join(root, "resources/codesigning/root.crt")+"\nstate_dir = "+stateDir+"\nbogus = 1\n"), 0o644)
	if code, out, errOut := runCmd(t, "rescan", "--state-dir", stateDir); code != exitFindings {
		t.Fatalf("rescan with an invalid configuration: exit %d %s %s", code, out, errOut)
	}
	if e := p.entries(t, "SIGHUP: configuration invalid, keeping the running one"); len(e) != 1 || !strings.Contains(fmt.Sprint(e[0]["error"]), ":4: unknown key") {
		t.Errorf("invalid configuration entries: %v", e)
	}
	// Valid, with an exclusion: the finding goes.
	os.WriteFile(conf, []byte("root = "+root+"\ntrust = "+filepath.Join(root, "resources/codesigning/root.crt")+"\nstate_dir = "+stateDir+"\nexclude = "+filepath.Join(root, "lib", "extra.php")+"\n"), 0o644)
	if code, out, errOut := runCmd(t, "rescan", "--state-dir", stateDir); code != exitClean {
		t.Fatalf("rescan after excluding: exit %d %s %s", code, out, errOut)
	}
}

// A reload applies every key or says it cannot: a new root (or metrics,
// or control socket) starts the checks again on it in the same process;
// a new state directory is named as needing a restart.
func TestReloadRestartKeys(t *testing.T) {
	var roots [2]string
	for i := range roots {
		roots[i] = filepath.Join(t.TempDir(), "nc")
		if err := demo.Build(context.Background(), roots[i]); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(roots[0], "lib", "extra.php"), []byte("<?php"), 0o644)
	stateDir := t.TempDir()
	conf := filepath.Join(t.TempDir(), "integrityd.conf")
	write := func(root, state, extra string) {
		os.WriteFile(conf, []byte("root = "+root+"\ntrust = "+filepath.Join(root, "resources/codesigning/root.crt")+"\nstate_dir = "+state+"\n"+extra), 0o644)
	}
	write(roots[0], stateDir, "")
	p := startProcArgs(t, "run", "--config", conf, "--log-format", "json")
	p.waitScanned(t)
	if code, _, _ := runCmd(t, "status", "--state-dir", stateDir); code != exitFindings {
		t.Fatalf("status: exit %d, want findings", code)
	}
	textfile := filepath.Join(t.TempDir(), "integrityd.prom")
	write(roots[1], stateDir, "metrics_textfile = "+textfile+"\n")
	if code, out, errOut := runCmd(t, "rescan", "--state-dir", stateDir); code != exitClean {
		t.Fatalf("rescan after the root changed to a clean tree: exit %d %s %s", code, out, errOut)
	}
	if e := p.entries(t, "SIGHUP: configuration reloaded; starting the checks again to apply root, apps_path, metrics_textfile"); len(e) != 1 {
		t.Errorf("no entry naming the keys applied by starting again: %v", e)
	}
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(textfile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics textfile of the reloaded configuration after %v", hangGuard)
		}
	}
	write(roots[1], t.TempDir(), "metrics_textfile = "+textfile+"\n")
	if code, out, errOut := runCmd(t, "rescan", "--state-dir", stateDir); code != exitClean {
		t.Fatalf("rescan after the state directory changed: exit %d %s %s", code, out, errOut)
	}
	if e := p.entries(t, "SIGHUP: these settings change only when integrityd is restarted (systemctl restart): state_dir"); len(e) != 1 {
		t.Errorf("no entry naming state_dir as needing a restart: %v", e)
	}
}

// status --health follows the loop's own heartbeat: a daemon frozen
// with SIGSTOP is reported not alive (exit 3), however recent its last
// full scan, and alive again once it goes on (SIGCONT).
func TestHealthStopped(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	p := startProc(t, root, stateDir)
	p.waitScanned(t)
	health := func() (int, string) {
		code, out, errOut := runCmd(t, "status", "--health", "--state-dir", stateDir)
		return code, out + errOut
	}
	waitHealth := func(what string, want int, says string) {
		t.Helper()
		deadline := time.Now().Add(hangGuard)
		for {
			code, out := health()
			if code == want && strings.Contains(out, says) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status --health exit %d, want %d saying %q:\n%s", what, code, want, says, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitHealth("running", exitClean, "running (pid")
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer p.cmd.Process.Signal(syscall.SIGCONT) // before the kill of the cleanup
	waitHealth("stopped with SIGSTOP", exitNotRunning, "has not gone round")
	p.cmd.Process.Signal(syscall.SIGCONT)
	waitHealth("continued", exitClean, "running (pid")
}
