//go:build !linux

package watch

import (
	"context"
	"errors"
)

// Writers is fanotify's writer attribution, which exists only on Linux.
type Writers struct{}

// DefaultWriters is how many recent changes a Writers remembers.
const DefaultWriters = 65536

// OpenWriters fails: fanotify is Linux's.
func OpenWriters(root string, capacity int) (*Writers, error) {
	return nil, errors.New("fanotify: not available on this system")
}

func (w *Writers) Mode() string                      { return "" }
func (w *Writers) Close() error                      { return nil }
func (w *Writers) Stats() WritersStats               { return WritersStats{} }
func (w *Writers) Run(ctx context.Context) error     { <-ctx.Done(); return nil }
func (w *Writers) Lookup(path string) (Writer, bool) { return Writer{}, false }
func (w *Writers) Track(paths []string)              {}
func (w *Writers) Kicks() <-chan struct{}            { return nil }
