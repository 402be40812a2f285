package verify

import (
	"os"
	"testing"
)

// FuzzCertificates feeds arbitrary PEM/DER to the trust-anchor and leaf
// certificate parsing: no panic, and what parses is used as Verify uses it.
// (Signature checks are covered by the vectors and TestCRL.)
func FuzzCertificates(f *testing.F) {
	for _, p := range []string{
		"testdata/interop/nextcloud-codesigning/root.crt",
		"testdata/interop/nextcloud-codesigning/core.crt",
		"testdata/interop/nextcloud-tests/integritycheck/root.crt",
	} {
		data, _ := os.ReadFile(p)
		f.Add(data)
	}
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := parseCertificates(data)
		if err == nil && len(certs) > 0 {
			(&Trust{Anchors: certs}).revoked(certs[0])
		}
		if c, err := parseLeaf(string(data)); err == nil {
			if cn, ok := commonName(c); ok && cn == "" && c.Subject.CommonName != "" {
				t.Fatalf("CN lost: %q", c.Subject.CommonName)
			}
		}
	})
}
