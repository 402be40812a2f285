package verify

import (
	_ "embed"
	"fmt"

	"github.com/integrityd/integrityd/internal/fsutil"
)

// Nextcloud's public code-signing trust anchors and CRL, built into the
// binary (copies of packaging/nextcloud/root.crt and root.crl; a test
// keeps them equal): with no --trust, integrityd trusts these, not the
// install's own resources/codesigning/root.crt, which whoever can write
// the install can replace. The install's copy is then only compared with
// them (Trust.DiffersFrom), as for pinned anchors.

//go:embed anchors/root.crt
var embeddedRootCRT string

//go:embed anchors/root.crl
var embeddedRootCRL string

// EmbeddedAnchorFile and EmbeddedCRLFile stand, in Trust.AnchorFile and
// Trust.CRLFile, in settings and in messages, for the built-in copies.
// They are not paths (not absolute): nothing is read, watched or reloaded
// for them.
const (
	EmbeddedAnchorFile = "(built-in Nextcloud root.crt)"
	EmbeddedCRLFile    = "(built-in Nextcloud root.crl)"
)

// EmbeddedTrust is Nextcloud's built-in trust anchors with its built-in
// CRL.
func EmbeddedTrust() (*Trust, error) { return embeddedTrust(EmbeddedCRLFile) }

// IsEmbedded reports whether name is EmbeddedAnchorFile or
// EmbeddedCRLFile.
func IsEmbedded(name string) bool { return name == EmbeddedAnchorFile || name == EmbeddedCRLFile }

// embeddedTrust is the built-in anchors with the CRL crlFile: the
// built-in one (EmbeddedCRLFile), none (""), or a file.
func embeddedTrust(crlFile string) (*Trust, error) {
	var crl []byte
	switch crlFile {
	case "":
	case EmbeddedCRLFile:
		crl = []byte(embeddedRootCRL)
	default:
		data, err := fsutil.ReadLimited(crlFile, maxTrustFile)
		if err != nil {
			return nil, fmt.Errorf("read CRL: %w", err)
		}
		crl = data
	}
	return parseTrust([]byte(embeddedRootCRT), crl, EmbeddedAnchorFile, crlFile)
}
