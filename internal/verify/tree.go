package verify

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/fsutil"
	"github.com/integrityd/integrityd/internal/mimetypelist"
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

// HtaccessMarker splits the root .htaccess: only what is above it is
// signed (what is below is the unsigned baseline's).
const HtaccessMarker = "#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####"

// MaxHtaccess bounds how much of the root .htaccess is read into memory to
// apply the marker rule; a larger file is hashed whole.
const MaxHtaccess = 16 << 20

// skipKey reports whether a file, by its key in the scope, is never
// hashed: the manifests themselves.
func skipKey(key string) bool {
	return key == "appinfo/signature.json" || key == "core/signature.json"
}

// fileState is what the walk found for one key.
type fileState struct {
	hash finding.Hash // zero when it could not be read
	size int64
	err  error // why it could not be hashed
	link bool  // a symlink: its target can change without an event on it
	skip bool  // not a file of the scope (a symlink to a directory)
	// nlink is the link count of the file hashed (a symlink's target),
	// 0 when it was not hashed.
	nlink uint64
	// deferred: a regular file too big to hash now (RecheckDeferred).
	deferred bool
}

// walkedFile is one entry the walk hands to the hashing workers: key is
// relative to the scope, path absolute, mode the lstat type.
type walkedFile struct {
	key  string
	path string
	mode fs.FileMode
	err  error // for a directory that could not be read
	// dirLink marks a symlink to a directory.
	dirLink bool
}

// entryAction is what the walk (and a recheck) does with one path.
type entryAction int

const (
	ignore  entryAction = iota // not part of the scope
	descend                    // a directory: walk it
	hashIt                     // a file (or what stands in its place): hash or report it
)

// classify is the one rule, shared by the full walk and Recheck, that says
// what a path of the scope is: excluded whole paths (Nextcloud's
// ExcludeFoldersByPathFilterIterator compares whole paths), directories,
// symlinks to directories (followed for the type only, like PHP's isDir():
// not entered, only noted), files excluded by name or key, and the rest.
// mode is the lstat type.
func (s *Scope) classify(p, key string, mode fs.FileMode) (entryAction, walkedFile) {
	if s.walkExcluded(p) {
		return ignore, walkedFile{}
	}
	f := walkedFile{key: key, path: p, mode: mode}
	if mode&fs.ModeSymlink != 0 {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			f.dirLink = true
			return hashIt, f
		}
	}
	if mode.IsDir() {
		return descend, f
	}
	if s.in.skipName(path.Base(key)) || skipKey(key) {
		return ignore, walkedFile{}
	}
	return hashIt, f
}

// walkTree lists the files of the scope below dir (whose key is prefix)
// and sends them to out, in ReadDir's order.
func (s *Scope) walkTree(ctx context.Context, dir, prefix string, send func(walkedFile) error) error {
	return s.walkTreeOrder(ctx, dir, prefix, false, send)
}

// walkTreeOrder is walkTree; with inKeyOrder, the files go in the byte
// order of their keys (keyOrder).
func (s *Scope) walkTreeOrder(ctx context.Context, dir, prefix string, inKeyOrder bool, send func(walkedFile) error) error {
	var walk func(abs, rel string) error
	walk = func(abs, rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(abs)
		if err != nil {
			if abs != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // removed since its parent was listed: not there
			}
			if abs == dir {
				return fmt.Errorf("read directory %s: %w", abs, cleanErr(err))
			}
			// An unreadable directory is one entry, key ending in "/",
			// so the comparison can flag it and what it hides.
			return send(walkedFile{key: rel + "/", path: abs, mode: fs.ModeDir, err: cleanErr(err)})
		}
		if inKeyOrder {
			slices.SortFunc(ents, keyOrder)
		}
		for _, e := range ents {
			name := e.Name()
			p := abs + "/" + name
			key := name
			if rel != "" {
				key = rel + "/" + name
			}
			switch act, f := s.classify(p, key, e.Type()); act {
			case descend:
				if err := walk(p, key); err != nil {
					return err
				}
			case hashIt:
				if err := send(f); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(dir, prefix)
}

// keyOrder orders the entries of a directory as their keys sort (a
// directory's key is its name and "/", which is the start of the keys
// below it), so that the walk hands on keys in byte order, the order of
// the manifest's keys (ksort's, as Nextcloud writes them): "a.b" before
// the files of "a", ReadDir's name order puts them after.
func keyOrder(a, b os.DirEntry) int {
	x, y := a.Name(), b.Name()
	n := min(len(x), len(y))
	if c := strings.Compare(x[:n], y[:n]); c != 0 {
		return c
	}
	// One name is the other's prefix: compare what follows it, a
	// directory's name followed by "/".
	cx, cy := tail(x, n, a.IsDir()), tail(y, n, b.IsDir())
	if cx != cy {
		return cx - cy
	}
	return len(x) - len(y)
}

// tail is the byte at n of name as a key sorts ("/" after a directory's
// name), or -1 past its end.
func tail(name string, n int, dir bool) int {
	switch {
	case n < len(name):
		return int(name[n])
	case dir:
		return '/'
	}
	return -1
}

// errNotRegular marks files that are never opened for reading.
var errNotRegular = errors.New("not a regular file")

// linkCount is the st_nlink of fi (0 when unknown).
func linkCount(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}

// hasher computes SHA-512 of files with a reusable buffer.
type hasher struct {
	buf       []byte
	progress  *Progress
	pace      func(ctx context.Context, n int64) error
	deferOver int64 // > 0: files larger are not read (deferred)
	// realDevs are the devices (st_dev) of files already found on a real
	// file system: every file with the same st_dev is on that file
	// system (the superblock's), whose type is not asked again.
	realDevs []uint64
}

// checkRealFS is fsutil.CheckRealFS for f, whose fstat is fi, asked once
// per file system (st_dev) that is a real one: an fstatfs a file less.
func (h *hasher) checkRealFS(f *os.File, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && slices.Contains(h.realDevs, uint64(st.Dev)) {
		return nil
	}
	if err := fsutil.CheckRealFS(f); err != nil {
		return err
	}
	if ok && len(h.realDevs) < 16 {
		h.realDevs = append(h.realDevs, uint64(st.Dev))
	}
	return nil
}

func newHasher(c *Checker) *hasher {
	h := &hasher{buf: make([]byte, 256<<10), progress: c.progress(), pace: c.pacer()}
	if c != nil {
		h.deferOver = c.deferOver
	}
	return h
}

// special names the files of a scope that Nextcloud hashes by a rule of
// their own (core only).
type special struct {
	htaccess string   // the root .htaccess: only what is above the marker
	mimetype string   // core/js/mimetypelist.js: see mimetypelist.Hash
	in       *Install // whose configuration and release the mimetype rule reads
}

func (s *Scope) special() special {
	if !s.core {
		return special{}
	}
	return special{htaccess: s.Dir + "/.htaccess", mimetype: s.Dir + "/" + mimetypelist.Path, in: s.in}
}

// file hashes or reports one entry of the walk; sp says which files have
// rules of their own. The error is ctx's when it is done: the file was not
// hashed, and is no finding.
func (h *hasher) file(ctx context.Context, f walkedFile, sp special) (fileState, error) {
	defer h.progress.addFile()
	switch {
	case f.dirLink:
		return fileState{link: true, skip: true}, nil
	case f.mode.IsDir():
		return fileState{err: fmt.Errorf("directory cannot be read: %w", f.err)}, nil
	case f.mode&fs.ModeSymlink == 0 && !f.mode.IsRegular():
		return fileState{err: fmt.Errorf("%w (%s)", errNotRegular, fsutil.ModeName(f.mode))}, nil
	}
	if h.pace != nil {
		if err := h.pace(ctx, PaceFileCost); err != nil {
			return fileState{}, err
		}
	}
	link := f.mode&fs.ModeSymlink != 0
	st, err := h.hash(ctx, f.path, sp, link)
	st.link = link
	return st, err
}

// hash hashes the file at path. FIFOs, sockets and devices are never
// opened; the file is opened non-blocking and checked again after open
// (its type, and the file system it is on: a pseudo file system such as
// procfs is never read), so that one swapped in meanwhile cannot hang the
// scan. sp applies the rules of the root .htaccess and of
// core/js/mimetypelist.js when path is one of them. statFirst can be false
// when the caller already knows (from lstat or the directory entry) that
// path is a regular file in the tree; it is true for symlinks, whose
// target is then looked at before it is opened. The read stops at the
// next buffer (256 KiB) once ctx is done, and returns ctx's error.
func (h *hasher) hash(ctx context.Context, path string, sp special, statFirst bool) (fileState, error) {
	if err := ctx.Err(); err != nil {
		return fileState{}, err
	}
	if statFirst {
		fi, err := os.Stat(path) // follows a symlink to a file, as PHP does
		if err != nil {
			if _, lerr := os.Lstat(path); errors.Is(err, fs.ErrNotExist) && errors.Is(lerr, fs.ErrNotExist) {
				// The link itself listed, then removed (rsync putting
				// a file in its place): not there, as above.
				return fileState{skip: true}, nil
			}
			return fileState{err: cleanErr(err)}, nil
		}
		if !fi.Mode().IsRegular() {
			return fileState{err: fmt.Errorf("%w (%s)", errNotRegular, fsutil.ModeName(fi.Mode()))}, nil
		}
		if err := fsutil.CheckRealFSAt(path); err != nil {
			return fileState{err: cleanErr(err)}, nil
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		if !statFirst && errors.Is(err, fs.ErrNotExist) {
			// Listed, then removed before it could be read (rsync,
			// an update): not there, as a listing now would say
			// (FILE_MISSING if expected), not an EXCEPTION. A
			// symlink whose target is missing stays one.
			return fileState{skip: true}, nil
		}
		return fileState{err: cleanErr(err)}, nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileState{err: cleanErr(err)}, nil
	}
	if !fi.Mode().IsRegular() {
		return fileState{err: fmt.Errorf("%w (%s)", errNotRegular, fsutil.ModeName(fi.Mode()))}, nil
	}
	if err := h.checkRealFS(f, fi); err != nil {
		return fileState{err: cleanErr(err)}, nil
	}
	nlink := linkCount(fi)
	if h.deferOver > 0 && fi.Size() > h.deferOver {
		return fileState{deferred: true, nlink: nlink}, nil
	}
	d := sha512.New()
	if path == sp.mimetype && path != "" && fi.Size() <= mimetypelist.MaxFile {
		data, err := io.ReadAll(io.LimitReader(f, mimetypelist.MaxFile+1))
		if err != nil {
			return fileState{err: cleanErr(err)}, nil
		}
		if len(data) <= mimetypelist.MaxFile {
			st := fileState{hash: sha512.Sum512(data), size: int64(len(data)), nlink: nlink}
			in := sp.in
			dflt, ok, err := mimetypelist.Hash(in.Root, filepath.Join(in.Root, "config"), in.Version.Major(), data)
			switch {
			case err != nil:
				// Nextcloud fails the core check (or, for a TypeError,
				// its whole run); integrityd reports this file.
				return fileState{err: err, nlink: nlink}, nil
			case ok:
				st.hash = dflt
			}
			return st, nil
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fileState{err: cleanErr(err)}, nil
		}
	}
	if path == sp.htaccess && path != "" && fi.Size() <= MaxHtaccess {
		data, err := io.ReadAll(io.LimitReader(f, MaxHtaccess+1))
		if err != nil {
			return fileState{err: cleanErr(err)}, nil
		}
		if len(data) <= MaxHtaccess {
			if parts := bytes.Split(data, []byte(HtaccessMarker)); len(parts) == 2 {
				data = parts[0]
			}
			d.Write(data)
			return fileState{hash: sum(d), size: int64(len(data)), nlink: nlink}, nil
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fileState{err: cleanErr(err)}, nil
		}
	}
	// A plain read loop: io.CopyBuffer would ignore h.buf, because
	// *os.File has a WriteTo that allocates a buffer per call. ctx.Err
	// is an atomic load: checking it per buffer costs nothing measurable.
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return fileState{}, err
		}
		k, err := f.Read(h.buf)
		d.Write(h.buf[:k])
		n += int64(k)
		h.progress.addBytes(k)
		if h.pace != nil && k > 0 {
			if err := h.pace(ctx, int64(k)); err != nil {
				return fileState{}, err
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fileState{err: cleanErr(err)}, nil
		}
	}
	return fileState{hash: sum(d), size: n, nlink: nlink}, nil
}

func sum(d hash.Hash) finding.Hash {
	var h finding.Hash
	d.Sum(h[:0])
	return h
}

// cleanErr drops the path from an *fs.PathError: findings carry the path.
func cleanErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

func (c *Checker) workers() int {
	if c != nil && c.Workers > 0 {
		return c.Workers
	}
	return min(4*runtime.NumCPU(), 32)
}

func (c *Checker) pacer() func(context.Context, int64) error {
	if c == nil {
		return nil
	}
	return c.Pace
}

func (c *Checker) progress() *Progress {
	if c == nil {
		return nil
	}
	return c.Progress
}

// hashTree walks dir (the key of which in the scope is prefix) and hashes
// every file with a pool of workers.
func (s *Scope) hashTree(ctx context.Context, dir, prefix string) (map[string]fileState, error) {
	return s.hashTreeMatch(ctx, dir, prefix, nil)
}

// matched is what a check keeps of the files that match the manifest
// (hashTreeMatch): which entries were seen, how many files and bytes, not
// a fileState each.
type matched struct {
	exp   atomic.Pointer[Expected] // nil until the manifest is loaded
	seen  []bool                   // by position in exp's entries
	files int
	bytes int64
}

// take records st of key as a match and reports true when nothing about
// it can be a finding: a file whose hash is the manifest's, with one
// name, not the info.xml a duplicate-app note goes on. Called with the
// hashing's lock held.
func (m *matched) take(key string, st fileState) bool {
	e := m.exp.Load()
	if e == nil || st.err != nil || st.skip || st.deferred || st.nlink > 1 || key == infoXML || strings.HasSuffix(key, "/") {
		return false
	}
	i, ok := lookupIndex(e.ents, key)
	if !ok || e.ents[i].odd != "" || e.ents[i].hash != st.hash {
		return false
	}
	if m.seen == nil {
		m.seen = make([]bool, len(e.ents))
	}
	m.seen[i] = true
	m.files++
	m.bytes += st.size
	return true
}

// hashTreeMatch is hashTree that, with m, keeps no fileState of a file
// that matches the manifest once m has it: a check's memory is then the
// manifest's and its findings', not a record of every file.
func (s *Scope) hashTreeMatch(ctx context.Context, dir, prefix string, m *matched) (map[string]fileState, error) {
	sp := s.special()
	var mu sync.Mutex
	out := make(map[string]fileState)
	err := hashPool(ctx, &s.in.Checker,
		func(send func(walkedFile) error) error { return s.walkTree(ctx, dir, prefix, send) },
		func(h *hasher, f walkedFile) {
			st, err := h.file(ctx, f, sp)
			if err != nil {
				return // ctx is done: the walk stops, the rest drains
			}
			mu.Lock()
			if m == nil || !m.take(f.key, st) {
				out[f.key] = st
			}
			mu.Unlock()
		})
	if err != nil {
		// Some files may not have been hashed: no partial view.
		return nil, err
	}
	return out, nil
}

// hashPool is the pipeline of every tree hash: walk lists jobs through
// send (which fails once ctx is done), c.workers() goroutines, each with
// a hasher of its own, run hash on them. It returns the walk's error,
// else ctx's.
func hashPool[J any](ctx context.Context, c *Checker, walk func(send func(J) error) error, hash func(h *hasher, j J)) error {
	jobs := make(chan J, 1024)
	var walkErr error
	go func() {
		defer close(jobs)
		walkErr = walk(func(j J) error {
			select {
			case jobs <- j:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	var wg sync.WaitGroup
	for range c.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHasher(c)
			for j := range jobs {
				hash(h, j)
			}
		}()
	}
	wg.Wait()
	if walkErr != nil {
		return walkErr
	}
	return ctx.Err()
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
