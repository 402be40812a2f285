package daemon

import (
	"maps"
	"strings"

	"github.com/integrityd/integrityd/internal/finding"
)

// findingSet is what the loop knows is wrong, by scope and path ("" for
// the scope itself), with the number of findings below each directory
// (so that a recheck of one file key looks at that key only). Only the
// loop touches it. A scope's map is shared with the last snapshot once
// published (share) and copied before it changes again (own): readers
// never see a change.
type findingSet struct {
	by     map[string]map[string]*finding.Finding
	shared map[string]bool
	dirs   map[string]map[string]int // scope -> directory key -> findings below
}

func newFindingSet() findingSet {
	return findingSet{by: map[string]map[string]*finding.Finding{}, shared: map[string]bool{}, dirs: map[string]map[string]int{}}
}

// get returns the finding of scope at path, or nil.
func (fs *findingSet) get(scope, path string) *finding.Finding { return fs.by[scope][path] }

// len is the number of findings of scope.
func (fs *findingSet) len(scope string) int { return len(fs.by[scope]) }

// put records f.
func (fs *findingSet) put(f finding.Finding) {
	m := fs.own(f.Scope)
	if _, ok := m[f.Path]; !ok {
		fs.count(f.Scope, f.Path, 1)
	}
	m[f.Path] = &f
}

// own returns the findings of scope, ready to be changed.
func (fs *findingSet) own(scope string) map[string]*finding.Finding {
	m := fs.by[scope]
	if m == nil {
		m = map[string]*finding.Finding{}
		fs.by[scope], fs.shared[scope] = m, false
		return m
	}
	if fs.shared[scope] {
		m = maps.Clone(m)
		fs.by[scope], fs.shared[scope] = m, false
	}
	return m
}

// count adds n to the counts of the directories above path.
func (fs *findingSet) count(scope, path string, n int) {
	dirs := fs.dirs[scope]
	if dirs == nil {
		dirs = map[string]int{}
		fs.dirs[scope] = dirs
	}
	for i := strings.LastIndexByte(path, '/'); i > 0; i = strings.LastIndexByte(path[:i], '/') {
		if dirs[path[:i]] += n; dirs[path[:i]] <= 0 {
			delete(dirs, path[:i])
		}
	}
}

// part returns the findings of scope at key and below.
func (fs *findingSet) part(scope, key string) map[string]*finding.Finding {
	cur := fs.by[scope]
	out := map[string]*finding.Finding{}
	if key != "" && fs.dirs[scope][key] == 0 {
		if f, ok := cur[key]; ok {
			out[key] = f
		}
		return out
	}
	for p, f := range cur {
		if under(p, key) {
			out[p] = f
		}
	}
	return out
}

// apply makes the transitions ts (diff's, for one scope) the findings;
// intern, if not nil, gives a new finding's path the string the manifest
// holds.
func (fs *findingSet) apply(scope string, ts []Transition, intern func(string) string) {
	m := fs.own(scope)
	for _, t := range ts {
		switch {
		case t.New == nil:
			delete(m, t.Old.Path)
			fs.count(scope, t.Old.Path, -1)
		case t.Old == nil:
			f := *t.New
			if intern != nil {
				f.Path = intern(f.Path)
			}
			m[f.Path] = &f
			fs.count(scope, f.Path, 1)
		default:
			f := *t.New
			f.Path = t.Old.Path
			m[f.Path] = &f
		}
	}
}

// drop forgets scope's findings and returns how many there were.
func (fs *findingSet) drop(scope string) int {
	n := len(fs.by[scope])
	delete(fs.by, scope)
	delete(fs.shared, scope)
	delete(fs.dirs, scope)
	return n
}

// share returns every scope's findings for a snapshot: they are not
// changed in place from now on.
func (fs *findingSet) share() map[string]map[string]*finding.Finding {
	out := make(map[string]map[string]*finding.Finding, len(fs.by))
	for name, m := range fs.by {
		out[name] = m
		fs.shared[name] = true
	}
	return out
}

// scopes returns the names of the scopes with findings.
func (fs *findingSet) scopes() []string {
	out := make([]string, 0, len(fs.by))
	for name := range fs.by {
		out = append(out, name)
	}
	return out
}
