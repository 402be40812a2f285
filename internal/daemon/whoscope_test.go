package daemon

import (
	"testing"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
)

// A finding of a whole scope (an EXCEPTION of core: no file was written)
// names no writer, known or not: "EXCEPTION core, writer unknown:
// Certificate is not valid." told nothing (issue 22).
func TestWhoWholeScope(t *testing.T) {
	l := &reporter{whoData: true}
	if who, fs := l.who(&finding.Finding{Kind: kind.Exception, Scope: "core", Message: "Certificate is not valid."}); who != "" || fs != nil {
		t.Errorf("who of a whole scope = %q %v, want nothing", who, fs)
	}
	if who, _ := l.who(&finding.Finding{Kind: kind.InvalidHash, Scope: "core", Path: "index.php"}); who == "" {
		t.Error("who of a file with who-data on but no writers: nothing, want writer unknown")
	}
}
