package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/integrityd/integrityd/internal/config"
	"github.com/integrityd/integrityd/internal/daemon"
	"github.com/integrityd/integrityd/internal/demo"
)

// Every key of the configuration file has one reload rule, and a change
// of a key that is not applied in place is named by restartKeys, as read
// from two files (reverify_period was neither applied nor named: a reload
// kept the running period and said nothing).
func TestReloadRules(t *testing.T) {
	keys := config.Keys()
	rules := map[string]int{}
	for _, r := range reloadRules() {
		if _, dup := rules[r.key]; dup {
			t.Errorf("two rules for %s", r.key)
		}
		rules[r.key] = r.how
		if !slices.Contains(keys, r.key) {
			t.Errorf("a rule for %s, which is no key of the configuration file", r.key)
		}
	}
	for _, k := range keys {
		if _, ok := rules[k]; !ok {
			t.Errorf("no reload rule for the key %s", k)
		}
	}

	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := "root = " + root + "\ntrust = " + filepath.Join(root, "resources/codesigning/root.crt") + "\nstate_dir = " + dir + "\n"
	load := func(extra string) (*config.Settings, daemon.Config) {
		t.Helper()
		conf := filepath.Join(dir, "integrityd.conf")
		if err := os.WriteFile(conf, []byte(base+extra), 0o644); err != nil {
			t.Fatal(err)
		}
		s, cfg, _, err := loadRun("run", []string{"--config", conf}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return s, cfg
	}
	for _, tc := range []struct {
		name, from, to string
		again, never   []string
	}{
		{"reverify_period", "reverify_period = 10m\n", "reverify_period = 20m\n", []string{"reverify_period"}, nil},
		{"metrics and log format", "", "metrics_listen = unix:/run/x/m.sock\nlog_format = json\n", []string{"metrics_listen"}, []string{"log_format"}},
		{"applied in place", "", "rescan_interval = 2h\nexclude = data2\ncrl = none\n", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, cfg := load(tc.from)
			ns, next := load(tc.to)
			again, never := restartKeys(s, cfg, ns, next)
			if !slices.Equal(again, tc.again) || !slices.Equal(never, tc.never) {
				t.Errorf("again %v, never %v; want %v, %v", again, never, tc.again, tc.never)
			}
		})
	}
}
