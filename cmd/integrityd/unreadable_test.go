package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/asnobody"
	"github.com/integrityd/integrityd/internal/demo"
)

// TestCheckUnenterableApp: a one-shot check by a user who cannot enter an
// app directory (not the web server's user) cannot tell whether it is an
// app Nextcloud checks; it must not leave it out silently ("2 of 2 scopes
// checked" when there are 3): the directory is a scope with an EXCEPTION,
// and the exit status is 1. As root (who enters everything) the test runs
// itself as uid 65534 (internal/asnobody).
func TestCheckUnenterableApp(t *testing.T) {
	if os.Geteuid() == 0 {
		out := asnobody.Run(t, asnobody.Dir(t), "TestCheckUnenterableApp")
		t.Logf("as uid 65534:\n%s", out)
		return
	}
	for _, tt := range []struct {
		name string
		dir  string      // made unenterable
		mode os.FileMode // its mode
	}{
		{"app mode 000", "apps/dashboard", 0},
		{"app listable, not enterable", "apps/dashboard", 0o644},
		{"appinfo mode 000", "apps/dashboard/appinfo", 0},
		{"unknown directory mode 000", "apps/leftover", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "nc")
			if err := demo.Build(context.Background(), root); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, tt.dir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o755) }) // before TempDir's removal
			scope := strings.Split(strings.TrimPrefix(tt.dir, "apps/"), "/")[0]
			code, out, errOut := runCmd(t, "check", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--output", "json")
			if code != exitFindings {
				t.Errorf("exit %d, want %d (findings)\nstdout: %s\nstderr: %s", code, exitFindings, out, errOut)
			}
			var got map[string]map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if _, ok := got[scope]["EXCEPTION"]; !ok {
				t.Errorf("no EXCEPTION for %s, which could not be entered: %s", scope, out)
			}
			for _, other := range []string{"core", "files"} {
				if got[other] != nil {
					t.Errorf("%s has findings: %v", other, got[other])
				}
			}
		})
	}
}
