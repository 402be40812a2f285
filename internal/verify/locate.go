package verify

import (
	"path/filepath"
	"strings"
	"sync"
)

// Location is where a path is among an install's apps roots
// (Install.Locate).
type Location struct {
	// AppsRoot is the deepest apps root that holds the path below it (""
	// when none does). App is the app directory the path is in, one level
	// below AppsRoot ("" when the path is itself an apps root, or is in
	// none), and Rest the path relative to App ("" for App itself).
	AppsRoot, App, Rest string
	// Target is, for a path below the target of a symlinked app
	// directory, that target (the path was found through App, the link,
	// which is where Nextcloud checks the app).
	Target string
	// Above says the path is an apps root or a directory above one: the
	// set of apps may change with it.
	Above bool
}

// Locate says where abs (absolute, clean) is among the apps roots: the
// one rule for which app a path belongs to. The deepest apps root holding
// the path wins (with apps roots apps and apps/nested, a path below
// apps/nested/x is in app x of apps/nested, whatever the order of the
// roots); a path below the target of a symlinked app directory that Apps
// listed is in that app.
func (in *Install) Locate(abs string) Location {
	var loc Location
	for _, r := range in.AppsRoots {
		if abs == r || strings.HasPrefix(r, abs+"/") {
			loc.Above = true
		}
		if strings.HasPrefix(abs, r+"/") && len(r) > len(loc.AppsRoot) {
			loc.AppsRoot = r
		}
	}
	if loc.AppsRoot != "" {
		if in.IsAppsRoot(abs) {
			return loc // an apps root below another: no app's
		}
		id, rest, _ := strings.Cut(abs[len(loc.AppsRoot)+1:], "/")
		loc.App, loc.Rest = loc.AppsRoot+"/"+id, rest
		return loc
	}
	if real, app := in.links.find(abs); app != "" {
		loc.AppsRoot, loc.App, loc.Target = filepath.Dir(app), app, real
		loc.Rest = strings.TrimPrefix(strings.TrimPrefix(abs, real), "/")
	}
	return loc
}

// appLinks maps the targets of symlinked app directories (resolved) to
// the app directories, as Apps last found them. It is shared by the
// copies of an Install; safe for concurrent use.
type appLinks struct {
	mu sync.Mutex
	m  map[string]string // target -> app directory
}

// set records the symlinked app directories of dirs (replacing the
// previous record).
func (a *appLinks) set(dirs []string) {
	if a == nil {
		return
	}
	m := map[string]string{}
	for _, dir := range dirs {
		if r, err := filepath.EvalSymlinks(dir); err == nil && r != dir {
			m[r] = dir
		}
	}
	a.mu.Lock()
	a.m = m
	a.mu.Unlock()
}

// find returns the deepest recorded target holding p (or p itself) and
// its app directory.
func (a *appLinks) find(p string) (real, app string) {
	if a == nil {
		return "", ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for r, dir := range a.m {
		if (p == r || strings.HasPrefix(p, r+"/")) && len(r) > len(real) {
			real, app = r, dir
		}
	}
	return real, app
}
