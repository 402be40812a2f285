package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/demo"
)

// shippedUnits is the directory of the packaged units, last on each
// test's search path, as /usr/lib/systemd/system is on a host's.
const shippedUnits = "../../packaging/systemd"

// unitPath is the search path of a case of testdata/units: its etc/, then
// its lib/, then the shipped units.
func unitPath(dir string) string {
	if dir == "" {
		return shippedUnits
	}
	d := filepath.Join("testdata/units", dir)
	return filepath.Join(d, "etc") + ":" + filepath.Join(d, "lib") + ":" + shippedUnits
}

// The unit's address families and network, read from its files as
// systemd reads them: the shipped unit, its drop-ins (the shipped
// metrics-tcp.conf among them) by name across the search path, and
// RestrictAddressFamilies= merged assignment by assignment.
func TestParseUnitNet(t *testing.T) {
	for _, tc := range []struct {
		name, dir, unit   string
		found             bool
		inet, inet6, priv bool
	}{
		{"shipped unit", "", "integrityd.service", true, false, false, true},
		{"shipped template", "", "integrityd@b.service", true, false, false, true},
		{"not installed", "", "integrityd-nope.service", false, false, false, false},
		{"metrics-tcp drop-in", "tcp-dropin", "integrityd.service", true, true, true, false},
		{"drop-in of one instance", "tcp-template", "integrityd@b.service", true, true, true, false},
		{"not on another instance", "tcp-template", "integrityd@a.service", true, false, false, true},
		{"a drop-in's name in etc overrides lib's", "override", "integrityd.service", true, false, false, true},
		{"masked", "masked", "integrityd.service", false, false, false, false},
		{"reset, then a deny list", "reset-deny", "integrityd.service", true, true, false, true},
		{"deny after allow takes off (service.d)", "allow-minus", "integrityd.service", true, false, false, false},
		{"none (template drop-in)", "none", "integrityd@x.service", true, false, false, false},
		{"continued line, other section", "continued", "integrityd.service", true, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, found, err := parseUnitNet(unitSearchPath(unitPath(tc.dir)), tc.unit)
			if err != nil {
				t.Fatal(err)
			}
			if found != tc.found {
				t.Fatalf("found %v, want %v (%+v)", found, tc.found, u)
			}
			if !found {
				return
			}
			if got := u.allows("AF_INET"); got != tc.inet {
				t.Errorf("AF_INET allowed %v, want %v (%+v)", got, tc.inet, u)
			}
			if got := u.allows("AF_INET6"); got != tc.inet6 {
				t.Errorf("AF_INET6 allowed %v, want %v (%+v)", got, tc.inet6, u)
			}
			if !u.allows("AF_UNIX") && tc.dir != "none" {
				t.Errorf("AF_UNIX refused (%+v)", u)
			}
			if u.privateNetwork != tc.priv {
				t.Errorf("PrivateNetwork %v, want %v (%+v)", u.privateNetwork, tc.priv, u)
			}
		})
	}
}

// check-config warns, and still says OK, when metrics_listen is TCP but
// the unit that runs this configuration (integrityd@b for b.conf) cannot
// serve it; with the metrics-tcp drop-in, or Unix socket metrics, it does
// not.
func TestCheckConfigUnitNet(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, conf, listen, dir string
		want                    []string // in the WARNING line; none: no WARNING
	}{
		{"TCP, hardened template", "b.conf", "127.0.0.1:9464", "", []string{"metrics_listen 127.0.0.1:9464 is TCP, but in unit integrityd@b.service", "allows no AF_INET socket", "PrivateNetwork=yes", "install.sh --instance b --metrics-tcp"}},
		{"TCP, hardened unit", "integrityd.conf", "[::1]:9464", "", []string{"in unit integrityd.service", "allows no AF_INET6 socket", "install.sh --metrics-tcp"}},
		{"any address, IPv6 only left", "integrityd.conf", ":9464", "reset-deny", []string{"PrivateNetwork=yes"}},
		{"TCP with the drop-in", "integrityd.conf", "127.0.0.1:9464", "tcp-dropin", nil},
		{"TCP, unit not installed", "integrityd.conf", "127.0.0.1:9464", "absent", nil},
		{"Unix socket", "b.conf", "unix:/run/integrityd/b/metrics.sock", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := unitPath(tc.dir)
			if tc.dir == "absent" {
				path = "testdata/units/absent"
			}
			t.Setenv("SYSTEMD_UNIT_PATH", path)
			conf := filepath.Join(dir, tc.conf)
			body := "root = " + root + "\ntrust = " + filepath.Join(root, "resources/codesigning/root.crt") + "\nstate_dir = " + t.TempDir() + "\nmetrics_listen = " + tc.listen + "\n"
			if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCmd(t, "check-config", "--config", conf)
			if code != exitClean || !strings.Contains(out, "configuration OK") {
				t.Fatalf("check-config: exit %d\n%s%s", code, out, errOut)
			}
			var warning string
			for l := range strings.Lines(out) {
				if strings.HasPrefix(l, "WARNING:") && strings.Contains(l, "metrics_listen") {
					warning = l
				}
			}
			if tc.want == nil && warning != "" {
				t.Errorf("a warning: %s", warning)
			}
			for _, w := range tc.want {
				if !strings.Contains(warning, w) {
					t.Errorf("warning %q does not say %q\n%s", warning, w, out)
				}
			}
		})
	}
}
