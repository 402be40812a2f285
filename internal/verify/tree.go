package verify

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// excludedNames are file names Nextcloud never hashes
// (ExcludeFileByNameFilterIterator). They apply to files, not directories.
var excludedNames = map[string]bool{
	".DS_Store":                true,
	"Thumbs.db":                true,
	".directory":               true,
	".webapp":                  true,
	".rnd":                     true,
	"nextcloud-init-sync.lock": true,
}

// webappPattern is Nextcloud's /^\.webapp-nextcloud-(\d+\.){2}(\d+)(-r\d+)?$/;
// PCRE's $ also matches before a final newline.
var webappPattern = regexp.MustCompile(`^\.webapp-nextcloud-(\d+\.){2}(\d+)(-r\d+)?\n?$`)

// htaccessMarker splits the root .htaccess: only what is above it is signed.
const htaccessMarker = "#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####"

// maxHtaccess bounds how much of the root .htaccess is read into memory to
// apply the marker rule; a larger file is hashed whole.
const maxHtaccess = 16 << 20

// skipName reports whether a file is excluded by its name alone.
func skipName(name string) bool {
	return excludedNames[name] || webappPattern.MatchString(name)
}

// skipKey reports whether a file, by its key in the scope, is never
// hashed: the manifests themselves.
func skipKey(key string) bool {
	return key == "appinfo/signature.json" || key == "core/signature.json"
}

// fileState is what the walk found for one key.
type fileState struct {
	hash string // lowercase hex SHA-512; "" when it could not be read
	size int64
	err  error // why it could not be hashed
	link bool  // a symlink: its target can change without an event on it
	skip bool  // not a file of the scope (a symlink to a directory)
}

// walkTree lists the files of a scope: dir is walked, excluded holds the
// absolute paths Nextcloud skips wherever they appear (ExcludeFolders-
// ByPathFilterIterator compares whole paths). Symlinked directories are not
// entered. It returns, for each key, the absolute path and the lstat mode.
type walkedFile struct {
	key  string
	path string
	mode fs.FileMode
	err  error // for a directory that could not be read
	// dirLink marks a symlink to a directory.
	dirLink bool
}

func walkTree(ctx context.Context, dir, prefix string, excluded map[string]bool, out chan<- walkedFile) error {
	var walk func(abs, rel string) error
	walk = func(abs, rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(abs)
		if err != nil {
			if abs == dir {
				return fmt.Errorf("read directory %s: %w", abs, cleanErr(err))
			}
			// An unreadable directory is one entry, key ending in "/",
			// so the comparison can flag it and what it hides.
			select {
			case out <- walkedFile{key: rel + "/", path: abs, mode: fs.ModeDir, err: cleanErr(err)}:
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		}
		for _, e := range ents {
			name := e.Name()
			p := abs + "/" + name
			key := name
			if rel != "" {
				key = rel + "/" + name
			}
			if excluded[p] {
				continue
			}
			mode := e.Type()
			if mode&fs.ModeSymlink != 0 {
				// Follow for the type only, like PHP's isDir(): a
				// symlinked directory is not entered, only noted.
				if fi, err := os.Stat(p); err == nil && fi.IsDir() {
					select {
					case out <- walkedFile{key: key, path: p, mode: mode, dirLink: true}:
					case <-ctx.Done():
						return ctx.Err()
					}
					continue
				}
			}
			if mode.IsDir() {
				if err := walk(p, key); err != nil {
					return err
				}
				continue
			}
			if skipName(name) || skipKey(key) {
				continue
			}
			select {
			case out <- walkedFile{key: key, path: p, mode: mode}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	return walk(dir, prefix)
}

// errNotRegular marks files that are never opened for reading.
var errNotRegular = errors.New("not a regular file")

// hasher computes SHA-512 of files with a reusable buffer.
type hasher struct {
	buf []byte
}

func newHasher() *hasher { return &hasher{buf: make([]byte, 256<<10)} }

// hash hashes the file at path. FIFOs, sockets and devices are never
// opened; the file is opened non-blocking and checked again after open, so
// one swapped in meanwhile cannot hang the scan. htaccess applies the
// root .htaccess rule. statFirst can be false when the caller already
// knows (from lstat or the directory entry) that path is a regular file.
func (h *hasher) hash(path string, htaccess, statFirst bool) fileState {
	if statFirst {
		fi, err := os.Stat(path) // follows a symlink to a file, as PHP does
		if err != nil {
			return fileState{err: cleanErr(err)}
		}
		if !fi.Mode().IsRegular() {
			return fileState{err: fmt.Errorf("%w (%s)", errNotRegular, modeName(fi.Mode()))}
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return fileState{err: cleanErr(err)}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileState{err: cleanErr(err)}
	}
	if !fi.Mode().IsRegular() {
		return fileState{err: fmt.Errorf("%w (%s)", errNotRegular, modeName(fi.Mode()))}
	}
	d := sha512.New()
	if htaccess && fi.Size() <= maxHtaccess {
		data, err := io.ReadAll(io.LimitReader(f, maxHtaccess+1))
		if err != nil {
			return fileState{err: cleanErr(err)}
		}
		if len(data) <= maxHtaccess {
			if parts := bytes.Split(data, []byte(htaccessMarker)); len(parts) == 2 {
				data = parts[0]
			}
			d.Write(data)
			return fileState{hash: hex.EncodeToString(d.Sum(nil)), size: int64(len(data))}
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fileState{err: cleanErr(err)}
		}
	}
	// A plain read loop: io.CopyBuffer would ignore h.buf, because
	// *os.File has a WriteTo that allocates a buffer per call.
	var n int64
	for {
		k, err := f.Read(h.buf)
		d.Write(h.buf[:k])
		n += int64(k)
		hashedBytes.Add(int64(k))
		if err == io.EOF {
			break
		}
		if err != nil {
			return fileState{err: cleanErr(err)}
		}
	}
	return fileState{hash: hex.EncodeToString(d.Sum(nil)), size: n}
}

// cleanErr drops the path from an *fs.PathError: findings carry the path.
func cleanErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

func modeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "irregular file"
}

// Workers is the number of files hashed at once; 0 means four per CPU
// (at most 32): hashing is CPU-bound with a warm cache, but a cold one needs
// reads in flight (measured on 2 CPUs: 8 workers are 5% faster warm and
// 25% faster cold than 2).
var Workers = 0

func workers() int {
	if Workers > 0 {
		return Workers
	}
	return min(4*runtime.NumCPU(), 32)
}

// hashTree walks dir and hashes every file with a pool of workers; keys
// are relative to dir, below prefix (the key of dir in its scope). The
// root .htaccess rule applies to htaccessPath (empty for apps).
func hashTree(ctx context.Context, dir, prefix string, excluded map[string]bool, htaccessPath string) (map[string]fileState, error) {
	files := make(chan walkedFile, 1024)
	var walkErr error
	go func() {
		defer close(files)
		walkErr = walkTree(ctx, dir, prefix, excluded, files)
	}()
	var mu sync.Mutex
	out := make(map[string]fileState)
	var wg sync.WaitGroup
	for i := 0; i < workers(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHasher()
			for f := range files {
				var st fileState
				switch {
				case f.dirLink:
					st = fileState{link: true, skip: true}
				case f.mode.IsDir():
					st = fileState{err: fmt.Errorf("directory cannot be read: %w", f.err)}
				case f.mode&fs.ModeSymlink == 0 && !f.mode.IsRegular():
					st = fileState{err: fmt.Errorf("%w (%s)", errNotRegular, modeName(f.mode))}
				default:
					st = h.hash(f.path, f.path == htaccessPath, f.mode&fs.ModeSymlink != 0)
					st.link = f.mode&fs.ModeSymlink != 0
				}
				hashed.Add(1)
				mu.Lock()
				out[f.key] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if walkErr != nil {
		return nil, walkErr
	}
	return out, nil
}

// sortedKeys returns the keys of m in byte order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// cleanAbs makes p absolute and clean, for comparisons of whole paths.
func cleanAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	return strings.TrimRight(filepath.Clean(p), "/")
}

// hashed and hashedBytes count the files looked at by every walk of this
// process, and their bytes.
var hashed, hashedBytes atomic.Int64

// HashedBytes is how many bytes this process has hashed so far.
func HashedBytes() int64 { return hashedBytes.Load() }

// HashedFiles is how many files this process has checked so far: a
// progress counter (for watchdogs and progress lines).
func HashedFiles() int64 { return hashed.Load() }
