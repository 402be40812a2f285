package daemon

import (
	"crypto/sha256"

	"github.com/integrityd/integrityd/internal/fsutil"
	"github.com/integrityd/integrityd/internal/verify"
)

// maxTrustFile bounds a trust anchor or CRL file read to tell whether it
// changed (real ones are a few KiB).
const maxTrustFile = 16 << 20

// trustFiles is what the trust anchors and CRL files held when the trust
// in use was loaded: an event on them (tar over the tree rewrites the
// install's root.crt with the same bytes) starts a scan only when their
// content changed.
type trustFiles [sha256.Size]byte

// trustFilesOf hashes the configured trust files (their read errors
// included: a file gone is a change); false when one cannot be read, so
// that the caller keeps what it had (the trust in use stays as it was
// loaded, and a file back with the same content is no change).
func trustFilesOf(cfg Config) (trustFiles, bool) {
	h := sha256.New()
	for _, f := range []string{cfg.Trust, cfg.CRL} {
		if f == "" || verify.IsEmbedded(f) {
			h.Write([]byte{0})
			continue
		}
		data, err := fsutil.ReadLimited(f, maxTrustFile)
		if err != nil {
			return trustFiles{}, false
		}
		h.Write([]byte{1})
		h.Write(data)
	}
	var s trustFiles
	h.Sum(s[:0])
	return s, true
}

// trustChanged reports whether the trust files hold other content than
// when last looked at (and remembers it).
func (l *loop) trustChanged() bool {
	now, ok := trustFilesOf(l.cfg)
	if !ok {
		return true // gone or unreadable: the scan says why, and keeps the trust in use
	}
	if now == l.trustSeen {
		return false
	}
	l.trustSeen = now
	return true
}
