// Package baseline checks the code of an install that no signature
// covers: the unsigned coverage (Coverage: unsigned apps, themes,
// executable files where no scope checks, the root .htaccess below its
// marker) is hashed and compared with the baseline the admin accepted
// (Baseline, in the state directory), as findings of the scope
// ScopeName. It builds on verify (the install, its apps, the hashing) and
// is never imported by it.
package baseline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/fsutil"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// fileFormat names the baseline file's format and version.
const fileFormat = "integrityd-baseline/1"

// FileName is the baseline file in the state directory.
const FileName = "baseline.json"

// Baseline is the unsigned coverage as an admin accepted it: key ->
// file, with who recorded it and when.
type Baseline struct {
	Root    string
	Created time.Time // when integrityd baseline first recorded it
	Updated time.Time // the last accept
	UID     int
	User    string
	Files   Files
	// Log is what was recorded and accepted, by whom, oldest first (the
	// last maxBaselineLog lines).
	Log []string
}

// maxBaselineLog bounds Baseline.Log.
const maxBaselineLog = 1000

// Note adds a line to the log, stamped now with who.
func (b *Baseline) Note(uid int, user, what string) {
	b.Log = append(b.Log, fmt.Sprintf("%s uid %d (%s): %s", time.Now().UTC().Format(time.RFC3339), uid, user, what))
	if n := len(b.Log) - maxBaselineLog; n > 0 {
		b.Log = append([]string(nil), b.Log[n:]...)
	}
}

// New is the baseline of files, recorded now by uid/user.
func New(root string, files Files, uid int, user string) *Baseline {
	now := time.Now().UTC().Truncate(time.Second)
	b := &Baseline{Root: root, Created: now, Updated: now, UID: uid, User: user, Files: Files{}}
	for k, f := range files {
		f.directives = nil
		b.Files[k] = f
	}
	return b
}

// baselineEntry is one file in the baseline file.
type baselineEntry struct {
	Path    string `json:"path,omitempty"`
	PathB64 []byte `json:"path_b64,omitempty"`
	File
}

type baselineFile struct {
	Format  string          `json:"format"`
	Root    string          `json:"root"`
	Created time.Time       `json:"created"`
	Updated time.Time       `json:"updated"`
	UID     int             `json:"uid"`
	User    string          `json:"user"`
	Log     []string        `json:"log,omitempty"`
	Files   []baselineEntry `json:"files"`
}

// Read reads the baseline file at path; a missing file is
// (nil, nil), a bad one an error naming it.
func Read(path string) (*Baseline, error) {
	f, err := fsutil.OpenRegular(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read baseline %s: %w", path, cleanErr(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("read baseline %s: %w", path, cleanErr(err))
	}
	var v baselineFile
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("read baseline %s: not a baseline file (%v): run integrityd baseline again", path, err)
	}
	if v.Format != fileFormat {
		return nil, fmt.Errorf("read baseline %s: format %q, want %q: run integrityd baseline again", path, v.Format, fileFormat)
	}
	b := &Baseline{Root: v.Root, Created: v.Created, Updated: v.Updated, UID: v.UID, User: v.User, Log: v.Log, Files: make(Files, len(v.Files))}
	for i, e := range v.Files {
		p := e.Path
		if e.PathB64 != nil {
			p = string(e.PathB64)
		}
		if p == "" {
			return nil, fmt.Errorf("read baseline %s: file %d has no path", path, i)
		}
		b.Files[p] = e.File
	}
	return b, nil
}

// Write writes b to path atomically (mode 0640).
func (b *Baseline) Write(path string) error {
	v := baselineFile{Format: fileFormat, Root: b.Root, Created: b.Created, Updated: b.Updated, UID: b.UID, User: b.User, Log: b.Log,
		Files: make([]baselineEntry, 0, len(b.Files))}
	for _, k := range sortedKeys(b.Files) {
		e := baselineEntry{Path: k, File: b.Files[k]}
		if !utf8.ValidString(k) {
			e.Path, e.PathB64 = "", []byte(k)
		}
		v.Files = append(v.Files, e)
	}
	return fsutil.WriteAtomic(path, 0o640, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(v)
	})
}

// Accept takes the current state of keys (and what is below them) into
// b; it returns what changed, as "KIND path" lines. An accepted key that
// is gone is dropped from b.
func (b *Baseline) Accept(cur Files, keys []string) []string {
	var out []string
	for _, key := range keys {
		key = strings.TrimSuffix(key, "/")
		for _, f := range b.Compare(cur, key) {
			k := f.Path
			if f.Kind == kind.UnsignedMissing {
				delete(b.Files, k)
			} else {
				e := cur[k]
				e.directives = nil
				b.Files[k] = e
			}
			out = append(out, string(f.Kind)+" "+finding.EscapeControl(k))
		}
	}
	if len(out) > 0 {
		b.Updated = time.Now().UTC().Truncate(time.Second)
	}
	return out
}

// Compare returns the findings of cur (a scan of the coverage at key and
// below, "" for all of it) against b, in report order.
func (b *Baseline) Compare(cur Files, key string) []finding.Finding {
	var out []finding.Finding
	for _, k := range keysUnder(cur, key) {
		c := cur[k]
		e, ok := b.Files[k]
		switch {
		case ok && c.same(e):
			continue
		case len(c.directives) > 0:
			out = append(out, finding.Finding{Scope: ScopeName, Kind: kind.HtaccessDirective, Path: k, Expected: e.Hash, Current: c.Hash,
				Message: directivesNote(c.directives)})
		case !ok:
			out = append(out, finding.Finding{Scope: ScopeName, Kind: kind.UnsignedExtra, Path: k, Current: c.Hash,
				Message: fileNote(c, "not in the baseline")})
		default:
			out = append(out, finding.Finding{Scope: ScopeName, Kind: kind.UnsignedChanged, Path: k, Expected: e.Hash, Current: c.Hash,
				Message: changeNote(e, c)})
		}
	}
	for _, k := range keysUnder(b.Files, key) {
		if _, ok := cur[k]; !ok {
			out = append(out, finding.Finding{Scope: ScopeName, Kind: kind.UnsignedMissing, Path: k, Expected: b.Files[k].Hash,
				Message: "in the baseline, gone"})
		}
	}
	finding.Sort(out)
	return out
}

func fileNote(f File, what string) string {
	if f.Err != "" {
		return what + "; cannot be read: " + f.Err
	}
	return fmt.Sprintf("%s (%d bytes, %s)", what, f.Size, f.Mode)
}

func changeNote(old, cur File) string {
	var parts []string
	if old.Hash != cur.Hash {
		parts = append(parts, fmt.Sprintf("content changed (%d -> %d bytes)", old.Size, cur.Size))
	}
	if old.Mode != cur.Mode {
		parts = append(parts, fmt.Sprintf("mode %s -> %s", old.Mode, cur.Mode))
	}
	if cur.Err != "" {
		parts = append(parts, "cannot be read: "+cur.Err)
	} else if old.Err != "" {
		parts = append(parts, "readable again")
	}
	return strings.Join(parts, "; ")
}

// Summary is one line on the baseline: when and by whom.
func (b *Baseline) Summary() string {
	s := fmt.Sprintf("baseline of %s by %s (uid %d), %d files", b.Created.Format(time.RFC3339), b.User, b.UID, len(b.Files))
	if !b.Updated.Equal(b.Created) {
		s += ", last accept " + b.Updated.Format(time.RFC3339)
	}
	return s
}

// Result is the unsigned coverage's scope result: cur (a full scan)
// compared with b.
func (b *Baseline) Result(cur Files, root string) verify.ScopeResult {
	r := verify.ScopeResult{Scope: ScopeName, Dir: root, Findings: b.Compare(cur, "")}
	for _, f := range cur {
		r.Files++
		r.Bytes += f.Size
	}
	return r
}

// Unsigned modes (the unsigned setting).
const (
	Auto = "auto" // checked when a baseline exists
	On   = "on"   // checked; without a baseline, every file is UNSIGNED_EXTRA
	Off  = "off"
)

// Open applies the unsigned setting to the baseline file at path
// for the install at root: the baseline to compare with (nil: unsigned
// code is not checked) and a line saying which mode applies. A baseline
// that cannot be read, or one recorded for another root, is an error
// naming the file.
func Open(setting, path, root string) (*Baseline, string, error) {
	if setting == Off {
		return nil, "unsigned code: not checked (unsigned = off)", nil
	}
	b, err := Read(path)
	if err != nil {
		return nil, "", err
	}
	switch {
	case b == nil && setting == On:
		return New(root, nil, -1, "nobody"), "unsigned code: checked against an empty baseline (unsigned = on, no baseline in " + path + " yet: every file is UNSIGNED_EXTRA until integrityd baseline)", nil
	case b == nil:
		return nil, "unsigned code: not checked (no baseline; run integrityd baseline)", nil
	case b.Root != root:
		return nil, "", fmt.Errorf("read baseline %s: recorded for root %s, not %s: run integrityd baseline --accept-all, or use the state directory of that install", path, b.Root, root)
	}
	return b, "unsigned code: checked against the " + b.Summary(), nil
}
