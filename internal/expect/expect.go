// Package expect stages a release that an admin is about to install by
// hand (tar, rsync, cp, a configuration-management tool, a new container
// image): its signed manifests, read from the release's directory or
// archive and verified with the trust in use, are kept in the daemon's
// state directory until a bounded time, and the daemon treats a file
// whose content one of them signs as an update step, as it does for a
// release staged by Nextcloud's own updater.
//
// Only the manifests (core/signature.json, apps/ID/appinfo/signature.json)
// and core's version.php are kept: what the daemon needs to tell an
// update from tampering, laid out as in a release (Dir).
package expect

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/fsutil"
	"github.com/integrityd/integrityd/internal/verify"
)

// dirName is the expectation's directory in the state directory; the
// release's files are below its "nextcloud".
const dirName = "expected"

// untilName holds when the expectation ends (RFC 3339), written last.
const untilName = "until"

// MaxFor bounds how long an expectation counts: an update by hand takes
// minutes, and an expectation left behind would let the files of that
// release in without an alert for as long as it counts.
const MaxFor = 7 * 24 * time.Hour

// maxFile bounds each file kept (a manifest of 1,000,000 files is about
// 150 MB; real ones are 2-4 MB).
const maxFile = 256 << 20

// Dir is where the expected release's files are, as in a release:
// Dir/core/signature.json, Dir/apps/ID/appinfo/signature.json,
// Dir/version.php.
func Dir(stateDir string) string { return filepath.Join(stateDir, dirName, "nextcloud") }

// Until is when the expectation in stateDir ends; false when there is
// none (or it cannot be read: then nothing is expected).
func Until(stateDir string) (time.Time, bool) {
	data, err := fsutil.ReadLimited(filepath.Join(stateDir, dirName, untilName), 64)
	if err != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(data)))
	return t, err == nil
}

// Release is what Stage kept.
type Release struct {
	Version string   // core's, from version.php ("" for apps alone)
	Scopes  []string // core and the app ids whose manifest verified, sorted
	Until   time.Time
}

// Stage reads the release at src (a directory, or a .tar, .tar.gz,
// .tgz, .tar.bz2, .tbz2 or .zip archive as Nextcloud and its app store
// ship them: the release below "nextcloud/", an app below its id),
// verifies every manifest in it with t and, only if all verify, makes it
// the expectation of stateDir until until (replacing any before).
func Stage(stateDir, src string, t *verify.Trust, until time.Time) (*Release, error) {
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("expect-release: %w", err)
	}
	tmp, err := os.MkdirTemp(stateDir, "."+dirName+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("expect-release: %w", err)
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755) // read by the daemon's user
	dst := filepath.Join(tmp, "nextcloud")
	if err := collect(src, dst); err != nil {
		return nil, err
	}
	rel, err := check(dst, src, t)
	if err != nil {
		return nil, err
	}
	rel.Until = until.UTC().Truncate(time.Second)
	if err := os.WriteFile(filepath.Join(tmp, untilName), []byte(rel.Until.Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("expect-release: %w", err)
	}
	if err := Clear(stateDir); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(stateDir, dirName)); err != nil {
		return nil, fmt.Errorf("expect-release: %w", err)
	}
	return rel, nil
}

// Clear removes the expectation of stateDir, if any.
func Clear(stateDir string) error {
	d := filepath.Join(stateDir, dirName)
	if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Renamed away first: the daemon sees it go at once, not file by file.
	old := filepath.Join(stateDir, fmt.Sprintf(".%s.old-%d", dirName, time.Now().UnixNano()))
	if err := os.Rename(d, old); err != nil {
		return fmt.Errorf("expect-release: remove %s: %w", d, err)
	}
	return os.RemoveAll(old)
}

// check verifies every manifest below dst (collected from src) with t.
func check(dst, src string, t *verify.Trust) (*Release, error) {
	in := verify.NewInstall(dst, nil, "")
	rel := &Release{}
	var bad []string
	if _, err := os.Stat(filepath.Join(dst, "core", "signature.json")); err == nil {
		if _, ex := in.Core().LoadManifest(t); ex != nil {
			bad = append(bad, "core: "+ex.Message+" ("+strings.TrimPrefix(ex.Detail, dst+"/")+")")
		} else {
			rel.Scopes = append(rel.Scopes, "core")
		}
		rel.Version = verify.ReadVersion(dst).String
	}
	ents, _ := os.ReadDir(filepath.Join(dst, "apps"))
	for _, e := range ents {
		dir := filepath.Join(dst, "apps", e.Name())
		if _, ex := in.App(e.Name(), dir).LoadManifest(t); ex != nil {
			bad = append(bad, "app "+e.Name()+": "+ex.Message+" ("+strings.TrimPrefix(ex.Detail, dst+"/")+")")
			continue
		}
		rel.Scopes = append(rel.Scopes, e.Name())
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("expect-release %s: not staged, a manifest does not verify:\n  %s", src, strings.Join(bad, "\n  "))
	}
	if len(rel.Scopes) == 0 {
		return nil, fmt.Errorf("expect-release %s: no signed manifest in it (core/signature.json, apps/ID/appinfo/signature.json, or an app's appinfo/signature.json)", src)
	}
	sort.Strings(rel.Scopes[min(1, len(rel.Scopes)):]) // core first
	return rel, nil
}

// collect copies the files of the release at src that the expectation
// keeps into dst, laid out as a release.
func collect(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("expect-release: %w", err)
	}
	if fi.IsDir() {
		return collectDir(src, dst)
	}
	return collectArchive(src, dst)
}

// collectDir collects from a release's (or an app's) directory.
func collectDir(src, dst string) error {
	base := src
	if _, err := os.Stat(filepath.Join(src, "nextcloud", "core", "signature.json")); err == nil {
		base = filepath.Join(src, "nextcloud")
	}
	if _, err := os.Stat(filepath.Join(base, "appinfo", "signature.json")); err == nil {
		// An app on its own: kept under its id.
		id := filepath.Base(filepath.Clean(base))
		return copyFile(filepath.Join(base, "appinfo", "signature.json"), filepath.Join(dst, "apps", id, "appinfo", "signature.json"))
	}
	for _, rel := range []string{"core/signature.json", "version.php"} {
		if err := copyFile(filepath.Join(base, rel), filepath.Join(dst, rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	ents, err := os.ReadDir(filepath.Join(base, "apps"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("expect-release: %w", err)
	}
	for _, e := range ents {
		rel := filepath.Join("apps", e.Name(), "appinfo", "signature.json")
		if err := copyFile(filepath.Join(base, rel), filepath.Join(dst, rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// copyFile copies one regular file (never through a link, at most
// maxFile bytes).
func copyFile(from, to string) error {
	data, err := fsutil.ReadLimited(from, maxFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return fmt.Errorf("expect-release: %w", err)
	}
	return writeFile(to, data)
}

func writeFile(to string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return fmt.Errorf("expect-release: %w", err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		return fmt.Errorf("expect-release: %w", err)
	}
	return nil
}

// collectArchive collects from a release's or an app's archive.
func collectArchive(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("expect-release: %w", err)
	}
	defer f.Close()
	keep := func(p string, size int64, open func() (io.Reader, error)) error {
		return keepEntry(src, dst, p, size, open)
	}
	name := strings.ToLower(src)
	switch {
	case strings.HasSuffix(name, ".zip"):
		return collectZip(f, src, keep)
	case strings.HasSuffix(name, ".tar"), strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"),
		strings.HasSuffix(name, ".tar.bz2"), strings.HasSuffix(name, ".tbz2"):
		return collectTar(f, src, name, keep)
	}
	return fmt.Errorf("expect-release %s: neither a directory nor an archive this reads (.tar, .tar.gz, .tgz, .tar.bz2, .tbz2, .zip)", src)
}

// keepFunc keeps the archive's entry p of size bytes, read by open, if
// the expectation keeps it.
type keepFunc func(p string, size int64, open func() (io.Reader, error)) error

// keepEntry writes the entry p of the archive src below dst, where
// keptPath says, if it is kept.
func keepEntry(src, dst, p string, size int64, open func() (io.Reader, error)) error {
	rel, ok := keptPath(p)
	if !ok {
		return nil
	}
	if size > maxFile {
		return fmt.Errorf("expect-release %s: %s: %d bytes, more than a manifest can be", src, finding.EscapeControl(p), size)
	}
	r, err := open()
	if err != nil {
		return fmt.Errorf("expect-release %s: %s: %w", src, finding.EscapeControl(p), err)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFile))
	if err != nil {
		return fmt.Errorf("expect-release %s: %s: %w", src, finding.EscapeControl(p), err)
	}
	return writeFile(filepath.Join(dst, filepath.FromSlash(rel)), data)
}

// collectZip keeps what keep keeps of the zip archive f (named src).
func collectZip(f *os.File, src string, keep keepFunc) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("expect-release: %w", err)
	}
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil {
		return fmt.Errorf("expect-release %s: not a zip archive: %w", src, err)
	}
	for _, zf := range zr.File {
		if !zf.Mode().IsRegular() {
			continue
		}
		if err := keep(zf.Name, int64(zf.UncompressedSize64), func() (io.Reader, error) { return zf.Open() }); err != nil {
			return err
		}
	}
	return nil
}

// collectTar keeps what keep keeps of the tar archive f (named src,
// compressed as name says).
func collectTar(f *os.File, src, name string, keep keepFunc) error {
	r, err := decompress(bufio.NewReader(f), name)
	if err != nil {
		return fmt.Errorf("expect-release %s: %w", src, err)
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("expect-release %s: not a readable tar archive: %w", src, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if err := keep(h.Name, h.Size, func() (io.Reader, error) { return tr, nil }); err != nil {
			return err
		}
	}
}

// decompress opens the tar stream of an archive named name.
func decompress(r *bufio.Reader, name string) (io.Reader, error) {
	switch {
	case strings.HasSuffix(name, ".gz"), strings.HasSuffix(name, ".tgz"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("not a gzip archive: %w", err)
		}
		return zr, nil
	case strings.HasSuffix(name, ".bz2"), strings.HasSuffix(name, ".tbz2"):
		magic, _ := r.Peek(3)
		if !bytes.Equal(magic, []byte("BZh")) {
			return nil, errors.New("not a bzip2 archive")
		}
		return bzip2.NewReader(r), nil
	}
	return r, nil
}

// keptPath maps an archive's entry to where the expectation keeps it:
// nextcloud/core/signature.json, nextcloud/version.php and
// nextcloud/apps/ID/appinfo/signature.json of a release, ID/appinfo/signature.json
// of an app. Anything else, and any name that is not clean, is not kept.
func keptPath(p string) (string, bool) {
	p = strings.TrimPrefix(p, "./")
	if p == "" || path.Clean(p) != p || strings.HasPrefix(p, "../") || path.IsAbs(p) {
		return "", false
	}
	rest, release := strings.CutPrefix(p, "nextcloud/")
	switch {
	case release && (rest == "core/signature.json" || rest == "version.php"):
		return rest, true
	case release && strings.HasPrefix(rest, "apps/"):
		return appManifest(strings.TrimPrefix(rest, "apps/"))
	case !release:
		return appManifest(p)
	}
	return "", false
}

// appManifest maps ID/appinfo/signature.json to where the expectation
// keeps it.
func appManifest(p string) (string, bool) {
	id, rest, _ := strings.Cut(p, "/")
	if rest != "appinfo/signature.json" || !validID(id) || id == "nextcloud" {
		return "", false
	}
	return path.Join("apps", id, "appinfo", "signature.json"), true
}

// validID reports whether id can be an app's directory name.
func validID(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\\\x00")
}
