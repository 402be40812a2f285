package verify

import (
	"testing"

	"github.com/integrityd/integrityd/internal/phpcompat"
)

// hashMap is m's files with their hashes as the manifest's text gave
// them (the lowercase hex, or the odd value as it was).
func (m *Manifest) hashMap() map[string]string {
	h := make(map[string]string, len(m.ents))
	for _, e := range m.ents {
		if e.odd != "" {
			h[e.key] = e.odd
		} else {
			h[e.key] = e.hash.String()
		}
	}
	return h
}

// canonicalOf is the message a signature.json's signature is over:
// json_encode of its ksorted hashes, as parseManifest hashes it.
func canonicalOf(t testing.TB, data []byte) []byte {
	t.Helper()
	_, entries, err := decodeManifest(data)
	if err != nil {
		t.Fatalf("decodeManifest: %v", err)
	}
	b, err := phpcompat.JSONEncode(entries, false, 0)
	if err != nil {
		t.Fatalf("JSONEncode: %v", err)
	}
	return b
}
