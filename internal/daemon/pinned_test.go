package daemon

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/verify"
)

// With the trust anchor pinned outside the install, a change of the
// install's root.crt is alerted, and its restoration too.
func TestPinnedTrustAnchor(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
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
	if n := len(r.logs.FilterField(zapString("message_id", journal.IDTrustDiffer)).All()); n != 0 {
		t.Fatalf("%d mismatch alerts while the copies are equal", n)
	}
	// An attacker's CA in the install.
	_, other, err := demo.NewCert("attacker CA", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(inTree, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Raw}), 0o644)
	r.waitIdle(t)
	if n := len(r.logs.FilterField(zapString("message_id", journal.IDTrustDiffer)).All()); n != 1 {
		t.Fatalf("%d mismatch alerts after the install's root.crt changed, want 1", n)
	}
	os.WriteFile(inTree, orig, 0o644)
	r.waitIdle(t)
	if n := len(r.logs.FilterMessage("resolved TRUST_ANCHOR core " + verify.InTreeAnchors + ": matches the pinned one (" + pinned + ") again").All()); n != 1 {
		t.Errorf("%d 'matches again' entries after the restore, want 1", n)
	}
}

func zapString(k, v string) zap.Field { return zap.String(k, v) }
