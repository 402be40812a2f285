package verify

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/fsutil"
	"github.com/integrityd/integrityd/internal/kind"
)

// Scope is one signed unit: core, or one app.
type Scope struct {
	// Name is "core", the app id, or, for a copy of an app that Nextcloud
	// does not load because another apps root has a higher version,
	// "ID@APPSROOT".
	Name string
	Dir  string // absolute directory the manifest's keys are relative to
	core bool
	in   *Install
	// id is the app id the certificate must name ("" for Name).
	id string
	// dupNote says, when the app id is in several apps roots, which copy
	// Nextcloud loads (see Install.Apps); it goes on appinfo/info.xml.
	dupNote string
}

// certName is the name the scope's certificate must carry (or "core").
func (s *Scope) certName() string {
	if s.id != "" {
		return s.id
	}
	return s.Name
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

// LoadManifest reads and verifies the scope's signature.json; a manifest
// that cannot be trusted is the scope's EXCEPTION finding.
func (s *Scope) LoadManifest(t *Trust) (*Manifest, *finding.Finding) {
	path := s.ManifestPath()
	f, err := fsutil.OpenRegular(path)
	if err != nil {
		return nil, invalidSignature(s.Name, MsgNoSignature, fmt.Sprintf("open %s: %v", path, cleanErr(err)))
	}
	defer f.Close()
	m, err := ParseManifest(f, path)
	if err != nil {
		return nil, invalidSignature(s.Name, MsgNoSignature, err.Error())
	}
	if ex := m.Verify(t, s.certName()); ex != nil {
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

// checkWhole is Check holding the whole manifest: its entries, sorted
// for lookups, while the tree is hashed. Check falls back on it for a
// manifest whose hashes are not in key order.
func (s *Scope) checkWhole(ctx context.Context, t *Trust) (ScopeResult, error) {
	res := ScopeResult{Scope: s.Name, Dir: s.Dir}
	// Hash while the manifest is parsed and verified; a bad manifest
	// cancels the hashing.
	type hashed struct {
		files map[string]fileState
		err   error
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan hashed, 1)
	var match matched
	go func() {
		files, err := s.hashTreeMatch(hctx, s.Dir, "", &match)
		done <- hashed{files, err}
	}()
	m, ex := s.LoadManifest(t)
	if ex != nil {
		cancel()
		<-done
		res.Exception = ex
		return res, nil
	}
	res.Digest = m.Digest
	expected := s.NewExpected(m)
	// From here on, a file that matches is counted, not kept.
	match.exp.Store(expected)
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
	res.Findings = s.compareSeen(expected.all(), current, match.seen)
	res.Files, res.Bytes = match.files, match.bytes
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

// compare matches files by path (Nextcloud compares hash values through
// 30.0.1, and so misses a deleted file whose content equals another's, or
// two files with swapped contents; from 31.0.11 it compares by path; every
// release merges findings with identical hashes into one). expected is sorted by key. A file with several
// names (hard links) is a HARD_LINK finding when nothing else is wrong
// with it, else its INVALID_HASH or EXTRA_FILE says so in its Message:
// one finding per path.
func (s *Scope) compare(expected []expEntry, current map[string]fileState) []finding.Finding {
	return s.compareSeen(expected, current, nil)
}

// compareSeen is compare where seen (when not nil) marks, by position in
// expected, the files that matched and are not in current.
func (s *Scope) compareSeen(expected []expEntry, current map[string]fileState, seen []bool) []finding.Finding {
	scope := s.Name
	var out []finding.Finding
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
			out = append(out, finding.Finding{Scope: scope, Kind: kind.Exception, Path: strings.TrimSuffix(key, "/"),
				Class: ReadErrorClass, Message: st.err.Error()})
			continue
		}
		e, ok := lookup(expected, key)
		out = judge(out, scope, key, st, e, ok)
	}
	for i, e := range expected {
		if seen != nil && seen[i] {
			continue
		}
		if _, ok := current[e.key]; ok || underAny(e.key, badDirs) {
			continue
		}
		out = append(out, missing(scope, e))
	}
	out = s.noteDuplicate(out, expected, current)
	finding.Sort(out)
	return out
}

// judge appends the finding, if any, for the file key as the walk found
// it (st, not a directory's entry, not skipped or deferred), e its entry
// in the manifest when ok.
func judge(out []finding.Finding, scope, key string, st fileState, e expEntry, ok bool) []finding.Finding {
	switch {
	case !ok:
		f := finding.Finding{Scope: scope, Kind: kind.ExtraFile, Path: key, Current: st.hash, Message: st.linkNote()}
		if st.err != nil {
			f.Message = st.err.Error()
		}
		out = append(out, f)
	case st.err != nil:
		out = append(out, finding.Finding{Scope: scope, Kind: kind.Exception, Path: e.key, Expected: e.hash, ExpectedRaw: e.odd,
			Class: ReadErrorClass, Message: st.err.Error(), Detail: e.oddDetail()})
	case st.hash != e.hash || e.odd != "":
		out = append(out, finding.Finding{Scope: scope, Kind: kind.InvalidHash, Path: e.key, Expected: e.hash, ExpectedRaw: e.odd,
			Current: st.hash, Message: st.linkNote(), Detail: e.oddDetail()})
	case st.nlink > 1:
		out = append(out, finding.Finding{Scope: scope, Kind: kind.HardLink, Path: e.key, Expected: e.hash, Current: st.hash,
			Message: st.linkNote()})
	}
	return out
}

// missing is the FILE_MISSING finding of the manifest's entry e.
func missing(scope string, e expEntry) finding.Finding {
	return finding.Finding{Scope: scope, Kind: kind.FileMissing, Path: e.key, Expected: e.hash, ExpectedRaw: e.odd, Detail: e.oddDetail()}
}

// infoXML is the key the duplicate-app finding is reported on.
const infoXML = "appinfo/info.xml"

// noteDuplicate adds what is known of other copies of the app (Scope.dupNote)
// to the finding of appinfo/info.xml, or makes it a DUPLICATE_APP finding
// when nothing else is wrong with it, like linkNote: one finding per path.
// It applies only when info.xml is among the keys compared.
func (s *Scope) noteDuplicate(out []finding.Finding, expected []expEntry, current map[string]fileState) []finding.Finding {
	st, ok := current[infoXML]
	e, exp := lookup(expected, infoXML)
	return s.noteDuplicateOf(out, st, ok, e, exp)
}

// noteDuplicateOf is noteDuplicate where st (when ok) is what the walk
// found of info.xml, e (when exp) its entry in the manifest.
func (s *Scope) noteDuplicateOf(out []finding.Finding, st fileState, ok bool, e expEntry, exp bool) []finding.Finding {
	if s.dupNote == "" {
		return out
	}
	for i := range out {
		if out[i].Path == infoXML {
			if out[i].Message != "" {
				out[i].Message += "; "
			}
			out[i].Message += s.dupNote
			return out
		}
	}
	if !ok && !exp {
		return out
	}
	return append(out, finding.Finding{Scope: s.Name, Kind: kind.DuplicateApp, Path: infoXML, Expected: e.hash, Current: st.hash, Message: s.dupNote})
}

func underAny(key string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(key, d) {
			return true
		}
	}
	return false
}

// ReadErrorClass names file-level exceptions (a file or directory that
// could not be read); Nextcloud has no such class, it would fail the scan.
const ReadErrorClass = `integrityd\ReadException`

// ListException is the scope-level finding for a scope whose directory
// cannot be listed.
func ListException(scope string, err error) finding.Finding {
	return finding.Finding{Scope: scope, Kind: kind.Exception, Class: ReadErrorClass, Message: "Files could not be listed.", Detail: err.Error()}
}
