package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDigestByVersion: a manifest signed with a SHA-256 PSS digest (what
// Nextcloud 34's phpseclib 3 defaults to) verifies where the install's
// Nextcloud verifies it (34 and later, or an unknown version) and is
// "Signature could not get verified." on earlier releases, as there; a
// SHA-1 signature verifies everywhere. The digest that verified is kept.
func TestDigestByVersion(t *testing.T) {
	p := newSignPKI(t)
	for _, d := range []Digest{DigestSHA1, DigestSHA256} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "appinfo", "info.xml"), []byte("<info/>"))
		writeFile(t, filepath.Join(dir, "lib.php"), []byte("<?php"))
		sc := NewInstall("", nil, "").App("notes", dir)
		_, certPEM := p.leaf(t, "notes")
		if err := sc.Sign(context.Background(), p.leafKey, certPEM, d); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(sc.ManifestPath())
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseManifest(f, sc.ManifestPath())
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, major := range []int{0, 25, 33, 34, 35} {
			ex := m.VerifyFor(p.trust, "notes", major)
			wantOK := d == DigestSHA1 || major == 0 || major >= 34
			switch {
			case wantOK && ex != nil:
				t.Errorf("%s on Nextcloud %d: %s (%s), want verified", d, major, ex.Message, ex.Detail)
			case wantOK && m.Digest != d:
				t.Errorf("%s on Nextcloud %d: Digest %q", d, major, m.Digest)
			case !wantOK && (ex == nil || ex.Message != MsgBadSignature || !strings.Contains(ex.Detail, "SHA-256")):
				t.Errorf("%s on Nextcloud %d: %+v, want %q naming SHA-256", d, major, ex, MsgBadSignature)
			}
		}
	}
}

// TestNotRSAMessage: a certificate with an EC key is "Certificate does not
// provide valid public RSA key." from Nextcloud 34 on (phpseclib 3), and
// "Signature could not get verified." before.
func TestNotRSAMessage(t *testing.T) {
	p := newSignPKI(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "notes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &ecKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), Signature: make([]byte, 256)}
	for major, want := range map[int]string{25: MsgBadSignature, 33: MsgBadSignature, 34: MsgNotRSA, 0: MsgNotRSA} {
		if ex := m.VerifyFor(p.trust, "notes", major); ex == nil || ex.Message != want {
			t.Errorf("Nextcloud %d: %+v, want %q", major, ex, want)
		}
	}
}
