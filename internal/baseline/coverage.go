package baseline

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/fsutil"
	"github.com/integrityd/integrityd/internal/verify"
)

// ScopeName is the scope name of findings about code that no
// signature covers (the unsigned coverage of an install, checked
// against a baseline the admin accepted).
const ScopeName = "unsigned"

// Coverage is the code of an install that no manifest covers, and that
// the web server or Nextcloud may still run:
//
//   - every file of every unsigned app: a directory of an apps root with
//     appinfo/info.xml that Apps does not return (not shipped, no
//     appinfo/signature.json): Nextcloud loads it, nothing checks it;
//   - every file under ROOT/themes (Nextcloud includes its PHP
//     templates);
//   - every executable file (see IsExecutableName: *.php, *.phar, *.phtml
//     and PHP's other handler extensions, .htaccess, .user.ini) in the
//     directories no scope checks: the excluded directories of the server
//     root (config/, updater/, assets/, lost+found/, _oc_upgrade/, apps/
//     when it is not an apps root), the directories the admin excluded,
//     and what is in an apps root but is no app (a loose file, a
//     directory without appinfo/info.xml), since the web server serves
//     a PHP file wherever it is;
//   - the root .htaccess below the marker line ("#### DO NOT CHANGE
//     ANYTHING ABOVE THIS LINE ####"; core's signature covers what is
//     above), and any directive there that Nextcloud's installer does not
//     write (see htaccessDirectives).
//
// Not covered: the data directory (Install.DataDir, else ROOT/data) and
// everything below it; config/config.php (Nextcloud rewrites it on every
// setting; integrityd follows it as configuration, not as code); files in
// the excluded directories that are not executable by name (a .js in
// config/ say); what is inside signed scopes (their EXTRA_FILE covers
// it); symlinked directories are not entered (the symlink itself is
// recorded, by its target); code outside the root and the apps roots.
type Coverage struct {
	in       *verify.Install
	data     string          // the data directory, never covered
	unsigned map[string]bool // unsigned app directories
	checked  map[string]bool // app directories some scope checks
}

// covMode is how a directory is covered.
type covMode int

const (
	covNone     covMode = iota // a signed scope's (or core's): not covered itself
	covSkip                    // nothing here or below (the data directory, outside the install)
	covExec                    // executable files only
	covAll                     // every file
	covAppsRoot                // an apps root: apps, and executable loose files
)

// NewCoverage returns the unsigned coverage of in, with the apps as they
// are now (call it again when apps come or go).
func NewCoverage(in *verify.Install) (*Coverage, error) {
	c := &Coverage{in: in, unsigned: map[string]bool{}, checked: map[string]bool{}}
	c.data = in.DataDir
	if c.data == "" && in.Root != "" {
		c.data = in.Root + "/data"
	}
	apps, _, err := in.Apps()
	if err != nil {
		return nil, err
	}
	for _, a := range apps {
		c.checked[a.Dir] = true
	}
	for _, root := range in.AppsRoots {
		ents, err := os.ReadDir(root)
		if err != nil {
			continue // Apps warned already; nothing to cover there
		}
		for _, e := range ents {
			dir := root + "/" + e.Name()
			if c.checked[dir] || !e.IsDir() {
				continue
			}
			if fi, err := os.Stat(filepath.Join(dir, infoXML)); err == nil && fi.Mode().IsRegular() {
				c.unsigned[dir] = true
			}
		}
	}
	return c, nil
}

// UnsignedApps lists the directories of the unsigned apps, sorted.
func (c *Coverage) UnsignedApps() []string { return sortedKeys(c.unsigned) }

// Install is the install c covers.
func (c *Coverage) Install() *verify.Install { return c.in }

// IsExecutableName reports whether a file name is one the web server or
// PHP runs or reads as configuration: PHP's handler extensions (*.php,
// *.phar, *.phtml, *.pht, *.php3 to *.php8, any case), .htaccess and
// .user.ini.
func IsExecutableName(name string) bool {
	if name == ".htaccess" || name == ".user.ini" {
		return true
	}
	ext := strings.ToLower(filepath.Ext(name))
	switch ext {
	case ".php", ".phar", ".phtml", ".pht", ".php3", ".php4", ".php5", ".php7", ".php8":
		return true
	}
	return false
}

// childMode is the mode of directory p whose parent has mode parent.
func (c *Coverage) childMode(parent covMode, p string) covMode {
	in := c.in
	switch {
	case parent == covSkip || p == c.data:
		return covSkip
	case in.IsAppsRoot(p):
		return covAppsRoot
	case parent == covAppsRoot:
		switch {
		case c.unsigned[p]:
			return covAll
		case c.checked[p]:
			return covNone
		}
		return covExec
	case in.Root != "" && p == in.Root+"/themes":
		return covAll
	case parent == covAll || parent == covExec:
		return parent
	case in.Excluded(p):
		return covExec
	}
	return covNone
}

// dirMode is the mode of the absolute directory d.
func (c *Coverage) dirMode(d string) covMode {
	in := c.in
	switch {
	case d == c.data:
		return covSkip
	case in.IsAppsRoot(d):
		return covAppsRoot
	case in.Root != "" && d == in.Root:
		return covNone
	}
	parent := filepath.Dir(d)
	if parent == d || !c.within(d) {
		return covSkip
	}
	return c.childMode(c.dirMode(parent), d)
}

// within reports whether p is below the root or an apps root.
func (c *Coverage) within(p string) bool {
	if c.in.Root != "" && strings.HasPrefix(p, c.in.Root+"/") {
		return true
	}
	for _, a := range c.in.AppsRoots {
		if strings.HasPrefix(p, a+"/") {
			return true
		}
	}
	return false
}

// fileCovered reports whether a file named name in a directory of mode m
// is covered.
func fileCovered(m covMode, name string) bool {
	return m == covAll || (m == covExec || m == covAppsRoot) && IsExecutableName(name)
}

// Key is the baseline's key of absolute path p: relative to the root
// below it, else p itself (an apps root outside the root).
func (c *Coverage) Key(p string) string {
	if c.in.Root != "" && strings.HasPrefix(p, c.in.Root+"/") {
		return p[len(c.in.Root)+1:]
	}
	return p
}

// path is the absolute path of key.
func (c *Coverage) path(key string) string {
	if strings.HasPrefix(key, "/") {
		return key
	}
	return c.in.Root + "/" + key
}

// htaccessKey is the key of the root .htaccess.
const htaccessKey = ".htaccess"

// WatchDir reports whether directory p holds covered files, or may
// below it (the watcher watches it).
func (c *Coverage) WatchDir(p string) bool {
	switch c.dirMode(p) {
	case covExec, covAll, covAppsRoot:
		return true
	}
	return false
}

// Covers reports whether an event on absolute path p (a file or
// directory, existing or gone) may concern the coverage: a path that
// may have been a directory of it is (ScanPath then finds what is
// there).
func (c *Coverage) Covers(p string) bool {
	if c.in.Root != "" && p == c.in.Root+"/"+htaccessKey {
		return true
	}
	if m := c.dirMode(p); m == covExec || m == covAll || m == covAppsRoot {
		return true // a directory (or what was one)
	}
	return c.fileIn(p)
}

// fileIn reports whether the file at absolute path p is covered: by its
// directory and name, or as an executable file the admin excluded from
// the signed check.
func (c *Coverage) fileIn(p string) bool {
	if c.isConfigPHP(p) {
		return false
	}
	name := filepath.Base(p)
	return fileCovered(c.dirMode(filepath.Dir(p)), name) || IsExecutableName(name) && slices.Contains(c.in.Exclude, p)
}

// File is what the coverage found at one key.
type File struct {
	Hash finding.Hash `json:"hash,omitzero"`
	Size int64        `json:"size"`
	Mode fs.FileMode  `json:"mode"`
	// Err says why the file could not be hashed ("" when it was).
	Err string `json:"err,omitempty"`
	// directives are the .htaccess directives below the marker that
	// Nextcloud's installer does not write (the root .htaccess only).
	directives []directive `json:"-"`
}

// same reports whether f and g are the same content and mode.
func (f File) same(g File) bool {
	return f.Hash == g.Hash && f.Mode == g.Mode && f.Err == g.Err
}

// Files is the coverage's content: key -> file.
type Files map[string]File

// Scan hashes the whole coverage.
func (c *Coverage) Scan(ctx context.Context) (Files, error) {
	in := c.in
	var starts []string
	var modes []covMode
	add := func(p string, m covMode) {
		if m == covNone || m == covSkip {
			return
		}
		starts, modes = append(starts, p), append(modes, m)
	}
	if in.Root != "" {
		ents, err := os.ReadDir(in.Root)
		if err != nil {
			return nil, fmt.Errorf("read directory %s: %w", in.Root, cleanErr(err))
		}
		for _, e := range ents {
			if e.IsDir() {
				p := in.Root + "/" + e.Name()
				add(p, c.childMode(covNone, p))
			}
		}
	}
	for _, a := range in.AppsRoots {
		add(a, covAppsRoot)
	}
	var excludedFiles []string
	for _, e := range in.Exclude {
		if fi, err := os.Lstat(e); err == nil && fi.IsDir() {
			add(e, c.dirMode(e))
		} else if err == nil && c.fileIn(e) {
			excludedFiles = append(excludedFiles, e)
		}
	}
	// A start below another is walked as part of it.
	var keepS []string
	var keepM []covMode
	for i, s := range starts {
		nested := false
		for j, o := range starts {
			if i != j && (strings.HasPrefix(s, o+"/") || s == o && j < i) {
				nested = true
			}
		}
		if !nested {
			keepS, keepM = append(keepS, s), append(keepM, modes[i])
		}
	}
	out := Files{}
	for i, s := range keepS {
		if err := c.scanDir(ctx, s, keepM[i], out); err != nil {
			return nil, err
		}
	}
	for _, p := range excludedFiles {
		if _, ok := out[c.Key(p)]; ok {
			continue // walked with its directory
		}
		_, files, err := c.ScanPath(ctx, p)
		if err != nil {
			return nil, err
		}
		for k, f := range files {
			out[k] = f
		}
	}
	if in.Root != "" {
		if err := c.scanHtaccess(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ScanPath hashes what the coverage has at absolute path p and below (p
// may be a file or directory, or gone), and returns its key.
func (c *Coverage) ScanPath(ctx context.Context, p string) (string, Files, error) {
	out := Files{}
	key := c.Key(p)
	if c.in.Root != "" && p == c.in.Root+"/"+htaccessKey {
		return key, out, c.scanHtaccess(ctx, out)
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return key, out, nil
	}
	if err != nil {
		out[key] = File{Err: cleanErr(err).Error()}
		return key, out, nil
	}
	if fi.IsDir() {
		m := c.dirMode(p)
		if m == covNone || m == covSkip {
			return key, out, nil
		}
		return key, out, c.scanDir(ctx, p, m, out)
	}
	if c.fileIn(p) {
		f, err := hashFile(ctx, c.in.Checker.NewHasher(), p, fi.Mode())
		if err != nil {
			return key, nil, err
		}
		out[key] = f
	}
	return key, out, nil
}

// scanDir hashes the covered files below dir (of mode m) into out.
func (c *Coverage) scanDir(ctx context.Context, dir string, m covMode, out Files) error {
	type job struct {
		path string
		mode fs.FileMode
	}
	var mu sync.Mutex
	return verify.HashEach(ctx, &c.in.Checker, func(send func(job) error) error {
		var walk func(d string, m covMode) error
		walk = func(d string, m covMode) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			ents, err := os.ReadDir(d)
			if err != nil {
				if d == dir && errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				// One entry for what could not be listed.
				return send(job{path: d, mode: fs.ModeDir})
			}
			for _, e := range ents {
				p := d + "/" + e.Name()
				if e.IsDir() {
					if cm := c.childMode(m, p); cm != covNone && cm != covSkip {
						if err := walk(p, cm); err != nil {
							return err
						}
					}
					continue
				}
				if !fileCovered(m, e.Name()) || c.isConfigPHP(p) {
					continue
				}
				if err := send(job{path: p, mode: e.Type()}); err != nil {
					return err
				}
			}
			return nil
		}
		return walk(dir, m)
	}, func(h *verify.Hasher, j job) {
		var f File
		if j.mode.IsDir() {
			f = File{Mode: fs.ModeDir, Err: "directory cannot be read"}
		} else {
			var err error
			if f, err = hashFile(ctx, h, j.path, j.mode); err != nil {
				return // ctx is done
			}
		}
		mu.Lock()
		out[c.Key(j.path)] = f
		mu.Unlock()
	})
}

// isConfigPHP reports whether p is config/config.php (not covered: see
// Coverage).
func (c *Coverage) isConfigPHP(p string) bool {
	return c.in.Root != "" && p == c.in.Root+"/config/config.php"
}

// hashFile hashes one covered file; typ is its lstat type. A symlink to
// a file is hashed through (its content is what runs), another symlink
// (a directory, dangling) is recorded by its target.
func hashFile(ctx context.Context, h *verify.Hasher, p string, typ fs.FileMode) (File, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return File{Mode: typ, Err: cleanErr(err).Error()}, nil
	}
	mode := fi.Mode()
	if mode&fs.ModeSymlink != 0 {
		if t, err := os.Stat(p); err != nil || !t.Mode().IsRegular() {
			target, err := os.Readlink(p)
			if err != nil {
				return File{Mode: mode, Err: cleanErr(err).Error()}, nil
			}
			return File{Mode: mode, Hash: sha512.Sum512([]byte("symlink:" + target)), Size: int64(len(target))}, nil
		}
	}
	sum, size, why, err := h.File(ctx, p, mode&fs.ModeSymlink != 0)
	if err != nil {
		return File{}, err
	}
	f := File{Hash: sum, Size: size, Mode: mode}
	if why != nil {
		f.Hash, f.Err = finding.Hash{}, why.Error()
	}
	return f, nil
}

// scanHtaccess records the root .htaccess from its marker line on (none
// when it has no marker: core's signature then covers all of it).
func (c *Coverage) scanHtaccess(ctx context.Context, out Files) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := c.in.Root + "/" + htaccessKey
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil || !fi.Mode().IsRegular() {
		return nil // core reports it
	}
	f, err := fsutil.OpenRegular(p)
	if err != nil {
		return nil // core reports it
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, verify.MaxHtaccess+1))
	if err != nil || len(data) > verify.MaxHtaccess {
		return nil // core hashes it whole
	}
	i := bytes.Index(data, []byte(verify.HtaccessMarker))
	if i < 0 || bytes.Count(data, []byte(verify.HtaccessMarker)) != 1 {
		return nil // core hashes it whole
	}
	below := data[i:]
	line := 1 + bytes.Count(data[:i], []byte("\n"))
	out[htaccessKey] = File{Hash: sha512.Sum512(below), Size: int64(len(below)), Mode: fi.Mode(),
		directives: htaccessDirectives(below, line)}
	return nil
}

// directive is one line of the root .htaccess below the marker that
// Nextcloud's installer does not write.
type directive struct {
	Line int    // in the file, from 1
	Name string // the directive, e.g. php_value
	Text string // the line, trimmed
}

// installerDirectives are the directives Nextcloud's installer
// (Setup::updateHtaccess, the same set in 25 and 33) writes below the
// marker: the two ErrorDocument lines, and when htaccess.RewriteBase is
// set, the rewrite block.
var installerDirectives = map[string]bool{
	"errordocument": true, "<ifmodule": true, "</ifmodule>": true, "options": true,
	"rewriterule": true, "rewritecond": true, "rewritebase": true, "setenv": true, "directoryslash": true,
}

// htaccessDirectives returns the directives of below (the root .htaccess
// from its marker line, which is line first of the file) that Nextcloud's
// installer does not write: any directive but ErrorDocument, RewriteBase,
// RewriteRule, RewriteCond, Options, DirectorySlash, <IfModule> and
// SetEnv front_controller_active; a RewriteRule that sets a handler
// (H=) or a type (T=) makes the server run what it would serve; an
// <IfModule> of a PHP module guards PHP settings. Comments and blank
// lines are not directives; a line continued with a backslash is one.
func htaccessDirectives(below []byte, first int) []directive {
	var out []directive
	lines := strings.Split(string(below), "\n")
	for i := 0; i < len(lines); i++ {
		start := i
		text := strings.TrimSpace(strings.TrimSuffix(lines[i], "\r"))
		for strings.HasSuffix(text, "\\") && i+1 < len(lines) {
			i++
			text = strings.TrimSuffix(text, "\\") + " " + strings.TrimSpace(strings.TrimSuffix(lines[i], "\r"))
		}
		fields := strings.Fields(text)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		text = strings.Join(fields, " ")
		name := strings.ToLower(fields[0])
		bad := !installerDirectives[name]
		arg := ""
		if len(fields) > 1 {
			arg = strings.ToLower(strings.Join(fields[1:], " "))
		}
		switch name {
		case "setenv":
			bad = len(fields) < 2 || strings.ToLower(fields[1]) != "front_controller_active"
		case "rewriterule":
			if len(fields) > 3 {
				flags := strings.ToLower(fields[len(fields)-1])
				bad = strings.Contains(flags, "h=") || strings.Contains(flags, "handler=") ||
					strings.Contains(flags, "t=") || strings.Contains(flags, "type=")
			}
		case "<ifmodule":
			bad = strings.Contains(arg, "php")
		}
		if bad {
			out = append(out, directive{Line: first + start, Name: fields[0], Text: text})
		}
	}
	return out
}

func directivesNote(ds []directive) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("line %d: %s", d.Line, finding.EscapeControl(d.Text))
	}
	return "directives Nextcloud's installer does not write below the marker: " + strings.Join(parts, "; ")
}

// keysUnder returns the keys of m at key and below ("" is all).
func keysUnder(m Files, key string) []string {
	var out []string
	for k := range m {
		if key == "" || k == key || strings.HasPrefix(k, key+"/") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// infoXML is an app's info file, relative to its directory (what makes a
// directory of an apps root an app, for Nextcloud as for verify.Apps).
const infoXML = "appinfo/info.xml"

// cleanErr drops the path from an *fs.PathError: findings carry the path.
func cleanErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// sortedKeys returns the keys of m in byte order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
