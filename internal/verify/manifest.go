package verify

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/phpcompat"
)

// maxManifestSize bounds a signature.json. Nextcloud's own core manifest is
// a few MB (about 170 bytes a file); 1,000,000 files make about 170 MB, so
// 256 MiB leaves room for trees that large with keys up to about 250
// bytes. A one-shot check streams the file (Scope.Check: its memory does
// not grow with it); what holds the entries (the daemon, a manifest not
// in key order) takes about 96 bytes and the key per entry.
const maxManifestSize = 256 << 20

// Manifest is a parsed signature.json.
type Manifest struct {
	// Signature is the decoded signature; Certificate the PEM text.
	Signature   []byte
	Certificate string
	// sigNote says why the signature field is suspicious (PHP ignores
	// characters outside the base64 alphabet, and so do we).
	sigNote string
	// Digest is the PSS message digest the signature verified with (set
	// by Verify).
	Digest Digest

	// ents are the files, relative to the scope's root with "/"
	// separators, and their expected SHA-512, sorted by key: 96 bytes and
	// the key a file, not the hex text, the PHP array and the signed
	// message, which are dropped once parsed.
	ents []expEntry
	// signed is the SHA-1 of the signed message (json_encode of the
	// ksorted hashes), all that the signature check needs of it.
	signed [sha1.Size]byte
	sum    [sha256.Size]byte
}

// ManifestError says why a signature.json could not be read. Nextcloud
// reports all of these as "Signature data not found.".
type ManifestError struct {
	Path   string
	Reason string
}

func (e *ManifestError) Error() string {
	return fmt.Sprintf("signature data %s: %s", e.Path, e.Reason)
}

// ParseManifest reads a signature.json from r; name is used in errors.
func ParseManifest(r io.Reader, name string) (*Manifest, error) {
	return parseManifestLimit(r, name, maxManifestSize)
}

// parseManifestLimit is ParseManifest with a size limit of limit bytes.
// It reads r as a stream (manifest_stream.go); a size r tells (an
// *os.File's, a *bytes.Reader's) is a hint for the room the entries need.
func parseManifestLimit(r io.Reader, name string, limit int64) (*Manifest, error) {
	var size int64
	switch f := r.(type) {
	case interface{ Stat() (fs.FileInfo, error) }:
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
	case interface{ Size() int64 }:
		size = f.Size()
	}
	return parseManifestStream(r, name, limit, streamBufSize, size)
}

// parseManifestWhole is what ParseManifest did before it streamed: the
// whole text read, then parsed (parseManifest). It is the reference the
// streaming parser is tested against.
func parseManifestWhole(r io.Reader, name string, limit int64) (*Manifest, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, &ManifestError{name, "read: " + err.Error()}
	}
	if int64(len(data)) > limit {
		return nil, &ManifestError{name, fmt.Sprintf("larger than %d bytes", limit)}
	}
	m, err := parseManifest(data)
	if err != nil {
		return nil, &ManifestError{name, err.Error()}
	}
	m.sum = sha256.Sum256(data)
	return m, nil
}

// Sum is the SHA-256 of the manifest's bytes as read: two manifests with
// the same Sum are the same file.
func (m *Manifest) Sum() [sha256.Size]byte { return m.sum }

func parseManifest(data []byte) (*Manifest, error) {
	m, entries, err := decodeManifest(data)
	if err != nil {
		return nil, err
	}
	h := sha1.New()
	if err := phpcompat.WriteJSON(h, entries, false, 0); err != nil {
		return nil, err
	}
	h.Sum(m.signed[:0])
	m.ents = expectedEntries(entries)
	return m, nil
}

// decodeManifest reads signature.json's fields: the hashes as the PHP
// array json_decode makes of them, in ksort order.
func decodeManifest(data []byte) (*Manifest, []phpcompat.Entry, error) {
	if err := phpcompat.CheckJSON(data); err != nil {
		return nil, nil, err
	}
	// json.Valid accepted data; a small parser reads it, several times
	// faster than json.Decoder on a core manifest's 30,000 entries, and
	// exact about what PHP does: keys are case-sensitive, the last of
	// duplicate keys wins.
	p := phpcompat.NewJSONReader(data)
	if p.Peek() != '{' {
		return nil, nil, errors.New("not a JSON object")
	}
	p.Next()
	m := &Manifest{}
	var entries []phpcompat.Entry
	var haveHashes, haveSig, haveCert bool
	var sig string
	for n := 0; ; n++ {
		c := p.Peek()
		if c == '}' {
			break
		}
		if n > 0 {
			p.Next() // ','
		}
		key, _, err := p.Str()
		if err != nil {
			return nil, nil, fmt.Errorf("invalid JSON: %v", err)
		}
		p.Peek()
		p.Next() // ':'
		switch key {
		case "hashes":
			if entries, err = p.Entries(); err != nil {
				return nil, nil, fmt.Errorf("hashes: %v", err)
			}
			haveHashes = true
		case "signature", "certificate":
			v, ok, err := p.Str()
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %v", key, err)
			}
			if !ok {
				return nil, nil, fmt.Errorf("%s: not a string", key)
			}
			if key == "signature" {
				sig, haveSig = v, true
			} else {
				m.Certificate, haveCert = v, true
			}
		default:
			p.SkipValue()
		}
	}
	switch {
	case !haveHashes:
		return nil, nil, errors.New(`missing "hashes"`)
	case !haveSig:
		return nil, nil, errors.New(`missing "signature"`)
	case !haveCert:
		return nil, nil, errors.New(`missing "certificate"`)
	}
	m.Signature, m.sigNote = phpBase64Decode(sig)
	phpcompat.Ksort(entries)
	return m, entries, nil
}

// expectedEntries converts the PHP array of hashes (unique keys) into the
// manifest's files, sorted by key.
func expectedEntries(entries []phpcompat.Entry) []expEntry {
	ents := make([]expEntry, len(entries))
	for i, e := range entries {
		ents[i].key = e.Key.Str
		var ok bool
		if ents[i].hash, ok = finding.ParseHash(e.Value); !ok {
			ents[i].odd = strings.Clone(e.Value) // not a view of the manifest's text
		}
	}
	slices.SortFunc(ents, func(a, b expEntry) int { return strings.Compare(a.key, b.key) })
	return ents
}

// phpBase64Decode decodes like PHP's base64_decode($s) (not strict,
// phpcompat.Base64Decode). The note says what was odd about the input, for
// error details.
func phpBase64Decode(s string) ([]byte, string) {
	out, skipped, ok := phpcompat.Base64Decode(s)
	if !ok {
		return nil, "signature is not valid base64"
	}
	if skipped > 0 {
		return out, fmt.Sprintf("signature has %d characters outside base64", skipped)
	}
	return out, ""
}

const invalidSignatureClass = `OC\IntegrityCheck\Exceptions\InvalidSignatureException`

// Nextcloud's messages.
const (
	MsgNoSignature  = "Signature data not found."
	MsgBadCert      = "Certificate is not valid."
	MsgScope        = "Certificate is not valid for required scope. (Requested: %s, current: CN=%s)"
	MsgBadSignature = "Signature could not get verified."
	MsgRevoked      = "Certificate has been revoked."
)

// invalidSignature is a scope's EXCEPTION finding, reported like
// Nextcloud's InvalidSignatureException: msg is one of Nextcloud's exact
// texts (or our own for revocation); detail says more for the admin.
func invalidSignature(scope, msg, detail string) *finding.Finding {
	return &finding.Finding{Scope: scope, Kind: kind.Exception, Class: invalidSignatureClass, Message: msg, Detail: detail}
}

// Verify checks the certificate and the signature of m for scope (an app
// id, or "core") against t, in Nextcloud's order, with phpseclib 2's rules,
// which every release up to 34 verifies with (see pss.go): a certificate
// the root signed with anything but RSA PKCS#1 v1.5 is "Certificate is not
// valid.", a key that is not RSA and a PSS digest other than SHA-1 are
// "Signature could not get verified.". It returns nil when the manifest
// can be trusted, else the scope's EXCEPTION finding.
func (m *Manifest) Verify(t *Trust, scope string) *finding.Finding {
	leaf, err := parseLeaf(m.Certificate)
	if err != nil {
		return invalidSignature(scope, MsgBadCert, "cannot parse certificate: "+err.Error())
	}
	if !pkcs1Signed(leaf.SignatureAlgorithm) {
		return invalidSignature(scope, MsgBadCert, fmt.Sprintf("certificate %q is signed with %v, which Nextcloud (phpseclib 2) cannot verify",
			leaf.Subject.String(), leaf.SignatureAlgorithm))
	}
	if t.issuerOf(leaf.RawIssuer, leaf.AuthorityKeyId, leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil {
		return invalidSignature(scope, MsgBadCert, fmt.Sprintf("certificate %q (issuer %q) is not signed by a certificate in %s",
			leaf.Subject.String(), leaf.Issuer.String(), t.AnchorFile))
	}
	if t.revoked(leaf) {
		return invalidSignature(scope, MsgRevoked, fmt.Sprintf("certificate %q serial %s is revoked by %s",
			leaf.Subject.String(), leaf.SerialNumber, t.CRLFile))
	}
	cn, _ := commonName(leaf)
	if cn != scope && cn != "core" {
		return invalidSignature(scope, fmt.Sprintf(MsgScope, scope, cn), "")
	}
	pub, ok := leaf.PublicKey.(*rsa.PublicKey)
	if !ok {
		return invalidSignature(scope, MsgBadSignature, fmt.Sprintf("certificate key is %T, not RSA", leaf.PublicKey))
	}
	d, err := verifyPSSSum(pub, m.signed, m.Signature)
	if err != nil {
		detail := err.Error()
		if m.sigNote != "" {
			detail = m.sigNote + "; " + detail
		}
		return invalidSignature(scope, MsgBadSignature, detail)
	}
	m.Digest = d
	return nil
}

// pkcs1Signed reports whether a certificate signature algorithm is one
// phpseclib 2's X509::validateSignature verifies (RSA PKCS#1 v1.5; not
// RSA-PSS, not ECDSA or Ed25519).
func pkcs1Signed(alg x509.SignatureAlgorithm) bool {
	switch alg {
	case x509.SHA1WithRSA, x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA:
		return true
	}
	return false
}
