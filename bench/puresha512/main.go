// Command puresha512 hashes every regular file below a directory with Go's
// crypto/sha512, in one process, with as many workers as integrityd's
// check (four per CPU): the pure cost of hashing the same bytes, for the
// issue-21 comparison of check-core with it (bench/growth.sh, bench/hash.sh).
// It does nothing else (no fstatfs, no manifest, no comparison) and prints
// the number of files and bytes hashed.
//
// Usage: go run ./bench/puresha512 DIR
package main

import (
	"crypto/sha512"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: puresha512 DIR")
		os.Exit(2)
	}
	paths := make(chan string, 1024)
	var files, bytes atomic.Int64
	var wg sync.WaitGroup
	for range min(4*runtime.NumCPU(), 32) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			d := sha512.New()
			var sum [sha512.Size]byte
			for p := range paths {
				f, err := os.Open(p)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					continue
				}
				d.Reset()
				n, err := io.CopyBuffer(struct{ io.Writer }{d}, struct{ io.Reader }{f}, buf)
				f.Close()
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					continue
				}
				d.Sum(sum[:0])
				files.Add(1)
				bytes.Add(n)
			}
		}()
	}
	err := filepath.WalkDir(os.Args[1], func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			paths <- p
		}
		return err
	})
	close(paths)
	wg.Wait()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%d files, %d bytes\n", files.Load(), bytes.Load())
}
