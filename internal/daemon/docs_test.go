package daemon

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestOperationsDocMetrics: every integrityd_* metric docs/operations.md
// names is one metrics.go exports, and the guide does not call an exported
// one "not exported" (it once said so of integrityd_trust_anchor_mismatch,
// which the daemon exports and the packaged alert rules use).
func TestOperationsDocMetrics(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(integrityd_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		exported[m[1]] = true
	}
	for _, name := range regexp.MustCompile(`integrityd_[a-z_]+`).FindAllString(string(doc), -1) {
		if !exported[name] {
			t.Errorf("docs/operations.md names %s, which metrics.go does not export", name)
		}
	}
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.Contains(line, "not exported") {
			for _, name := range regexp.MustCompile(`integrityd_[a-z_]+`).FindAllString(line, -1) {
				if exported[name] {
					t.Errorf("docs/operations.md says %s is not exported; metrics.go exports it:\n%s", name, line)
				}
			}
		}
	}
}
