package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// Expected is a scope's verified manifest, indexed for rechecking parts of
// the tree.
type Expected struct {
	hashes map[string]string
	keys   []string // sorted
}

// NewExpected indexes the hashes of m that s checks.
func (s *Scope) NewExpected(m *Manifest) *Expected {
	h := s.Expected(m)
	return &Expected{hashes: h, keys: sortedKeys(h)}
}

// Len is the number of files the manifest lists.
func (e *Expected) Len() int { return len(e.keys) }

// under returns the expected hashes of key and of the files below it
// (everything when key is "").
func (e *Expected) under(key string) map[string]string {
	if key == "" {
		return e.hashes
	}
	out := map[string]string{}
	if h, ok := e.hashes[key]; ok {
		out[key] = h
	}
	prefix := key + "/"
	for i := sort.SearchStrings(e.keys, prefix); i < len(e.keys) && strings.HasPrefix(e.keys[i], prefix); i++ {
		out[e.keys[i]] = e.hashes[e.keys[i]]
	}
	return out
}

// Recheck checks key (a file or directory of the scope, "/"-separated,
// "" for the whole scope) and everything below it, exactly as a full
// Check would see them, and returns the findings for that part and the
// symlinks in it (whose targets can change without an event on them).
func (s *Scope) Recheck(ctx context.Context, exp *Expected, key string) ([]Finding, []string, error) {
	current := map[string]fileState{}
	if key == "" {
		var err error
		if current, err = s.hashAll(ctx); err != nil {
			return nil, nil, err
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
	} else if reach, blocked := s.reachable(key); blocked {
		// Below a directory that cannot be listed: a full check does not
		// see it either; that directory's own EXCEPTION covers it.
		return nil, nil, nil
	} else if reach {
		p := s.Dir + "/" + key
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			current[key] = fileState{err: cleanErr(err)}
		case s.excluded()[p]:
		case fi.IsDir():
			if current, err = s.hashSubtree(ctx, key); err != nil {
				return nil, nil, err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				current[key] = fileState{link: true, skip: true} // not entered
				break
			}
			fallthrough
		default:
			if skipName(path.Base(key)) || skipKey(key) {
				break
			}
			st := fileState{err: errNotRegularMode(fi.Mode())}
			if fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0 {
				st = newHasher().hash(p, s.core && key == ".htaccess", true)
			}
			st.link = fi.Mode()&fs.ModeSymlink != 0
			current[key] = st
		}
	}
	var links []string
	for k, st := range current {
		if st.link {
			links = append(links, k)
		}
	}
	return compare(s.Name, exp.under(key), current), links, nil
}

func errNotRegularMode(m fs.FileMode) error {
	if m.IsRegular() {
		return nil
	}
	return &notRegularError{m}
}

type notRegularError struct{ mode fs.FileMode }

func (e *notRegularError) Error() string {
	return errNotRegular.Error() + " (" + modeName(e.mode) + ")"
}
func (e *notRegularError) Unwrap() error { return errNotRegular }

// reachable reports whether the walk of a full check gets to key: no
// ancestor is excluded, a symlink or not a directory. blocked means an
// ancestor (or the scope directory) cannot be listed: the walk reports
// that directory and nothing below it.
func (s *Scope) reachable(key string) (ok, blocked bool) {
	if s.adminExcluded(key) {
		return false, false
	}
	ex := s.excluded()
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
		if ex[p] {
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
	ht := ""
	if s.core {
		ht = s.Dir + "/.htaccess"
	}
	sub, err := hashTree(ctx, s.Dir+"/"+key, key, s.excluded(), ht)
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
