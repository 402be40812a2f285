package verify

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type testCA struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
	file string // PEM file of cert
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return &testCA{key, cert, file}
}

// leaf returns a PEM certificate for cn with the given serial.
func (ca *testCA) leaf(t *testing.T, cn string, serial int64) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// crl writes a CRL by ca revoking serials.
func (ca *testCA) crl(t *testing.T, serials ...int64) string {
	t.Helper()
	var revoked []x509.RevocationListEntry
	for _, s := range serials {
		revoked = append(revoked, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: revoked}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "root.crl")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
	return file
}

func TestCRL(t *testing.T) {
	ca := newTestCA(t, "Test Code Signing CA")
	other := newTestCA(t, "Other CA")
	tr, err := LoadTrust(ca.file, ca.crl(t, 1001, 1003))
	if err != nil {
		t.Fatal(err)
	}
	// Only the certificate matters before the signature: a manifest with
	// an empty signature fails on the signature when the certificate is
	// fine, and on revocation first otherwise.
	tests := []struct {
		name string
		cert string
		want string
	}{
		{"revoked", ca.leaf(t, "SomeApp", 1003), MsgRevoked},
		{"not revoked", ca.leaf(t, "SomeApp", 1002), MsgBadSignature},
		{"revoked serial from another issuer", other.leaf(t, "SomeApp", 1003), MsgBadCert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Manifest{Certificate: tt.cert}
			ex := m.Verify(tr, "SomeApp")
			if ex == nil || ex.Message != tt.want {
				t.Fatalf("got %+v, want message %q", ex, tt.want)
			}
		})
	}
	if _, err := LoadTrust(ca.file, other.crl(t, 1)); err == nil {
		t.Error("a CRL signed by another CA was accepted")
	}
	if _, err := LoadTrust(ca.file, ca.file); err == nil {
		t.Error("a certificate was accepted as CRL")
	}
}

// Nextcloud's real CRL is signed by the intermediate in the real root.crt;
// the real core certificate is not revoked, and a certificate with a
// revoked serial from the same issuer would be.
func TestRealCRL(t *testing.T) {
	tr, err := LoadTrust(filepath.Join(ncSign, "root.crt"), filepath.Join(ncSign, "root.crl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Anchors) != 2 || len(tr.CRL.RevokedCertificateEntries) == 0 {
		t.Fatalf("%d anchors, %d revoked", len(tr.Anchors), len(tr.CRL.RevokedCertificateEntries))
	}
	core, err := parseLeaf(string(mustRead(t, filepath.Join(ncSign, "core.crt"))))
	if err != nil {
		t.Fatal(err)
	}
	if tr.revoked(core) {
		t.Error("the real core certificate is reported revoked")
	}
	fake := *core
	fake.SerialNumber = tr.CRL.RevokedCertificateEntries[0].SerialNumber
	if !tr.revoked(&fake) {
		t.Error("a revoked serial of the intermediate is not reported")
	}
}
