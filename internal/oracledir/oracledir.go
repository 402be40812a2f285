// Package oracledir finds, for tests, the shared copy of Nextcloud's own
// Checker (shared/nextcloud-oracle: real code of two releases, their
// signed trees) and reads what the tests take from its releases.
package oracledir

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Find returns the oracle's directory: $INTEGRITYD_ORACLE, or
// shared/nextcloud-oracle in the working directory or one above it. It
// skips t, saying why, when there is none.
func Find(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("INTEGRITYD_ORACLE")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "shared/nextcloud-oracle/nc-oracle.php")); err == nil {
				dir = filepath.Join(d, "shared/nextcloud-oracle")
				break
			}
			if filepath.Dir(d) == d {
				t.Skipf("no shared/nextcloud-oracle in %s or above it, and INTEGRITYD_ORACLE is not set: Nextcloud's Checker is not available", wd)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nc-oracle.php")); err != nil {
		t.Skipf("INTEGRITYD_ORACLE=%s: %v", dir, err)
	}
	return dir
}

// ReleaseIcons lists core/img/filetypes as the oracle's release (a
// directory of Find's) signed it.
func ReleaseIcons(t testing.TB, release string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(release, "root", "core", "signature.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sig struct{ Hashes map[string]string }
	if err := json.Unmarshal(data, &sig); err != nil {
		t.Fatal(err)
	}
	var icons []string
	for k := range sig.Hashes {
		if rest, ok := strings.CutPrefix(k, "core/img/filetypes/"); ok && !strings.Contains(rest, "/") {
			icons = append(icons, rest)
		}
	}
	if len(icons) == 0 {
		t.Fatalf("%s lists no core/img/filetypes", release)
	}
	return icons
}
