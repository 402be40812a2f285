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

// ManifestPath is where the scope's signature.json lives.
func (s *Scope) ManifestPath() string {
	if s.core {
		return filepath.Join(s.Dir, "core", "signature.json")
	}
	return filepath.Join(s.Dir, "appinfo", "signature.json")
}

// excluded is the set of whole paths Nextcloud skips while walking.
func (s *Scope) excluded() map[string]bool {
	r := s.in.Root
	ex := map[string]bool{}
	if r == "" { // a standalone app (sign-app without --root)
		return ex
	}
	for _, d := range []string{"data", "themes", "config", "apps", "assets", "lost+found", "updater", "_oc_upgrade"} {
		ex[r+"/"+d] = true
	}
	if s.in.DataDir != "" {
		ex[s.in.DataDir] = true
	}
	for _, a := range s.in.AppsRoots {
		ex[a] = true
	}
	for _, e := range s.in.Exclude {
		ex[e] = true
	}
	return ex
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

// LoadManifest reads and verifies the scope's signature.json.
func (s *Scope) LoadManifest(t *Trust) (*Manifest, *Exception) {
	path := s.ManifestPath()
	f, err := openRegular(path)
	if err != nil {
		return nil, invalidSignature(MsgNoSignature, fmt.Sprintf("open %s: %v", path, cleanErr(err)))
	}
	defer f.Close()
	m, err := ParseManifest(f, path)
	if err != nil {
		return nil, invalidSignature(MsgNoSignature, err.Error())
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

// Expected returns the manifest's hashes that this scope checks (core
// drops updater/, which Nextcloud replaces after its check).
func (s *Scope) Expected(m *Manifest) map[string]string {
	if !s.core && len(s.in.Exclude) == 0 {
		return m.Hashes
	}
	exp := make(map[string]string, len(m.Hashes))
	for k, v := range m.Hashes {
		if (s.core && strings.HasPrefix(k, "updater/")) || s.adminExcluded(k) {
			continue
		}
		exp[k] = v
	}
	return exp
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
		files, err := s.hashAll(hctx)
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
		res.Exception = &Exception{Class: f.Class, Message: f.Message, Detail: f.Detail}
		return res, nil
	}
	res.Findings = compare(s.Name, s.Expected(m), current)
	for _, st := range current {
		if !st.skip {
			res.Files++
			res.Bytes += st.size
		}
	}
	return res, nil
}

// hashAll hashes every file of the scope.
func (s *Scope) hashAll(ctx context.Context) (map[string]fileState, error) {
	ht := ""
	if s.core {
		ht = s.Dir + "/.htaccess"
	}
	return hashTree(ctx, s.Dir, "", s.excluded(), ht)
}

// compare matches files by path (Nextcloud compares hash values only, and
// so misses a deleted file whose content equals another's, or two files
// with swapped contents).
func compare(scope string, expected map[string]string, current map[string]fileState) []Finding {
	var out []Finding
	var badDirs []string
	for _, key := range sortedKeys(current) {
		st := current[key]
		if st.skip {
			delete(current, key) // so that an expected key there is missing
			continue
		}
		if strings.HasSuffix(key, "/") {
			badDirs = append(badDirs, key)
			out = append(out, Finding{Scope: scope, Kind: KindException, Path: strings.TrimSuffix(key, "/"),
				Class: readErrorClass, Message: st.err.Error()})
			continue
		}
		want, ok := expected[key]
		switch {
		case !ok:
			f := Finding{Scope: scope, Kind: ExtraFile, Path: key, Current: st.hash}
			if st.err != nil {
				f.Message = st.err.Error()
			}
			out = append(out, f)
		case st.err != nil:
			out = append(out, Finding{Scope: scope, Kind: KindException, Path: key, Expected: want,
				Class: readErrorClass, Message: st.err.Error()})
		case st.hash != want:
			out = append(out, Finding{Scope: scope, Kind: InvalidHash, Path: key, Expected: want, Current: st.hash})
		}
	}
	for _, key := range sortedKeys(expected) {
		if _, ok := current[key]; ok || underAny(key, badDirs) {
			continue
		}
		out = append(out, Finding{Scope: scope, Kind: MissingFile, Path: key, Expected: expected[key]})
	}
	sortFindings(out)
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
