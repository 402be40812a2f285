package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
)

// Expected is a scope's verified manifest, indexed for rechecking parts of
// the tree: one sorted slice of raw hashes (no map), whose keys are the
// paths that findings for expected files share.
type Expected struct {
	ents []expEntry // sorted by key
}

// expEntry is one file the manifest lists. odd holds the manifest's value
// when it is not a lowercase hex SHA-512 (no content matches it).
type expEntry struct {
	key  string
	hash finding.Hash
	odd  string
}

func (e expEntry) oddDetail() string {
	if e.odd == "" {
		return ""
	}
	return fmt.Sprintf("the manifest's hash %.140q is not a lowercase hex SHA-512", e.odd)
}

// NewExpected indexes the hashes of m that s checks.
func (s *Scope) NewExpected(m *Manifest) *Expected {
	// Shared with the manifest (neither changes them) unless the scope
	// leaves some out.
	ents := m.ents
	for i, e := range m.ents {
		if !s.expects(e.key) {
			ents = append(make([]expEntry, 0, len(m.ents)-1), m.ents[:i]...)
			for _, e := range m.ents[i+1:] {
				if s.expects(e.key) {
					ents = append(ents, e)
				}
			}
			break
		}
	}
	return &Expected{ents: ents}
}

// Len is the number of files the manifest lists.
func (e *Expected) Len() int { return len(e.ents) }

// Has reports whether the manifest lists key.
func (e *Expected) Has(key string) bool {
	_, ok := lookup(e.ents, key)
	return ok
}

// Intern returns the manifest's own copy of key when it lists key (so
// that the daemon's findings share it), else key.
func (e *Expected) Intern(key string) string {
	if x, ok := lookup(e.ents, key); ok {
		return x.key
	}
	return key
}

// Covers reports whether e accounts for the file of f, a finding of
// another manifest of the same scope: a missing file that e does not
// list, or content (an INVALID_HASH or EXTRA_FILE's current hash) that e
// lists at that path. Other kinds are never covered.
func (e *Expected) Covers(f *finding.Finding) bool {
	switch f.Kind {
	case kind.FileMissing:
		return !e.Has(f.Path)
	case kind.InvalidHash, kind.ExtraFile:
		x, ok := lookup(e.ents, f.Path)
		return ok && x.odd == "" && !f.Current.IsZero() && x.hash == f.Current
	}
	return false
}

func (e *Expected) all() []expEntry { return e.ents }

// lookup finds key in ents (sorted by key).
func lookup(ents []expEntry, key string) (expEntry, bool) {
	if i, ok := lookupIndex(ents, key); ok {
		return ents[i], true
	}
	return expEntry{}, false
}

// lookupIndex is the position of key in ents (sorted by key).
func lookupIndex(ents []expEntry, key string) (int, bool) {
	i := sort.Search(len(ents), func(i int) bool { return ents[i].key >= key })
	return i, i < len(ents) && ents[i].key == key
}

// under returns the entries of key and of the files below it (all of them
// when key is ""), sorted.
func (e *Expected) under(key string) []expEntry {
	if key == "" {
		return e.ents
	}
	prefix := key + "/"
	i := sort.Search(len(e.ents), func(i int) bool { return e.ents[i].key >= prefix })
	j := i
	for j < len(e.ents) && strings.HasPrefix(e.ents[j].key, prefix) {
		j++
	}
	below := e.ents[i:j:j]
	if self, ok := lookup(e.ents, key); ok {
		// key sorts before its "/" prefix range; keep the slice sorted.
		return append([]expEntry{self}, below...)
	}
	return below
}

// Recheck checks key (a file or directory of the scope, "/"-separated,
// "" for the whole scope) and everything below it, exactly as a full
// Check would see them, and returns the findings for that part and the
// paths in it whose content can change without an event on them: symlinks
// (their targets) and files with more than one name (hard links).
func (s *Scope) Recheck(ctx context.Context, exp *Expected, key string) ([]finding.Finding, []string, error) {
	fs, links, _, err := s.RecheckDeferred(ctx, exp, key, 0)
	return fs, links, err
}

// RecheckDeferred is Recheck without hashing the regular files larger
// than over bytes: those are listed in deferred, with no finding (and
// none removed) for them, for the caller to Recheck apart, off its
// alerting path.
func (s *Scope) RecheckDeferred(ctx context.Context, exp *Expected, key string, over int64) (fs []finding.Finding, links, deferred []string, err error) {
	sc := s
	if over > 0 {
		in := *s.in
		in.Checker.deferOver = over
		c := *s
		c.in = &in
		sc = &c
	}
	reach := true
	if key != "" {
		var blocked bool
		if reach, blocked = sc.reachable(key); blocked {
			return nil, nil, nil, nil
		}
	}
	current, err := sc.current(ctx, key, reach)
	if err != nil {
		return nil, nil, nil, err
	}
	for k, st := range current {
		switch {
		case st.deferred:
			deferred = append(deferred, k)
		case st.link || st.nlink > 1:
			links = append(links, k)
		}
	}
	return s.compare(exp.under(key), current), links, deferred, nil
}

// current is what the walk of a full check finds at key and below; reach
// says whether the walk gets to key at all.
func (s *Scope) current(ctx context.Context, key string, reach bool) (map[string]fileState, error) {
	if key == "" {
		cur, err := s.hashTree(ctx, s.Dir, "")
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		return cur, err
	}
	current := map[string]fileState{}
	if !reach {
		return current, nil
	}
	p := s.Dir + "/" + key
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return current, nil
	case err != nil:
		current[key] = fileState{err: cleanErr(err)}
		return current, nil
	}
	switch act, f := s.classify(p, key, fi.Mode().Type()); act {
	case descend:
		return s.hashSubtree(ctx, key)
	case hashIt:
		st, err := newHasher(&s.in.Checker).file(ctx, f, s.special())
		if err != nil {
			return nil, err
		}
		current[key] = st
	}
	return current, nil
}

// reachable reports whether the walk of a full check gets to key: no
// ancestor is excluded, a symlink or not a directory. blocked means an
// ancestor (or the scope directory) cannot be listed: the walk reports
// that directory and nothing below it.
func (s *Scope) reachable(key string) (ok, blocked bool) {
	if s.adminExcluded(key) {
		return false, false
	}
	p := s.Dir
	if !listable(p) {
		return false, true
	}
	parts := strings.Split(key, "/")
	for _, part := range parts[:len(parts)-1] {
		if part == "" || part == "." || part == ".." {
			return false, false
		}
		p += "/" + part
		if s.walkExcluded(p) {
			return false, false
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			return false, false
		}
		if !listable(p) {
			return false, true
		}
	}
	last := parts[len(parts)-1]
	return last != "" && last != "." && last != "..", false
}

// listable reports whether the directory dir can be read, as the walk
// needs (a directory that can be entered but not read hides its files).
func listable(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	_, err = f.Readdirnames(1)
	f.Close()
	return err == nil || err == io.EOF
}

// hashSubtree hashes the files below the directory key, with keys
// relative to the scope.
func (s *Scope) hashSubtree(ctx context.Context, key string) (map[string]fileState, error) {
	sub, err := s.hashTree(ctx, s.Dir+"/"+key, key)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		// The directory itself could not be read: the same entry, with
		// the same message, as the walk of a full check makes.
		return map[string]fileState{key + "/": {err: fmt.Errorf("directory cannot be read: %w", errors.Unwrap(err))}}, nil
	}
	return sub, nil
}
