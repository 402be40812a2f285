package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testCommand takes a string, a list and a duration setting, and an
// --output.
var testCommand = Command{
	Flags:  []string{"config", "state-dir", "exclude", "rescan-interval", "enforce", "log-format", "output", "root", "unsigned"},
	Output: "text", Outputs: []string{"text", "json"},
}

// load parses args for c, with the file at defaultPath read when --config
// is not given ("" for none there).
func load(t *testing.T, c Command, defaultPath string, args ...string) (*Settings, error) {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := c.Bind(fs)
	f.defaultPath = defaultPath
	if defaultPath == "" {
		f.defaultPath = filepath.Join(t.TempDir(), "absent.conf")
	}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return f.Settings()
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "integrityd.conf")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Defaults, then the file, then the flags set: for a string, a list and a
// duration; the file given by --config or found at the default path.
func TestPrecedence(t *testing.T) {
	stateDir := func(s *Settings) any { return s.StateDir }
	exclude := func(s *Settings) any { return s.Exclude }
	rescan := func(s *Settings) any { return s.RescanInterval }
	tests := []struct {
		name string
		file string // "" for no file
		args []string
		get  func(*Settings) any
		want any
	}{
		{"string default", "", nil, stateDir, "/var/lib/integrityd"},
		{"string file", "state_dir = /srv/file\n", nil, stateDir, "/srv/file"},
		{"string flag", "", []string{"--state-dir", "rel/flag"}, stateDir, "rel/flag"},
		{"string flag over file", "state_dir = /srv/file\n", []string{"--state-dir", "/srv/flag"}, stateDir, "/srv/flag"},
		{"string flag set to the default over file", "state_dir = /srv/file\n", []string{"--state-dir", "/var/lib/integrityd"}, stateDir, "/var/lib/integrityd"},
		{"string other flag set", "state_dir = /srv/file\n", []string{"--rescan-interval", "5m"}, stateDir, "/srv/file"},
		{"list default", "", nil, exclude, []string(nil)},
		{"list file", "exclude = a\nexclude = /b\n", nil, exclude, []string{"a", "/b"}},
		{"list flag", "", []string{"--exclude", "x", "--exclude", "y"}, exclude, []string{"x", "y"}},
		{"list flag replaces file", "exclude = a\nexclude = /b\n", []string{"--exclude", "x"}, exclude, []string{"x"}},
		{"duration default", "", nil, rescan, time.Hour},
		{"duration file", "rescan_interval = 30m\n", nil, rescan, 30 * time.Minute},
		{"duration flag", "", []string{"--rescan-interval", "5m"}, rescan, 5 * time.Minute},
		{"duration flag over file", "rescan_interval = 30m\n", []string{"--rescan-interval=2h"}, rescan, 2 * time.Hour},
		{"duration flag set to the default over file", "rescan_interval = 30m\n", []string{"--rescan-interval=1h"}, rescan, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.file == "" {
				s, err := load(t, testCommand, "", tt.args...)
				if err != nil {
					t.Fatal(err)
				}
				if got := tt.get(s); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %#v, want %#v", got, tt.want)
				}
				if s.ConfigFile != "" {
					t.Errorf("ConfigFile %q, want none", s.ConfigFile)
				}
				return
			}
			for _, via := range []string{"--config", "default path"} {
				path := writeFile(t, tt.file)
				var s *Settings
				var err error
				if via == "--config" {
					s, err = load(t, testCommand, "", append([]string{"--config", path}, tt.args...)...)
				} else {
					s, err = load(t, testCommand, path, tt.args...)
				}
				if err != nil {
					t.Fatalf("%s: %v", via, err)
				}
				if got := tt.get(s); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s: got %#v, want %#v", via, got, tt.want)
				}
				if s.ConfigFile != path {
					t.Errorf("%s: ConfigFile %q, want %q", via, s.ConfigFile, path)
				}
			}
		})
	}
}

// --config replaces the default file, which is then not read at all.
func TestConfigFlagReplacesDefault(t *testing.T) {
	def := writeFile(t, "state_dir = /srv/default\nbogus = 1\n")
	named := writeFile(t, "rescan_interval = 10m\n")
	s, err := load(t, testCommand, def, "--config", named)
	if err != nil {
		t.Fatal(err)
	}
	if s.StateDir != "/var/lib/integrityd" || s.RescanInterval != 10*time.Minute || s.ConfigFile != named {
		t.Errorf("got state dir %q, rescan %s, file %q; want the default state dir, 10m, %s", s.StateDir, s.RescanInterval, s.ConfigFile, named)
	}
}

// Every key of the file reaches its setting.
func TestEveryKey(t *testing.T) {
	path := writeFile(t, `root = /srv/nc
apps_path = /srv/nc/apps
apps_path = /srv/nc/custom_apps
data_dir = /srv/data
exclude = lib/big
trust = /etc/integrityd/root.crt
crl = none
state_dir = /srv/state
rescan_interval = 45m
reverify_period = 5m
enforce = yes
log_format = json
metrics_listen = 127.0.0.1:9737
metrics_textfile = /srv/integrityd.prom
unsigned = on
`)
	s, err := load(t, Command{Flags: []string{"config"}}, "", "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	s.from = nil
	want := Settings{
		ConfigFile: path, Root: "/srv/nc", AppsPaths: []string{"/srv/nc/apps", "/srv/nc/custom_apps"}, DataDir: "/srv/data",
		Exclude: []string{"lib/big"}, Trust: "/etc/integrityd/root.crt", CRL: "none", Enforce: "yes", StateDir: "/srv/state",
		RescanInterval: 45 * time.Minute, ReverifyPeriod: 5 * time.Minute, LogFormat: "json", MetricsListen: "127.0.0.1:9737", MetricsTextfile: "/srv/integrityd.prom", WhoData: "on",
		Unsigned: "on",
	}
	if !reflect.DeepEqual(*s, want) {
		t.Errorf("got  %+v\nwant %+v", *s, want)
	}
}

// The flags show the command's defaults in -h.
func TestFlagDefaults(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	Command{Flags: []string{"output", "state-dir", "rescan-interval", "workers"}, Output: "plain", Outputs: []string{"plain"}}.Bind(fs)
	for name, want := range map[string]string{"output": "plain", "state-dir": "/var/lib/integrityd", "rescan-interval": "1h0m0s", "workers": "0"} {
		if got := fs.Lookup(name).DefValue; got != want {
			t.Errorf("--%s default %q, want %q", name, got, want)
		}
	}
}

// Each validation error, on the merged value, names the flag or the
// file's line.
func TestValidationErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o644)
	needRoot := testCommand
	needRoot.NeedRoot = true
	type kind int
	const (
		none      kind = iota
		flagError      // *FlagError
		fileError      // *Error
		other
	)
	tests := []struct {
		name string
		cmd  Command
		file string // "" for none; CONF in want is its path
		args []string
		kind kind
		want string
	}{
		{"output flag", testCommand, "", []string{"--output", "xml"}, flagError, `unknown --output "xml" (want one of text, json)`},
		{"enforce flag", testCommand, "", []string{"--enforce", "maybe"}, flagError, `--enforce: "maybe", want "auto", "yes" or "no"`},
		{"enforce file", testCommand, "# c\nenforce = maybe\n", nil, fileError, `CONF:2: enforce: "maybe", want "auto", "yes" or "no"`},
		{"enforce file, overridden by the flag", testCommand, "enforce = maybe\n", []string{"--enforce", "yes"}, fileError, `CONF:1: enforce: "maybe", want "auto", "yes" or "no"`},
		{"enforce flag over a good file", testCommand, "enforce = yes\n", []string{"--enforce", "always"}, flagError, `--enforce: "always", want "auto", "yes" or "no"`},
		{"log format flag", testCommand, "", []string{"--log-format", "xml"}, flagError, `--log-format: "xml", want "auto", "journal", "json" or "console"`},
		{"log format file", testCommand, "\n\nlog_format = xml\n", nil, fileError, `CONF:3: log_format: "xml", want "auto", "journal", "json" or "console"`},
		{"rescan interval flag zero", testCommand, "", []string{"--rescan-interval", "0s"}, flagError, `--rescan-interval: "0s" is not a positive duration (like 30m or 1h)`},
		{"rescan interval flag negative", testCommand, "", []string{"--rescan-interval=-5m"}, flagError, `--rescan-interval: "-5m0s" is not a positive duration (like 30m or 1h)`},
		{"reverify period too short", testCommand, "state_dir = /a\nreverify_period = 10ms\n", nil, fileError, `CONF:2: reverify_period: "10ms": want 0 (off) or a duration of at least 1s (like 10m)`},
		{"rescan interval file", testCommand, "state_dir = /a\nrescan_interval = -1s\n", nil, fileError, `CONF:2: rescan_interval: "-1s" is not a positive duration (like 30m or 1h)`},
		{"rescan interval file, overridden by the flag", testCommand, "rescan_interval = 0s\n", []string{"--rescan-interval", "1m"}, fileError, `CONF:1: rescan_interval: "0s" is not a positive duration (like 30m or 1h)`},
		{"bad value in the file, command without the flag", Command{Flags: []string{"config"}}, "log_format = xml\n", nil, fileError, `CONF:1: log_format: "xml", want "auto", "journal", "json" or "console"`},
		{"unsigned flag", testCommand, "", []string{"--unsigned", "yes"}, flagError, `--unsigned: "yes", want "auto", "on" or "off"`},
		{"unsigned file", testCommand, "unsigned = maybe\n", nil, fileError, `CONF:1: unsigned: "maybe", want "auto", "on" or "off"`},
		{"root required", needRoot, "", nil, flagError, "--root is required (or root = in the configuration file)"},
		{"root flag not a directory", needRoot, "", []string{"--root", notDir}, other, "server root " + notDir + ": not a directory"},
		{"root flag missing", needRoot, "", []string{"--root", filepath.Join(dir, "nope")}, other, "server root " + filepath.Join(dir, "nope") + ": not a directory"},
		{"root file not a directory", needRoot, "state_dir = /a\nroot = " + notDir + "\n", nil, fileError, "CONF:2: root: " + notDir + " is not a directory"},
		{"root file not a directory, overridden by the flag", needRoot, "root = " + notDir + "\n", []string{"--root", dir}, none, ""},
		{"root file", needRoot, "root = " + dir + "\n", nil, none, ""},
		{"root not needed", testCommand, "root = " + notDir + "\n", nil, none, ""},
		{"file syntax", testCommand, "root /a\n", nil, fileError, `CONF:1: want "key = value", got "root /a"`},
		{"file missing", testCommand, "", []string{"--config", filepath.Join(dir, "missing.conf")}, other, "read configuration: open " + filepath.Join(dir, "missing.conf") + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, want := tt.args, tt.want
			if tt.file != "" {
				path := writeFile(t, tt.file)
				args = append([]string{"--config", path}, args...)
				want = strings.ReplaceAll(want, "CONF", path)
			}
			_, err := load(t, tt.cmd, "", args...)
			var fe *FlagError
			var ce *Error
			switch {
			case tt.kind == none:
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			case err == nil:
				t.Fatalf("no error, want %s", want)
			case err.Error() != want:
				t.Errorf("got %q, want %q", err, want)
			}
			if got := errors.As(err, &fe); got != (tt.kind == flagError) {
				t.Errorf("%v: FlagError %v, want %v", err, got, !got)
			}
			if got := errors.As(err, &ce); got != (tt.kind == fileError) {
				t.Errorf("%v: file Error %v, want %v", err, got, !got)
			}
		})
	}
}
