package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Install describes a Nextcloud installation on disk.
type Install struct {
	Root      string   // server root (where version.php is)
	AppsRoots []string // apps directories; default Root/apps
	DataDir   string   // a data directory to exclude from core, if custom
	// Exclude lists absolute paths the admin chose not to check: neither
	// walked nor expected. This weakens the check.
	Exclude []string
	// Checker says how files are hashed.
	Checker Checker
}

// NewInstall returns the installation at root. Apps roots and the data
// directory come from config/config.php when it can be read (best effort:
// only literal strings are understood); pass non-empty appsRoots or
// dataDir to override.
func NewInstall(root string, appsRoots []string, dataDir string) *Install {
	if root == "" {
		return &Install{}
	}
	in := &Install{Root: cleanAbs(root)}
	cfg := readConfig(filepath.Join(in.Root, "config", "config.php"))
	if len(appsRoots) == 0 {
		appsRoots = cfg.appsPaths
	}
	if len(appsRoots) == 0 {
		appsRoots = []string{filepath.Join(in.Root, "apps")}
	}
	for _, a := range appsRoots {
		in.AppsRoots = append(in.AppsRoots, cleanAbs(a))
	}
	if dataDir == "" {
		dataDir = cfg.dataDir
	}
	if dataDir != "" {
		in.DataDir = cleanAbs(dataDir)
	}
	return in
}

type phpConfig struct {
	appsPaths []string
	dataDir   string
	disabled  bool
}

var (
	reDataDir  = regexp.MustCompile(`'datadirectory'\s*=>\s*'([^'\\]*)'`)
	reAppsPath = regexp.MustCompile(`'path'\s*=>\s*'([^'\\]*)'`)
	reDisabled = regexp.MustCompile(`'integrity\.check\.disabled'\s*=>\s*true`)
)

// readConfig extracts what matters to the check from config.php.
func readConfig(path string) phpConfig {
	var c phpConfig
	data, err := readLimited(path, 4<<20)
	if err != nil {
		return c
	}
	s := string(data)
	if m := reDataDir.FindStringSubmatch(s); m != nil {
		c.dataDir = m[1]
	}
	if i := strings.Index(s, "'apps_paths'"); i >= 0 {
		// The apps_paths array ends where its brackets balance.
		block, depth, started := s[i:], 0, false
		for j := 0; j < len(block); j++ {
			switch block[j] {
			case '(', '[':
				depth++
				started = true
			case ')', ']':
				depth--
			}
			if started && depth == 0 {
				block = block[:j]
				break
			}
		}
		for _, m := range reAppsPath.FindAllStringSubmatch(block, -1) {
			c.appsPaths = append(c.appsPaths, m[1])
		}
	}
	c.disabled = reDisabled.MatchString(s)
	return c
}

var reChannel = regexp.MustCompile(`\$OC_Channel\s*=\s*'([^']*)'`)

// Enforced reports whether Nextcloud enforces the check on this install:
// not on the "git" channel or an empty one, nor when config.php sets
// integrity.check.disabled. The channel is returned for messages.
func (in *Install) Enforced() (bool, string, error) {
	data, err := readLimited(filepath.Join(in.Root, "version.php"), 1<<20)
	if err != nil {
		return false, "", fmt.Errorf("read version: %w", err)
	}
	channel := ""
	if m := reChannel.FindSubmatch(data); m != nil {
		channel = string(m[1])
	}
	if channel == "" || channel == "git" {
		return false, channel, nil
	}
	if readConfig(filepath.Join(in.Root, "config", "config.php")).disabled {
		return false, channel, nil
	}
	return true, channel, nil
}

// Scope is one signed unit: core, or one app.
type Scope struct {
	Name string // "core" or the app id
	Dir  string // absolute directory the manifest's keys are relative to
	core bool
	in   *Install
}

// Core returns the core scope.
func (in *Install) Core() *Scope {
	return &Scope{Name: "core", Dir: in.Root, core: true, in: in}
}

// App returns the scope of app id at dir; an empty dir means the first
// apps root that has it (or the first apps root).
func (in *Install) App(id, dir string) *Scope {
	if dir == "" && len(in.AppsRoots) == 0 {
		dir = id
	} else if dir == "" {
		dir = filepath.Join(in.AppsRoots[0], id)
		for _, r := range in.AppsRoots {
			if fi, err := os.Stat(filepath.Join(r, id)); err == nil && fi.IsDir() {
				dir = filepath.Join(r, id)
				break
			}
		}
	}
	return &Scope{Name: id, Dir: cleanAbs(dir), in: in}
}

// Install is the installation the scope belongs to.
func (s *Scope) Install() *Install { return s.in }

// ManifestPath is where the scope's signature.json lives.
func (s *Scope) ManifestPath() string {
	if s.core {
		return filepath.Join(s.Dir, "core", "signature.json")
	}
	return filepath.Join(s.Dir, "appinfo", "signature.json")
}

// notChecked are the directories of the server root that no scope
// checks (Nextcloud's Checker skips them in core; "apps" unless it is an
// apps root).
var notChecked = map[string]bool{"data": true, "themes": true, "config": true, "apps": true, "assets": true,
	"lost+found": true, "updater": true, "_oc_upgrade": true}

// Excluded reports whether no scope checks the absolute path p, nor
// anything below it: Nextcloud's excluded directories of the server root,
// the data directory, and what the admin excluded. The apps roots are not
// excluded (their apps are scopes). The walk and the watcher share this
// one rule.
func (in *Install) Excluded(p string) bool {
	if in.Root == "" { // a standalone app (sign-app without --root)
		return false
	}
	for _, e := range in.Exclude {
		if p == e {
			return true
		}
	}
	if in.DataDir != "" && p == in.DataDir {
		return true
	}
	if in.IsAppsRoot(p) {
		return false
	}
	i := strings.LastIndexByte(p, '/')
	return i >= 0 && p[:i] == in.Root && notChecked[p[i+1:]]
}

// IsAppsRoot reports whether p is one of the apps roots.
func (in *Install) IsAppsRoot(p string) bool {
	for _, a := range in.AppsRoots {
		if p == a {
			return true
		}
	}
	return false
}

// walkExcluded reports whether the walk of s skips the whole path p: what
// no scope checks, and the apps roots, which belong to their apps.
func (s *Scope) walkExcluded(p string) bool {
	return s.in.Root != "" && (s.in.Excluded(p) || s.in.IsAppsRoot(p))
}

// adminExcluded reports whether key is at or below a path the admin
// excluded.
func (s *Scope) adminExcluded(key string) bool {
	p := s.Dir + "/" + key
	for _, e := range s.in.Exclude {
		if p == e || strings.HasPrefix(p, e+"/") {
			return true
		}
	}
	return false
}

// Apps lists the apps Nextcloud checks: every directory in an apps root
// (the first root wins for a duplicate id) that is shipped (listed in
// core/shipped.json) or carries appinfo/signature.json.
func (in *Install) Apps() ([]*Scope, error) {
	shipped, err := in.shipped()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var apps []*Scope
	for _, root := range in.AppsRoots {
		ents, err := os.ReadDir(root)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("list apps: %w", err)
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
			seen[id] = true
			sc := &Scope{Name: id, Dir: dir, in: in}
			if _, err := os.Lstat(sc.ManifestPath()); shipped[id] || err == nil {
				apps = append(apps, sc)
			}
		}
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	return apps, nil
}

func (in *Install) shipped() (map[string]bool, error) {
	path := filepath.Join(in.Root, "core", "shipped.json")
	data, err := readLimited(path, 4<<20)
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

// LoadManifest reads and verifies the scope's signature.json; a manifest
// that cannot be trusted is the scope's EXCEPTION finding.
func (s *Scope) LoadManifest(t *Trust) (*Manifest, *Finding) {
	path := s.ManifestPath()
	f, err := openRegular(path)
	if err != nil {
		return nil, invalidSignature(s.Name, MsgNoSignature, fmt.Sprintf("open %s: %v", path, cleanErr(err)))
	}
	defer f.Close()
	m, err := ParseManifest(f, path)
	if err != nil {
		return nil, invalidSignature(s.Name, MsgNoSignature, err.Error())
	}
	if ex := m.Verify(t, s.Name); ex != nil {
		if ex.Detail == "" {
			ex.Detail = path
		} else {
			ex.Detail = path + ": " + ex.Detail
		}
		return nil, ex
	}
	return m, nil
}

// expects reports whether the scope checks the manifest's key (core drops
// updater/, which Nextcloud replaces after its check; the admin's
// exclusions drop theirs).
func (s *Scope) expects(key string) bool {
	return !(s.core && strings.HasPrefix(key, "updater/")) && !s.adminExcluded(key)
}

// Check verifies the scope's manifest and compares every file with it.
func (s *Scope) Check(ctx context.Context, t *Trust) (ScopeResult, error) {
	res := ScopeResult{Scope: s.Name}
	// Hash while the manifest is parsed and verified; a bad manifest
	// cancels the hashing.
	type hashed struct {
		files map[string]fileState
		err   error
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan hashed, 1)
	go func() {
		files, err := s.hashTree(hctx, s.Dir, "")
		done <- hashed{files, err}
	}()
	m, ex := s.LoadManifest(t)
	if ex != nil {
		cancel()
		<-done
		res.Exception = ex
		return res, nil
	}
	h := <-done
	current, err := h.files, h.err
	if err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		f := ListException(s.Name, err)
		res.Exception = &f
		return res, nil
	}
	res.Findings = compare(s.Name, s.NewExpected(m).all(), current)
	for _, st := range current {
		if !st.skip {
			res.Files++
			res.Bytes += st.size
		}
	}
	return res, nil
}

// linkNote says why a file with several names is a finding ("" when it
// has one): inotify reports a write on the directory of the name written
// through, and the other name may be in a directory nobody watches.
func (st fileState) linkNote() string {
	if st.nlink <= 1 {
		return ""
	}
	return fmt.Sprintf("file has %d links: a write through another name is not seen", st.nlink)
}

// compare matches files by path (Nextcloud compares hash values only, and
// so misses a deleted file whose content equals another's, or two files
// with swapped contents). expected is sorted by key. A file with several
// names (hard links) is a HARD_LINK finding when nothing else is wrong
// with it, else its INVALID_HASH or EXTRA_FILE says so in its Message:
// one finding per path.
func compare(scope string, expected []expEntry, current map[string]fileState) []Finding {
	var out []Finding
	var badDirs []string
	for _, key := range sortedKeys(current) {
		st := current[key]
		if st.skip {
			delete(current, key) // so that an expected key there is missing
			continue
		}
		if st.deferred {
			continue // not hashed now: the caller checks it apart
		}
		if strings.HasSuffix(key, "/") {
			badDirs = append(badDirs, key)
			out = append(out, Finding{Scope: scope, Kind: KindException, Path: strings.TrimSuffix(key, "/"),
				Class: readErrorClass, Message: st.err.Error()})
			continue
		}
		e, ok := lookup(expected, key)
		switch {
		case !ok:
			f := Finding{Scope: scope, Kind: ExtraFile, Path: key, Current: st.hash, Message: st.linkNote()}
			if st.err != nil {
				f.Message = st.err.Error()
			}
			out = append(out, f)
		case st.err != nil:
			out = append(out, Finding{Scope: scope, Kind: KindException, Path: e.key, Expected: e.hash,
				Class: readErrorClass, Message: st.err.Error(), Detail: e.oddDetail()})
		case st.hash != e.hash || e.odd != "":
			out = append(out, Finding{Scope: scope, Kind: InvalidHash, Path: e.key, Expected: e.hash, Current: st.hash,
				Message: st.linkNote(), Detail: e.oddDetail()})
		case st.nlink > 1:
			out = append(out, Finding{Scope: scope, Kind: HardLink, Path: e.key, Expected: e.hash, Current: st.hash,
				Message: st.linkNote()})
		}
	}
	for _, e := range expected {
		if _, ok := current[e.key]; ok || underAny(e.key, badDirs) {
			continue
		}
		out = append(out, Finding{Scope: scope, Kind: FileMissing, Path: e.key, Expected: e.hash, Detail: e.oddDetail()})
	}
	SortFindings(out)
	return out
}

func underAny(key string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(key, d) {
			return true
		}
	}
	return false
}

// readErrorClass names file-level exceptions (a file or directory that
// could not be read); Nextcloud has no such class, it would fail the scan.
const readErrorClass = `integrityd\ReadException`

// ListException is the scope-level finding for a scope whose directory
// cannot be listed.
func ListException(scope string, err error) Finding {
	return Finding{Scope: scope, Kind: KindException, Class: readErrorClass, Message: "Files could not be listed.", Detail: err.Error()}
}
