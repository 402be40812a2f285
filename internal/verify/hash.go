package verify

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"sync/atomic"
)

// Hash is a SHA-512 digest, kept as raw bytes (half the memory of its hex
// form). The zero Hash means none: a file that could not be read, or a
// finding without that side.
type Hash [sha512.Size]byte

// IsZero reports whether h is the zero Hash (encoding/json's omitzero).
func (h Hash) IsZero() bool { return h == Hash{} }

// String is the lowercase hex form Nextcloud prints, "" for the zero Hash.
func (h Hash) String() string {
	if h.IsZero() {
		return ""
	}
	return hex.EncodeToString(h[:])
}

// MarshalText writes the hex form.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads the hex form ("" is the zero Hash).
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*h = Hash{}
		return nil
	}
	v, ok := ParseHash(string(b))
	if !ok {
		return fmt.Errorf("not a lowercase hex SHA-512: %.140q", b)
	}
	*h = v
	return nil
}

// ParseHash decodes a lowercase hex SHA-512, the only form Nextcloud's
// hash('sha512', ...) produces; ok is false for anything else, which no
// file can match.
func ParseHash(s string) (h Hash, ok bool) {
	if len(s) != 2*len(h) {
		return h, false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return h, false
		}
	}
	hex.Decode(h[:], []byte(s))
	return h, true
}

// Checker says how files are hashed. The zero value is ready to use.
type Checker struct {
	// Workers is the number of files hashed at once; 0 means four per
	// CPU (at most 32): hashing is CPU-bound with a warm cache, but a
	// cold one needs reads in flight (measured on 2 CPUs: 8 workers are
	// 5% faster warm and 25% faster cold than 2).
	Workers int
	// Progress counts what this checker hashed (nil: not counted).
	Progress *Progress
	// Pace, when set, is called before each file (n = PaceFileCost) and
	// after each read (n = the bytes read): it may sleep to spread the
	// work over time (a background re-verification), and returns ctx's
	// error when ctx is done.
	Pace func(ctx context.Context, n int64) error

	deferOver int64 // set by RecheckDeferred only
}

// PaceFileCost is what a file costs a Pace budget besides its bytes (its
// open, stat and close): many small files pace like a few big ones.
const PaceFileCost = 16 << 10

// Progress counts files looked at and bytes hashed, for progress lines
// and watchdogs. It is safe for concurrent use; a nil *Progress counts
// nothing.
type Progress struct{ files, bytes atomic.Int64 }

// Files is how many files were looked at so far.
func (p *Progress) Files() int64 {
	if p == nil {
		return 0
	}
	return p.files.Load()
}

// Bytes is how many bytes were hashed so far.
func (p *Progress) Bytes() int64 {
	if p == nil {
		return 0
	}
	return p.bytes.Load()
}

func (p *Progress) addFile() {
	if p != nil {
		p.files.Add(1)
	}
}

func (p *Progress) addBytes(n int) {
	if p != nil {
		p.bytes.Add(int64(n))
	}
}
