package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/daemon"
	"github.com/integrityd/integrityd/internal/demo"
)

func demoRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	return root
}

func writeConf(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "integrityd.conf")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The daemon's configuration is made from the merged settings, --workers
// included; SIGHUP runs the same loadRun.
func TestLoadRun(t *testing.T) {
	root := demoRoot(t)
	conf := writeConf(t, "root = "+root, "trust = "+filepath.Join(root, "resources/codesigning/root.crt"), "state_dir = /srv/state", "rescan_interval = 30m", "exclude = lib/extra.php", "crl = none", "unsigned = on")
	s, cfg, unenforced, err := loadRun("run", []string{"--config", conf, "--workers", "3", "--rescan-interval", "10m", "--metrics-listen", "127.0.0.1:0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if unenforced != "" {
		t.Errorf("unenforced %q on the demo's stable channel", unenforced)
	}
	want := daemon.Config{
		Root: root, AppsPaths: []string{filepath.Join(root, "apps")}, Exclude: []string{filepath.Join(root, "lib/extra.php")},
		Trust: filepath.Join(root, "resources/codesigning/root.crt"), StateDir: "/srv/state",
		Workers: 3, RescanInterval: 10 * time.Minute, ReverifyPeriod: 10 * time.Minute,
		FollowConfig: true, // apps_path and data_dir are not pinned: Nextcloud's config.php says
		Unsigned:     "on",
		WhoData:      true,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("daemon.Config\ngot  %+v\nwant %+v", cfg, want)
	}
	if s.MetricsListen != "127.0.0.1:0" || s.LogFormat != "auto" || s.ConfigFile != conf {
		t.Errorf("settings: %+v", s)
	}
}

// Every command takes its settings from the one merge: its errors and
// exit statuses.
func TestCommandSettings(t *testing.T) {
	root := demoRoot(t)
	stateA, stateB := t.TempDir(), t.TempDir()
	stateConf := writeConf(t, "state_dir = "+stateA)
	badEnforce := writeConf(t, "root = "+root, "trust = "+filepath.Join(root, "resources/codesigning/root.crt"), "enforce = maybe")
	noEnforce := writeConf(t, "root = "+root, "trust = "+filepath.Join(root, "resources/codesigning/root.crt"), "enforce = no")
	tests := []struct {
		name  string
		args  []string
		code  int
		want  string // in stderr
		usage bool   // stderr has the usage line
	}{
		{"run rescan interval", []string{"run", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--rescan-interval", "0s"}, exitConfig, `--rescan-interval: "0s" is not a positive duration`, false},
		{"run log format", []string{"check-config", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--log-format", "xml"}, exitError, `--log-format: "xml", want`, true},
		{"check-config bad file value", []string{"check-config", "--config", badEnforce}, exitError, badEnforce + `:3: enforce: "maybe"`, false},
		{"check-config bad file value overridden", []string{"check-config", "--config", badEnforce, "--enforce", "yes"}, exitError, badEnforce + `:3: enforce: "maybe"`, false},
		{"check-config root not a directory", []string{"check-config", "--root", filepath.Join(root, "index.php")}, exitError, "not a directory", false},
		{"check-core enforce from the file", []string{"check-core", "--config", noEnforce}, exitError, "--enforce=no", false},
		{"check-core enforce flag over the file", []string{"check-core", "--config", noEnforce, "--enforce", "yes"}, exitClean, "", false},
		{"check enforce flag", []string{"check", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--enforce", "sometimes"}, exitError, `--enforce: "sometimes", want "auto", "yes" or "no"`, true},
		{"status output", []string{"status", "--output", "xml", "--state-dir", stateA}, exitError, `unknown --output "xml" (want one of text, json)`, true},
		{"report output", []string{"report", "--output", "json_pretty", "--state-dir", stateB}, exitNotRunning, "no state in " + stateB, false},
		{"report state dir from the file", []string{"report", "--config", stateConf}, exitNotRunning, "no state in " + stateA, false},
		{"report state dir flag over the file", []string{"report", "--config", stateConf, "--state-dir", stateB}, exitNotRunning, "no state in " + stateB, false},
		{"rescan state dir from the file", []string{"rescan", "--config", stateConf}, exitNotRunning, "no state in " + stateA, false},
		{"status bad file", []string{"status", "--config", badEnforce}, exitError, badEnforce + ":3: enforce", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr does not contain %q: %s", tt.want, errOut)
			}
			if got := strings.Contains(errOut, "\nusage: integrityd "); got != tt.usage {
				t.Errorf("usage line shown: %v, want %v: %s", got, tt.usage, errOut)
			}
		})
	}
}

// A configuration error of run is exit 78 (EX_CONFIG, which the unit does
// not restart on) after exactly one line on stderr.
func TestRunConfigError(t *testing.T) {
	root := demoRoot(t)
	unknownKey := writeConf(t, "root = "+root, "trust = "+filepath.Join(root, "resources/codesigning/root.crt"), "frobnicate = 1")
	unreadable := filepath.Join(t.TempDir(), "missing.conf")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"--config", unknownKey, "--state-dir", t.TempDir()}, unknownKey + `:3: unknown key "frobnicate"`},
		{"unreadable file", []string{"--config", unreadable}, "read configuration: open " + unreadable},
		{"unknown flag", []string{"--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--frobnicate"}, "flag provided but not defined: -frobnicate"},
		{"no root", []string{"--state-dir", t.TempDir()}, "--root is required"},
		{"bad log format", []string{"--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--log-format", "xml"}, `--log-format: "xml"`},
		{"relative control socket in the file", []string{"--config", writeConf(t, "root = "+root, "trust = "+filepath.Join(root, "resources/codesigning/root.crt"), "control_socket = x.sock")}, `control_socket: "x.sock" is not an absolute path`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, append([]string{"run"}, tt.args...)...)
			if code != exitConfig {
				t.Errorf("exit %d, want %d (EX_CONFIG)\nstdout: %s\nstderr: %s", code, exitConfig, out, errOut)
			}
			if !strings.HasPrefix(errOut, "integrityd run: configuration error: ") || !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q, want one line with %q", errOut, tt.want)
			}
			if n := strings.Count(errOut, "\n"); n != 1 {
				t.Errorf("%d lines on stderr, want 1: %q", n, errOut)
			}
		})
	}
	// -h still shows the flags, on stdout, and is no error.
	if code, out, _ := runCmd(t, "run", "-h"); code != exitClean || !strings.Contains(out, "-control-socket") {
		t.Errorf("run -h: exit %d, %q", code, out)
	}
}
