package verify

import (
	"context"

	"github.com/integrityd/integrityd/internal/finding"
)

// Hasher hashes files as the walk does: SHA-512 through a reusable
// buffer; a FIFO, socket or device is never opened, nor a file on a
// pseudo file system, and the read stops once ctx is done. One per
// goroutine.
type Hasher hasher

// NewHasher returns a Hasher with c's progress, pace and deferral of big
// files (c may be nil).
func (c *Checker) NewHasher() *Hasher { return (*Hasher)(newHasher(c)) }

// File hashes the file at path; statFirst says path may be a symlink (it
// is followed, and what it points to looked at before it is opened). why
// says why the file could not be hashed (nil when it was); err is ctx's
// error once it is done. A file too big to hash now (a Checker that
// defers them) has a zero sum and size.
func (h *Hasher) File(ctx context.Context, path string, statFirst bool) (sum finding.Hash, size int64, why, err error) {
	st, err := (*hasher)(h).hash(ctx, path, special{}, statFirst)
	if err != nil {
		return finding.Hash{}, 0, nil, err
	}
	return st.hash, st.size, st.err, nil
}

// HashEach runs hash on each job walk sends, in c's pool of workers, each
// worker with its own Hasher. It returns walk's error, else ctx's.
func HashEach[J any](ctx context.Context, c *Checker, walk func(send func(J) error) error, hash func(h *Hasher, j J)) error {
	return hashPool(ctx, c, walk, func(h *hasher, j J) { hash((*Hasher)(h), j) })
}
