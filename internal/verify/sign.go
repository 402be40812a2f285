package verify

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/integrityd/integrityd/internal/fsutil"
	"github.com/integrityd/integrityd/internal/phpcompat"
)

// ParsePrivateKey reads an RSA private key in PEM (PKCS#1 or PKCS#8).
func ParsePrivateKey(data []byte, name string) (*rsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("private key %s: no PEM block", name)
	}
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %v", name, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key %s: %T is not an RSA key", name, k)
	}
	return rk, nil
}

// phpseclibPEM writes a certificate the way phpseclib 2's saveX509 does:
// 64-character base64 lines ended by CRLF, no newline after the footer.
func phpseclibPEM(der []byte) string {
	enc := base64.StdEncoding.EncodeToString(der)
	var b bytes.Buffer
	b.WriteString("-----BEGIN CERTIFICATE-----\r\n")
	for len(enc) > 64 {
		b.WriteString(enc[:64] + "\r\n")
		enc = enc[64:]
	}
	b.WriteString(enc + "\r\n")
	b.WriteString("-----END CERTIFICATE-----")
	return b.String()
}

// Sign hashes the scope's files and writes its signature.json exactly as
// Nextcloud's integrity:sign-app and integrity:sign-core do (pretty JSON
// with 4-space indent, "\/" escapes, the certificate re-encoded with CRLF
// lines). d is the PSS message digest, DigestSHA1, the only one any
// released Nextcloud verifies. The file is replaced atomically.
func (s *Scope) Sign(ctx context.Context, key *rsa.PrivateKey, certPEM []byte, d Digest) error {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return errors.New("certificate: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return fmt.Errorf("certificate: %v", err)
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return errors.New("the private key does not belong to the certificate")
	}
	dir := filepath.Dir(s.ManifestPath())
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("sign %s: %s is not a directory", s.Name, dir)
	}
	current, err := s.hashTree(ctx, s.Dir, "")
	if err != nil {
		return fmt.Errorf("sign %s: %w", s.Name, err)
	}
	var entries []phpcompat.Entry
	for _, k := range sortedKeys(current) {
		st := current[k]
		if st.skip {
			continue
		}
		if st.err != nil {
			return fmt.Errorf("sign %s: %s: %v", s.Name, filepath.Join(s.Dir, k), st.err)
		}
		pk := phpcompat.NewKey(k)
		pk.Pos = len(entries)
		entries = append(entries, phpcompat.Entry{Key: pk, Value: st.hash.String()})
	}
	data, err := signatureJSON(entries, key, cert.Raw, d)
	if err != nil {
		return fmt.Errorf("sign %s: %w", s.Name, err)
	}
	return fsutil.WriteFileAtomic(s.ManifestPath(), data, 0o644)
}

// signatureJSON builds the signature.json document for entries.
func signatureJSON(entries []phpcompat.Entry, key *rsa.PrivateKey, certDER []byte, d Digest) ([]byte, error) {
	phpcompat.Ksort(entries)
	// A verifier decodes the hashes in the order of the file and sorts
	// them again; PHP's ksort is not always stable under a second run
	// (its comparison is not transitive for some numeric names), so the
	// signed message is the sort of the order written, not the first sort.
	// (Nextcloud signs the first sort, and its own check then fails.)
	again := make([]phpcompat.Entry, len(entries))
	copy(again, entries)
	for i := range again {
		again[i].Key.Pos = i
	}
	phpcompat.Ksort(again)
	msg, err := phpcompat.JSONEncode(again, false, 0)
	if err != nil {
		return nil, fmt.Errorf("file name cannot be signed: %w", err)
	}
	sig, err := SignPSS(key, d, msg)
	if err != nil {
		return nil, err
	}
	pretty, err := phpcompat.JSONEncode(entries, true, 1)
	if err != nil {
		return nil, err
	}
	var b []byte
	b = append(b, "{\n    \"hashes\": "...)
	b = append(b, pretty...)
	b = append(b, ",\n    \"signature\": "...)
	b, _ = phpcompat.AppendString(b, base64.StdEncoding.EncodeToString(sig))
	b = append(b, ",\n    \"certificate\": "...)
	b, _ = phpcompat.AppendString(b, phpseclibPEM(certDER))
	b = append(b, "\n}"...)
	return b, nil
}
