package daemon

import (
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// With the trust anchor pinned outside the install, a change of the
// install's root.crt is alerted, and its restoration too.
func TestPinnedTrustAnchor(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	if err := buildDemoTree(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	inTree := filepath.Join(root, "resources/codesigning/root.crt")
	orig, err := os.ReadFile(inTree)
	if err != nil {
		t.Fatal(err)
	}
	pinned := filepath.Join(t.TempDir(), "root.crt")
	os.WriteFile(pinned, orig, 0o644)
	cfg := testConfig(root, t.TempDir())
	cfg.Trust = pinned
	r := start(t, cfg)
	if n := len(r.logs.FilterField(zapString("message_id", kind.IDTrustDiffer)).All()); n != 0 {
		t.Fatalf("%d mismatch alerts while the copies are equal", n)
	}
	// An attacker's CA in the install.
	_, other, err := demo.NewCert("attacker CA", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(inTree, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Raw}), 0o644)
	r.waitIdle(t)
	if n := len(r.logs.FilterField(zapString("message_id", kind.IDTrustDiffer)).All()); n != 1 {
		t.Fatalf("%d mismatch alerts after the install's root.crt changed, want 1", n)
	}
	trustMetric(t, r, root, 1)
	os.WriteFile(inTree, orig, 0o644)
	r.waitIdle(t)
	if n := len(r.logs.FilterMessage("resolved TRUST_ANCHOR core " + verify.InTreeAnchors + ": matches the pinned one (" + pinned + ") again").All()); n != 1 {
		t.Errorf("%d 'matches again' entries after the restore, want 1", n)
	}
	trustMetric(t, r, root, 0)
}

// trustMetric checks integrityd_trust_anchor_mismatch (the alerting
// rule in packaging/prometheus fires on it).
func trustMetric(t *testing.T, r *running, root string, want int) {
	t.Helper()
	exp := fmt.Sprintf("# HELP integrityd_trust_anchor_mismatch 1 while the install's resources/codesigning/root.crt differs from the trust anchors in use (built in or pinned).\n"+
		"# TYPE integrityd_trust_anchor_mismatch gauge\nintegrityd_trust_anchor_mismatch{root=%q} %d\n", root, want)
	if err := testutil.GatherAndCompare(r.d.Metrics().Registry, strings.NewReader(exp), "integrityd_trust_anchor_mismatch"); err != nil {
		t.Error(err)
	}
}

func zapString(k, v string) zap.Field { return zap.String(k, v) }
