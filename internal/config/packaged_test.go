package config

import (
	"os"
	"regexp"
	"testing"
)

// TestPackagedConfigListsEveryKey: packaging/systemd/integrityd.conf says
// it lists every key; each one is there, set or commented out, and the
// file as shipped parses (issue 22: who_data was missing).
func TestPackagedConfigListsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../packaging/systemd/integrityd.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		if !regexp.MustCompile(`(?m)^#?` + regexp.QuoteMeta(k) + ` = \S`).Match(data) {
			t.Errorf("packaging/systemd/integrityd.conf has no %q line (set or commented out)", k+" = ...")
		}
	}
	if _, err := Parse(data, "integrityd.conf"); err != nil {
		t.Error(err)
	}
}
