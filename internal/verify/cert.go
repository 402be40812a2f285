package verify

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"

	"github.com/integrityd/integrityd/internal/fsutil"
)

// Nextcloud checks a manifest's certificate with phpseclib's
// X509::validateSignature: the leaf must be issued (same encoded issuer
// name, matching key identifiers when the leaf names one) and signed by one
// of the certificates in root.crt. No dates, key usages or basic
// constraints are checked, and Nextcloud's test root is a SHA-1-signed v3
// certificate without basicConstraints, which crypto/x509 would refuse; so
// the signature is checked here directly.

// maxTrustFile bounds the trust anchor and CRL files.
const maxTrustFile = 4 << 20

// Trust holds the trust anchors and, optionally, a CRL.
type Trust struct {
	Anchors []*x509.Certificate
	CRL     *x509.RevocationList
	// AnchorFile and CRLFile name where they came from, for messages.
	AnchorFile, CRLFile string
}

// LoadTrust reads the PEM trust anchors in anchorFile and, if crlFile is
// not empty, the CRL in crlFile, which must be signed by one of the anchors.
func LoadTrust(anchorFile, crlFile string) (*Trust, error) {
	if anchorFile == EmbeddedAnchorFile {
		return embeddedTrust(crlFile)
	}
	data, err := fsutil.ReadLimited(anchorFile, maxTrustFile)
	if err != nil {
		return nil, fmt.Errorf("read trust anchors: %w", err)
	}
	var crl []byte
	if crlFile != "" {
		if crl, err = fsutil.ReadLimited(crlFile, maxTrustFile); err != nil {
			return nil, fmt.Errorf("read CRL: %w", err)
		}
	}
	return parseTrust(data, crl, anchorFile, crlFile)
}

// parseTrust is LoadTrust on the files' contents (crlFile "" for none).
func parseTrust(data, crlData []byte, anchorFile, crlFile string) (*Trust, error) {
	anchors, err := parseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("trust anchors %s: %v", anchorFile, err)
	}
	if len(anchors) == 0 {
		return nil, fmt.Errorf("trust anchors %s: no PEM certificate found", anchorFile)
	}
	t := &Trust{Anchors: anchors, AnchorFile: anchorFile}
	if crlFile == "" {
		return t, nil
	}
	data = crlData
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "X509 CRL" {
			return nil, fmt.Errorf("CRL %s: PEM block is %q, want \"X509 CRL\"", crlFile, b.Type)
		}
		data = b.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %v", crlFile, err)
	}
	if issuer := t.issuerOf(crl.RawIssuer, crl.AuthorityKeyId, crl.SignatureAlgorithm, crl.RawTBSRevocationList, crl.Signature); issuer == nil {
		return nil, fmt.Errorf("CRL %s: not signed by any certificate in %s", crlFile, anchorFile)
	}
	t.CRL = crl
	t.CRLFile = crlFile
	return t, nil
}

// parseCertificates reads every CERTIFICATE block of a PEM bundle.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for i := 1; ; i++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return certs, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate #%d: %v", i, err)
		}
		certs = append(certs, c)
	}
}

// parseLeaf reads a certificate the way phpseclib's loadX509 does: PEM,
// or base64 or raw DER.
func parseLeaf(s string) (*x509.Certificate, error) {
	data := []byte(s)
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	return x509.ParseCertificate(data)
}

// issuerOf returns the anchor that issued and signed the object described
// by rawIssuer, akid and the signature over tbs, or nil.
func (t *Trust) issuerOf(rawIssuer, akid []byte, alg x509.SignatureAlgorithm, tbs, sig []byte) *x509.Certificate {
	for _, a := range t.Anchors {
		if !bytes.Equal(rawIssuer, a.RawSubject) {
			continue
		}
		if len(akid) > 0 && !bytes.Equal(akid, a.SubjectKeyId) {
			continue
		}
		if checkSignature(a, alg, tbs, sig) == nil {
			return a
		}
	}
	return nil
}

// checkSignature verifies an RSA PKCS#1 v1.5 signature made by the key of
// issuer, including SHA-1, which crypto/x509 refuses.
func checkSignature(issuer *x509.Certificate, alg x509.SignatureAlgorithm, tbs, sig []byte) error {
	pub, ok := issuer.PublicKey.(*rsa.PublicKey)
	if !ok {
		// Not RSA: crypto/x509 handles everything else correctly.
		return issuer.CheckSignature(alg, tbs, sig)
	}
	var h crypto.Hash
	switch alg {
	case x509.SHA1WithRSA:
		h = crypto.SHA1
	case x509.SHA256WithRSA:
		h = crypto.SHA256
	case x509.SHA384WithRSA:
		h = crypto.SHA384
	case x509.SHA512WithRSA:
		h = crypto.SHA512
	case x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
		return issuer.CheckSignature(alg, tbs, sig)
	default:
		return fmt.Errorf("unsupported signature algorithm %v", alg)
	}
	d := h.New()
	d.Write(tbs)
	return rsa.VerifyPKCS1v15(pub, h, d.Sum(nil), sig)
}

// revoked reports whether the CRL lists c's serial number (for a CRL of
// the same issuer).
func (t *Trust) revoked(c *x509.Certificate) bool {
	if t.CRL == nil || !bytes.Equal(t.CRL.RawIssuer, c.RawIssuer) {
		return false
	}
	for _, r := range t.CRL.RevokedCertificateEntries {
		if r.SerialNumber != nil && r.SerialNumber.Cmp(c.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

// commonName returns the subject's CN as phpseclib's getDN reports it (the
// first one when there are several), and whether there is one.
func commonName(c *x509.Certificate) (string, bool) {
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(c.RawSubject, &rdns); err != nil {
		return c.Subject.CommonName, c.Subject.CommonName != ""
	}
	for _, rdn := range rdns {
		for _, atv := range rdn {
			if atv.Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 3}) {
				if s, ok := atv.Value.(string); ok {
					return s, true
				}
			}
		}
	}
	return "", false
}

// InTreeAnchors is where Nextcloud keeps its trust anchors, relative to
// the server root.
const InTreeAnchors = "resources/codesigning/root.crt"

// DiffersFrom reports whether the certificates in the PEM file at path are
// not exactly the trust anchors t holds, and why. When the anchors are
// pinned outside the install, a difference means someone changed the
// install's own copy.
func (t *Trust) DiffersFrom(path string) (bool, string) {
	data, err := fsutil.ReadLimited(path, maxTrustFile)
	if err != nil {
		return true, err.Error()
	}
	certs, err := parseCertificates(data)
	if err != nil {
		return true, fmt.Sprintf("%s: %v", path, err)
	}
	have := map[string]bool{}
	for _, c := range certs {
		have[string(c.Raw)] = true
	}
	want := map[string]bool{}
	for _, c := range t.Anchors {
		want[string(c.Raw)] = true
	}
	if len(have) != len(want) {
		return true, fmt.Sprintf("%s holds %d certificates, %s holds %d", path, len(have), t.AnchorFile, len(want))
	}
	for c := range want {
		if !have[c] {
			return true, fmt.Sprintf("%s holds other certificates than %s", path, t.AnchorFile)
		}
	}
	return false, ""
}
