//go:build !linux

package fsutil

import "os"

// pseudoFSOf names the pseudo file system f is on: none is known outside
// Linux.
func pseudoFSOf(f *os.File) (string, error) { return "", nil }

// pseudoFSAt names the pseudo file system path is on: none is known
// outside Linux.
func pseudoFSAt(path string) (string, error) { return "", nil }
