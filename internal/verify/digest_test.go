package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/phpcompat"
)

// Every Nextcloud release up to 34.0.2 verifies a manifest with phpseclib 2
// (nextcloud/3rdparty composer.lock at each tag: 2.0.38 in 25.0.12, 2.0.47
// in 33.0.0, 2.0.54 in 34.0.1), whose RSA::verify hashes the message with
// SHA-1 unless setHash is called, and Checker::verify never calls it: a
// signature made with any other PSS message digest is "Signature could not
// get verified." whatever version.php says. The same library checks the
// certificate (RSA PKCS#1 v1.5 signatures only) and the key (RSA only).

// releaseTree is an install root holding the version.php of release (""
// for none) and an app notes, not yet signed.
func releaseTree(t *testing.T, release string) (*Install, string) {
	t.Helper()
	root := t.TempDir()
	if release != "" {
		data, err := os.ReadFile(filepath.Join("testdata", "releases", "version-"+release+".php"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "version.php"), data)
	}
	dir := filepath.Join(root, "apps", "notes")
	writeFile(t, filepath.Join(dir, "appinfo", "info.xml"), []byte("<info><id>notes</id><version>1.0.0</version></info>"))
	writeFile(t, filepath.Join(dir, "lib", "Note.php"), []byte("<?php\n"))
	in := NewInstall(root, nil, "")
	if release != "" && in.Version.String != release {
		t.Fatalf("version.php of %s read as %q", release, in.Version.String)
	}
	return in, dir
}

// resignPSS replaces the signature of the manifest at path with one over the
// same signed message made with the PSS message digest h (MGF1-SHA-512,
// empty salt, as Nextcloud's), encoded here from RFC 8017 on its own.
func resignPSS(t *testing.T, path string, key *rsa.PrivateKey, h crypto.Hash) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(f, path)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	emBits := key.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	mh := h.New()
	mh.Write(canonicalOf(t, data))
	hh := h.New()
	hh.Write(make([]byte, 8))
	hh.Write(mh.Sum(nil))
	hv := hh.Sum(nil)
	em := make([]byte, emLen)
	db := em[:emLen-len(hv)-1]
	db[len(db)-1] = 1
	for i, c := 0, uint32(0); i < len(db); c++ {
		g := sha512.New()
		g.Write(hv)
		g.Write([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
		for _, b := range g.Sum(nil) {
			if i < len(db) {
				db[i] ^= b
				i++
			}
		}
	}
	db[0] &= 0xFF >> (8*emLen - emBits)
	copy(em[len(db):], hv)
	em[emLen-1] = 0xBC
	s := new(big.Int).Exp(new(big.Int).SetBytes(em), key.D, key.N)
	sig := s.FillBytes(make([]byte, (key.N.BitLen()+7)/8))
	old, _ := phpcompat.AppendString(nil, base64.StdEncoding.EncodeToString(m.Signature))
	repl, _ := phpcompat.AppendString(nil, base64.StdEncoding.EncodeToString(sig))
	if !strings.Contains(string(data), string(old)) {
		t.Fatalf("%s: signature not found in the file", path)
	}
	writeFile(t, path, []byte(strings.Replace(string(data), string(old), string(repl), 1)))
}

// TestPSSDigestByRelease: a SHA-1 signature verifies on every release; a
// SHA-256 one (phpseclib 3's default, which no release uses) verifies on
// none, 34.0.1 included, nor on an install whose version is unknown.
func TestPSSDigestByRelease(t *testing.T) {
	p := newSignPKI(t)
	for _, release := range []string{"25.0.12", "33.0.0", "34.0.1", ""} {
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
			t.Run(release+"/"+h.String(), func(t *testing.T) {
				in, dir := releaseTree(t, release)
				sc := in.App("notes", dir)
				p.sign(t, sc)
				if h != crypto.SHA1 {
					resignPSS(t, sc.ManifestPath(), p.leafKey, h)
				}
				res, err := sc.Check(context.Background(), p.trust)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case h == crypto.SHA1 && (res.Exception != nil || len(res.Findings) > 0):
					t.Errorf("got %+v %v, want clean", res.Exception, res.Findings)
				case h == crypto.SHA1 && res.Digest != DigestSHA1:
					t.Errorf("digest %q, want %q", res.Digest, DigestSHA1)
				case h != crypto.SHA1 && (res.Exception == nil || res.Exception.Message != MsgBadSignature):
					t.Errorf("got %+v, want EXCEPTION %q as Nextcloud %s says", res.Exception, MsgBadSignature, release)
				}
			})
		}
	}
}

// TestResignPSSMatchesSigner: the test's own encoder gives SignPSS's bytes
// for SHA-1, so that a SHA-256 signature of TestPSSDigestByRelease is a
// well-formed one, not noise.
func TestResignPSSMatchesSigner(t *testing.T) {
	p := newSignPKI(t)
	in, dir := releaseTree(t, "")
	sc := in.App("notes", dir)
	p.sign(t, sc)
	before, err := os.ReadFile(sc.ManifestPath())
	if err != nil {
		t.Fatal(err)
	}
	resignPSS(t, sc.ManifestPath(), p.leafKey, crypto.SHA1)
	after, err := os.ReadFile(sc.ManifestPath())
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("resignPSS with SHA-1 changed the signature SignPSS made")
	}
}

// TestParseDigest: only SHA-1 can be asked for; sha256 is refused, saying
// that no release verifies it.
func TestParseDigest(t *testing.T) {
	for _, tc := range []struct {
		in, errPart string
	}{
		{"sha1", ""},
		{"sha256", "no released Nextcloud"},
		{"md5", "unknown digest"},
	} {
		d, err := ParseDigest(tc.in)
		switch {
		case tc.errPart == "" && (err != nil || d != DigestSHA1):
			t.Errorf("ParseDigest(%q) = %q, %v, want sha1", tc.in, d, err)
		case tc.errPart != "" && (err == nil || !strings.Contains(err.Error(), tc.errPart)):
			t.Errorf("ParseDigest(%q) = %q, %v, want an error saying %q", tc.in, d, err, tc.errPart)
		}
	}
}

// TestPhpseclib2Certificates: on every release, 34.0.1 included, a
// certificate with an EC key is "Signature could not get verified."
// (phpseclib 2's RSA::loadKey fails, verify returns false), and one the
// root signed with RSA-PSS is "Certificate is not valid." (phpseclib 2's
// X509::validateSignature knows PKCS#1 v1.5 only).
func TestPhpseclib2Certificates(t *testing.T) {
	p := newSignPKI(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "notes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}, p.ca, &ecKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	pssDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(8), Subject: pkix.Name{CommonName: "notes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), SignatureAlgorithm: x509.SHA256WithRSAPSS},
		p.ca, &p.leafKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, release := range []string{"25.0.12", "33.0.0", "34.0.1", ""} {
		for _, tc := range []struct {
			name string
			der  []byte
			want string
		}{
			{"ec-key", ecDER, MsgBadSignature},
			{"pss-signed", pssDER, MsgBadCert},
		} {
			t.Run(release+"/"+tc.name, func(t *testing.T) {
				in, dir := releaseTree(t, release)
				sc := in.App("notes", dir)
				certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.der})
				if tc.name == "ec-key" {
					p.sign(t, sc)
					data, err := os.ReadFile(sc.ManifestPath())
					if err != nil {
						t.Fatal(err)
					}
					i := strings.Index(string(data), `"certificate": `)
					b, _ := phpcompat.AppendString(nil, string(certPEM))
					writeFile(t, sc.ManifestPath(), []byte(string(data[:i])+`"certificate": `+string(b)+"\n}"))
				} else if err := sc.Sign(context.Background(), p.leafKey, certPEM, DigestSHA1); err != nil {
					t.Fatal(err)
				}
				res, err := sc.Check(context.Background(), p.trust)
				if err != nil {
					t.Fatal(err)
				}
				if res.Exception == nil || res.Exception.Message != tc.want {
					t.Errorf("got %+v, want EXCEPTION %q", res.Exception, tc.want)
				}
			})
		}
	}
}
