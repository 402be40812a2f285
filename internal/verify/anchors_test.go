package verify

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The built-in copies are packaging's (which install.sh installs) and
// Nextcloud's own, byte for byte.
func TestEmbeddedCopies(t *testing.T) {
	for _, c := range []struct{ embedded, name string }{{embeddedRootCRT, "root.crt"}, {embeddedRootCRL, "root.crl"}} {
		for _, p := range []string{filepath.Join("..", "..", "packaging", "nextcloud", c.name), filepath.Join(ncSign, c.name)} {
			if data := mustRead(t, p); !bytes.Equal(data, []byte(c.embedded)) {
				t.Errorf("the built-in %s differs from %s: copy it to internal/verify/anchors/", c.name, p)
			}
		}
	}
}

// With the built-in trust, a manifest signed by Nextcloud verifies, the
// CRL is Nextcloud's, and the install's own root.crt is compared with it.
func TestEmbeddedTrust(t *testing.T) {
	tr, err := EmbeddedTrust()
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Anchors) != 2 || tr.CRL == nil || len(tr.CRL.RevokedCertificateEntries) == 0 ||
		tr.AnchorFile != EmbeddedAnchorFile || tr.CRLFile != EmbeddedCRLFile {
		t.Fatalf("built-in trust: %d anchors, CRL %v, files %q %q", len(tr.Anchors), tr.CRL != nil, tr.AnchorFile, tr.CRLFile)
	}
	manifest := mustRead(t, "testdata/interop/real-apps/pride_flags.signature.json")
	m, err := ParseManifest(bytes.NewReader(manifest), "pride_flags")
	if err != nil {
		t.Fatal(err)
	}
	if ex := m.Verify(tr, "pride_flags"); ex != nil {
		t.Errorf("a manifest signed by Nextcloud: %+v", ex)
	}
	if ex := m.Verify(testTrust(t), "pride_flags"); ex == nil {
		t.Error("the test root trusts Nextcloud's manifest: the check above proves nothing")
	}
	if differs, why := tr.DiffersFrom(filepath.Join(ncSign, "root.crt")); differs {
		t.Errorf("Nextcloud's root.crt differs from the built-in one: %s", why)
	}
	other := filepath.Join(t.TempDir(), "root.crt")
	os.WriteFile(other, []byte(embeddedRootCRT[:len(embeddedRootCRT)/2]), 0o644)
	if differs, _ := tr.DiffersFrom(other); !differs {
		t.Error("half of root.crt does not differ from the built-in one")
	}
	if !IsEmbedded(tr.AnchorFile) || !IsEmbedded(tr.CRLFile) || IsEmbedded(filepath.Join(ncSign, "root.crt")) {
		t.Error("IsEmbedded")
	}
	// Built-in anchors with no CRL, or with a CRL file.
	if tr, err := embeddedTrust(""); err != nil || tr.CRL != nil {
		t.Errorf("without CRL: %v %v", tr, err)
	}
	if tr, err := embeddedTrust(filepath.Join(ncSign, "root.crl")); err != nil || tr.CRL == nil {
		t.Errorf("with a CRL file: %v", err)
	}
	if _, err := embeddedTrust(filepath.Join(t.TempDir(), "missing.crl")); err == nil {
		t.Error("a missing CRL file was accepted")
	}
}
