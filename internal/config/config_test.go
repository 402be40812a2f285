package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`# integrityd
root = /var/www/nextcloud
apps_path = /var/www/nextcloud/apps
apps_path = "/var/www/nextcloud/custom_apps"
rescan_interval = 30m
exclude = /var/www/nextcloud/apps/bigapp/node_modules
trust = /etc/integrityd/root.crt
crl = none
metrics_textfile = /var/lib/node_exporter/integrityd.prom
control_socket = /run/integrityd/control.sock
`), "t.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.Root != "/var/www/nextcloud" || len(c.AppsPaths) != 2 || c.AppsPaths[1] != "/var/www/nextcloud/custom_apps" ||
		c.RescanInterval != 30*time.Minute || len(c.Exclude) != 1 || c.CRL != "none" || !c.Set["trust"] || c.Set["state_dir"] ||
		c.ControlSocket != "/run/integrityd/control.sock" {
		t.Errorf("parsed %+v", c)
	}
}

// parseAndValidate parses a file and validates the settings it makes:
// some bad values are only found once merged.
func parseAndValidate(data []byte, name string) error {
	c, err := Parse(data, name)
	if err != nil {
		return err
	}
	var cmd Command
	return merge(cmd.Defaults(), c, &Settings{}, nil).validate(cmd)
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"root = /a\nfrobnicate = 1\n", "t.conf:2: unknown key \"frobnicate\""},
		{"root /a\n", "t.conf:1: want \"key = value\", got \"root /a\""},
		{"\n\nroot = /a\nroot = /b\n", "t.conf:4: root set twice"},
		{"rescan_interval = soon\n", "t.conf:1: rescan_interval: \"soon\" is not a positive duration (like 30m or 1h)"},
		{"rescan_interval = -1s\n", "t.conf:1: rescan_interval: \"-1s\" is not a positive duration (like 30m or 1h)"},
		{"root = relative/path\n", "t.conf:1: root: \"relative/path\" is not an absolute path"},
		{"enforce = maybe\n", "t.conf:1: enforce: \"maybe\", want \"auto\", \"yes\" or \"no\""},
		{"log_format = xml\n", "t.conf:1: log_format: \"xml\", want \"auto\", \"journal\", \"json\" or \"console\""},
		{"trust =\n", "t.conf:1: trust: empty value"},
		{"control_socket = control.sock\n", "t.conf:1: control_socket: \"control.sock\" is not an absolute path"},
	}
	for _, tt := range tests {
		err := parseAndValidate([]byte(tt.in), "t.conf")
		var ce *Error
		if !errors.As(err, &ce) || err.Error() != tt.want {
			t.Errorf("parse and validate %q: %v, want %s", tt.in, err, tt.want)
		}
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "integrityd.conf")
	os.WriteFile(p, []byte("root = /srv/nc\n"), 0o644)
	if c, err := Load(p); err != nil || c.Root != "/srv/nc" {
		t.Errorf("Load: %+v %v", c, err)
	}
	if _, err := Load(p + ".missing"); err == nil {
		t.Error("missing file accepted")
	}
}

func TestControlSocketNone(t *testing.T) {
	c, err := Parse([]byte("control_socket = none\n"), "t.conf")
	if err != nil || c.ControlSocket != "none" {
		t.Errorf("control_socket = none: %+v %v", c, err)
	}
}
