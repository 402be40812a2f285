package verify

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/integrityd/integrityd/internal/fsutil"
	"github.com/integrityd/integrityd/internal/mimetypelist"
	"github.com/integrityd/integrityd/internal/phpcompat"
	"github.com/integrityd/integrityd/internal/phpconf"
)

// Install describes a Nextcloud installation on disk.
type Install struct {
	Root      string   // server root (where version.php is)
	AppsRoots []string // apps directories; default Root/apps
	DataDir   string   // a data directory to exclude from core, if custom
	// Exclude lists absolute paths the admin chose not to check: neither
	// walked nor expected. This weakens the check.
	Exclude []string
	// Version is the release in version.php; the rules that changed
	// between releases follow it (zero: unknown, the newest rules).
	Version Version
	// Checker says how files are hashed.
	Checker Checker
	// conf is Nextcloud's configuration as OpenInstall read it (nil when
	// integrityd's own configuration pinned what it needs): Enforced reads
	// it again only then.
	conf *phpconf.Config
	// links are the symlinked app directories Apps found (Locate).
	links *appLinks
}

// Version is a Nextcloud release as version.php states it.
type Version struct {
	Parts   []int  // $OC_Version, e.g. 33, 0, 0, 16
	String  string // $OC_VersionString, e.g. "33.0.0"
	Channel string // $OC_Channel
}

// Major is the major release, 0 when unknown.
func (v Version) Major() int {
	if len(v.Parts) == 0 {
		return 0
	}
	return v.Parts[0]
}

// atLeast reports whether v is the release given by parts or a later one;
// an unknown version is the newest.
func (v Version) atLeast(parts ...int) bool {
	if len(v.Parts) == 0 {
		return true
	}
	for i, p := range parts {
		x := 0
		if i < len(v.Parts) {
			x = v.Parts[i]
		}
		if x != p {
			return x > p
		}
	}
	return true
}

// NewInstall returns the installation at root with the apps roots and
// data directory given (none: ROOT/apps), reading only its version.php.
// OpenInstall reads them from Nextcloud's configuration as Nextcloud does.
func NewInstall(root string, appsRoots []string, dataDir string) *Install {
	if root == "" {
		return &Install{}
	}
	in := &Install{Root: cleanAbs(root), links: &appLinks{}}
	in.Version, _ = readVersion(filepath.Join(in.Root, "version.php"))
	if len(appsRoots) == 0 {
		appsRoots = []string{filepath.Join(in.Root, "apps")}
	}
	// One directory listed twice (apps_paths with the same path twice, or
	// through a symbolic link) is one apps root: Nextcloud's getAllApps
	// keeps each app id once and findAppInDirectories finds the same
	// directory, so each app is checked once, and is no DUPLICATE_APP.
	seen := map[string]bool{}
	for _, a := range appsRoots {
		a = cleanAbs(a)
		key := a
		if r, err := filepath.EvalSymlinks(a); err == nil {
			key = r
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		in.AppsRoots = append(in.AppsRoots, a)
	}
	if dataDir != "" {
		in.DataDir = cleanAbs(dataDir)
	}
	return in
}

// OpenInstall returns the Nextcloud installation at root, with its apps
// roots and data directory read from Nextcloud's configuration as
// \OC\Config and lib/base.php read them (config/config.php, then every
// config/*.config.php; apps_paths entries with a path and a url, else
// ROOT/apps; datadirectory), unless appsRoots or dataDir are given (what
// integrityd's own configuration pins). A root without version.php is not
// Nextcloud; a configuration value that cannot be known without running
// PHP (getenv(), a condition) is an error naming the file, the line and
// the key, never a guess.
func OpenInstall(root string, appsRoots []string, dataDir string) (*Install, error) {
	if _, err := os.Stat(filepath.Join(root, "version.php")); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no version.php: not a Nextcloud installation (the root is the directory that holds version.php, index.php and core/)", root)
	} else if err != nil {
		return nil, fmt.Errorf("read version: %w", err)
	}
	// OC::$SERVERROOT is lib/base.php's __DIR__ less "/lib": symbolic
	// links resolved. The Checker, apps_paths with OC::$SERVERROOT and the
	// exclusions all work on that path, and so does integrityd.
	root = resolved(root)
	v, err := readVersion(filepath.Join(root, "version.php"))
	if err != nil {
		return nil, err
	}
	var cfg *phpconf.Config
	if len(appsRoots) == 0 || dataDir == "" {
		if cfg, err = phpconf.Load(filepath.Join(root, "config"), root, v.Major()); err != nil {
			return nil, fmt.Errorf("%w (or set apps_path and data_dir in integrityd's configuration)", err)
		}
		if len(appsRoots) == 0 {
			aps, err := cfg.AppsPaths()
			if err != nil {
				return nil, err
			}
			for _, a := range aps {
				p := a.Path
				if !filepath.IsAbs(p) {
					// PHP resolves a relative path against the working
					// directory of the web server: not knowable here.
					return nil, fmt.Errorf("apps_paths: %q is not an absolute path: set apps_path in integrityd's configuration", p)
				}
				appsRoots = append(appsRoots, p)
			}
		}
		if _, set := cfg.Value("datadirectory"); set && dataDir == "" {
			// (unset, it is ROOT/data, which core never checks anyway)
			if dataDir, err = cfg.DataDir(); err != nil {
				return nil, err
			}
		}
	}
	// The walk sees the resolved root: apps roots and the data directory
	// below it are compared as resolved paths too.
	for i, a := range appsRoots {
		appsRoots[i] = resolved(a)
	}
	if dataDir != "" {
		dataDir = resolved(dataDir)
	}
	in := NewInstall(root, appsRoots, dataDir)
	in.Version, in.conf = v, cfg
	return in, nil
}

// resolved is p, absolute, with symbolic links resolved when it exists.
func resolved(p string) string {
	p = cleanAbs(p)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// readVersion reads version.php as PHP evaluates it. What it does not set
// (a test tree's minimal version.php) stays zero; a syntax error, or a
// file that cannot be read, is an error.
func readVersion(path string) (Version, error) {
	var v Version
	data, err := fsutil.ReadLimited(path, 1<<20)
	if err != nil {
		return v, fmt.Errorf("read version: %w", err)
	}
	sc, err := phpconf.Eval(path, data, phpconf.Env{File: path})
	if err != nil {
		return v, fmt.Errorf("read version: %w", err)
	}
	if x, ok := sc.Var("OC_Version"); ok {
		if a, ok := x.Arr(); ok {
			for i := 0; i < a.Len(); i++ {
				_, e := a.Entry(i)
				n, ok := e.Int()
				if !ok {
					break
				}
				v.Parts = append(v.Parts, int(n))
			}
		}
	}
	if x, ok := sc.Var("OC_VersionString"); ok {
		v.String, _ = x.Str()
	}
	if x, ok := sc.Var("OC_Channel"); ok {
		v.Channel, _ = x.Str()
	}
	return v, nil
}

// ReadVersion reads root/version.php (zero when it cannot be read).
func ReadVersion(root string) Version {
	v, _ := readVersion(filepath.Join(root, "version.php"))
	return v
}

// Enforced reports whether Nextcloud enforces the check on this install
// (Checker::isCodeCheckEnforced): not on the "git" channel or an empty one
// (the channel of version.php, or config's updater.release.channel: any
// value before 31, one of beta, stable, enterprise, git from 31 on), nor
// when integrity.check.disabled is set (the boolean true before 29, any
// truthy value from 29 on). The channel is returned for messages.
func (in *Install) Enforced() (bool, string, error) {
	v, err := readVersion(filepath.Join(in.Root, "version.php"))
	if err != nil {
		return false, "", err
	}
	cfg := in.conf
	if cfg == nil {
		if cfg, err = phpconf.Load(filepath.Join(in.Root, "config"), in.Root, v.Major()); err != nil {
			return false, v.Channel, err
		}
	}
	channel, err := cfg.Channel(&phpconf.Version{Version: v.Parts, VersionString: v.String, Channel: v.Channel})
	if err != nil {
		return false, v.Channel, err
	}
	if channel == "" || channel == "git" {
		return false, channel, nil
	}
	disabled, err := cfg.IntegrityCheckDisabled(v.Major())
	if err != nil {
		return false, channel, err
	}
	return !disabled, channel, nil
}

// skipName reports whether a file is excluded by its name alone
// (ExcludeFileByNameFilterIterator of the install's release).
func (in *Install) skipName(name string) bool {
	if name == initSyncLock && !in.Version.atLeast(initSyncLockSince...) {
		return false
	}
	return excludedNames[name] || webappPattern.MatchString(name)
}

// initSyncLock is the official Docker image's lock file, excluded since
// nextcloud/server#48268 (master for 31, backported to stable30: first in
// 30.0.1); earlier releases report it as an EXTRA_FILE.
const initSyncLock = "nextcloud-init-sync.lock"

var initSyncLockSince = []int{30, 0, 1}

// ForInstall is s as a scope of in (a copy of s's install with other
// settings or another release).
func (s *Scope) ForInstall(in *Install) *Scope {
	c := *s
	c.in = in
	return &c
}

// Core returns the core scope.
func (in *Install) Core() *Scope {
	return &Scope{Name: "core", Dir: in.Root, core: true, in: in}
}

// App returns the scope of app id at dir; an empty dir means the copy
// Nextcloud loads (see Apps), else the first apps root.
func (in *Install) App(id, dir string) *Scope {
	if dir == "" && len(in.AppsRoots) == 0 {
		dir = id
	} else if dir == "" {
		dir = filepath.Join(in.AppsRoots[0], id)
		if c := in.copies(id); len(c) > 0 {
			dir = c[loadedCopy(c)].dir
		}
	}
	sc := &Scope{Name: id, Dir: cleanAbs(dir), in: in}
	if base, parent := filepath.Base(sc.Dir), filepath.Dir(sc.Dir); id == base+"@"+parent {
		sc.id = base // a copy Nextcloud does not load (see Apps)
	}
	return sc
}

// appCopy is one apps root's copy of an app.
type appCopy struct {
	root, dir string
	isDir     bool
	version   string // <version> of appinfo/info.xml, "" if none
}

// copies lists the apps roots that have something named id, as
// OC_App::findAppInDirectories does (file_exists: a file counts, a
// dangling symlink does not).
func (in *Install) copies(id string) []appCopy {
	var out []appCopy
	for _, r := range in.AppsRoots {
		dir := filepath.Join(r, id)
		fi, err := os.Stat(dir)
		if err != nil {
			continue
		}
		c := appCopy{root: r, dir: dir, isDir: fi.IsDir()}
		if c.isDir {
			c.version = appVersion(dir)
		}
		out = append(out, c)
	}
	return out
}

// loadedCopy is the copy Nextcloud loads: the first with the highest
// version by PHP's version_compare.
func loadedCopy(c []appCopy) int {
	best := 0
	for i := 1; i < len(c); i++ {
		if phpcompat.VersionCompare(c[i].version, c[best].version) > 0 {
			best = i
		}
	}
	return best
}

// VersionFile is the key of the file that states the scope's release:
// version.php for core, appinfo/info.xml for an app. Both are in the
// scope's manifest: with no finding on it, the release is the signed one.
func (s *Scope) VersionFile() string {
	if s.core {
		return "version.php"
	}
	return infoXML
}

// Release is the scope's release as its VersionFile states it, "" when it
// cannot be read: core's $OC_Version ("33.0.0.16", finer than
// $OC_VersionString), an app's <version>.
func (s *Scope) Release() string {
	if !s.core {
		return appVersion(s.Dir)
	}
	v, err := readVersion(filepath.Join(s.Dir, "version.php"))
	if err != nil || len(v.Parts) == 0 {
		return v.String
	}
	parts := make([]string, len(v.Parts))
	for i, n := range v.Parts {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ".")
}

// CompareReleases compares two releases as Nextcloud does (PHP's
// version_compare): -1, 0 or 1.
func CompareReleases(a, b string) int { return phpcompat.VersionCompare(a, b) }

// appVersion is the <version> of dir/appinfo/info.xml, "" when it cannot
// be read (Nextcloud's getAppVersionByPath then has no version either).
func appVersion(dir string) string {
	data, err := fsutil.ReadLimited(filepath.Join(dir, infoXML), 1<<20)
	if err != nil {
		return ""
	}
	var info struct {
		Version string `xml:"version"`
	}
	if xml.Unmarshal(data, &info) != nil {
		return ""
	}
	return strings.TrimSpace(info.Version)
}

// Apps lists the apps Nextcloud checks (runInstanceVerification): every
// directory of an apps root that has appinfo/info.xml (OC_App::getAllApps),
// checked when it is shipped (core/shipped.json) or carries
// appinfo/signature.json. An app id in several apps roots is the copy
// with the highest <version> (findAppInDirectories); integrityd also
// checks every other copy, as scope "ID@APPSROOT", when any copy is
// checked, and reports the duplicate on each (DUPLICATE_APP). An apps
// root that cannot be listed is skipped, as in Nextcloud, and returned in
// warnings.
func (in *Install) Apps() (apps []*Scope, warnings []error, err error) {
	shipped, err := in.shipped()
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	var ids []string
	for _, root := range in.AppsRoots {
		ents, err := os.ReadDir(root)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				warnings = append(warnings, fmt.Errorf("list apps: %w (Nextcloud skips this apps root too)", err))
			}
			continue
		}
		for _, e := range ents {
			id := e.Name()
			if strings.HasPrefix(id, ".") || seen[id] {
				continue
			}
			dir := filepath.Join(root, id)
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				continue
			}
			if fi, err := os.Stat(filepath.Join(dir, infoXML)); err != nil && notThere(err) || err == nil && !fi.Mode().IsRegular() {
				continue // not an app (a leftover directory)
			}
			// A directory integrityd cannot enter (a one-shot check as a
			// user who is not the web server's) may be an app Nextcloud
			// checks: it is checked, and fails, rather than left out.
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		copies := in.copies(id)
		if len(copies) == 0 {
			continue // gone since the listing
		}
		loaded := loadedCopy(copies)
		checked := shipped[id]
		for _, c := range copies {
			checked = checked || c.isDir && hasManifest(c.dir)
		}
		if !checked {
			continue
		}
		note := dupNote(id, copies, loaded)
		for i, c := range copies {
			if !c.isDir {
				continue
			}
			sc := &Scope{Name: id, Dir: c.dir, in: in, dupNote: note}
			if i != loaded {
				sc.Name, sc.id = id+"@"+c.root, id
			}
			apps = append(apps, sc)
		}
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	dirs := make([]string, len(apps))
	for i, a := range apps {
		dirs[i] = a.Dir
	}
	in.links.set(dirs)
	return apps, warnings, nil
}

// hasManifest reports whether an app directory has appinfo/signature.json
// (any kind of file: a symlink or a FIFO there is checked, and fails).
// When that cannot be told (the directory cannot be entered), it answers
// true: the scope is checked and its check reports why it could not be.
func hasManifest(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, "appinfo", "signature.json"))
	return err == nil || !notThere(err)
}

// notThere reports whether err says a path does not exist (ENOENT, or a
// file where a directory was expected), as opposed to one that could not
// be looked at (EACCES, EIO...).
func notThere(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// dupNote describes the copies of an app found in several apps roots (""
// for one copy).
func dupNote(id string, copies []appCopy, loaded int) string {
	if len(copies) < 2 {
		return ""
	}
	ver := func(c appCopy) string {
		if c.version == "" {
			return "no version"
		}
		return "version " + c.version
	}
	var others []string
	for i, c := range copies {
		if i != loaded {
			others = append(others, fmt.Sprintf("%s (%s)", c.dir, ver(c)))
		}
	}
	return fmt.Sprintf("app %s is in %d apps roots: Nextcloud loads %s (%s); also %s", id, len(copies),
		copies[loaded].dir, ver(copies[loaded]), strings.Join(others, ", "))
}

func (in *Install) shipped() (map[string]bool, error) {
	path := filepath.Join(in.Root, "core", "shipped.json")
	data, err := fsutil.ReadLimited(path, 4<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read shipped apps: %w", err)
	}
	var v struct {
		ShippedApps []string `json:"shippedApps"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		// A damaged shipped.json is reported as a core finding (it is a
		// signed file); the apps that carry a signature are still checked.
		return map[string]bool{}, nil
	}
	m := map[string]bool{}
	for _, a := range v.ShippedApps {
		m[a] = true
	}
	return m, nil
}

// MimetypeInput reports whether a change at the absolute path p can change
// what core/js/mimetypelist.js must hash to (mimetypelist.IsInput), so
// that the daemon rechecks that file.
func (in *Install) MimetypeInput(p string) bool {
	return mimetypelist.IsInput(in.Root, in.Version.Major(), p)
}
