// Package finding is what a check reports of one file or scope (Finding)
// and the SHA-512 digests it names (Hash), in the one order every report,
// state file and status uses, and how its names are shown in text
// (EscapeControl).
package finding

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"unicode/utf8"

	"github.com/integrityd/integrityd/internal/kind"
)

// Hash is a SHA-512 digest, kept as raw bytes (half the memory of its hex
// form). The zero Hash means none: a file that could not be read, or a
// finding without that side.
type Hash [sha512.Size]byte

// IsZero reports whether h is the zero Hash (encoding/json's omitzero).
func (h Hash) IsZero() bool { return h == Hash{} }

// String is the lowercase hex form Nextcloud prints, "" for the zero Hash.
func (h Hash) String() string {
	if h.IsZero() {
		return ""
	}
	return hex.EncodeToString(h[:])
}

// MarshalText writes the hex form.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads the hex form ("" is the zero Hash).
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*h = Hash{}
		return nil
	}
	v, ok := ParseHash(string(b))
	if !ok {
		return fmt.Errorf("not a lowercase hex SHA-512: %.140q", b)
	}
	*h = v
	return nil
}

// ParseHash decodes a lowercase hex SHA-512, the only form Nextcloud's
// hash('sha512', ...) produces; ok is false for anything else, which no
// file can match.
func ParseHash(s string) (h Hash, ok bool) {
	if len(s) != 2*len(h) {
		return h, false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return h, false
		}
	}
	hex.Decode(h[:], []byte(s))
	return h, true
}

// Finding is one file that failed the check, or (Path empty, Kind
// EXCEPTION) a scope that could not be checked.
type Finding struct {
	Scope    string    `json:"scope"`
	Kind     kind.Kind `json:"kind"`
	Path     string    `json:"path,omitempty"`
	Expected Hash      `json:"expected,omitzero"`
	// ExpectedRaw is the manifest's value when it is not a lowercase hex
	// SHA-512 (Expected is then zero): Nextcloud prints it as it is.
	ExpectedRaw string `json:"expected_raw,omitempty"`
	Current     Hash   `json:"current,omitzero"`
	Class       string `json:"class,omitempty"`
	Message     string `json:"message,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

// ExpectedValue is the manifest's value for the file as Nextcloud prints
// it: the hex SHA-512, or ExpectedRaw when the value is not one.
func (f *Finding) ExpectedValue() string {
	if f.ExpectedRaw != "" {
		return f.ExpectedRaw
	}
	return f.Expected.String()
}

// MarshalJSON writes f as its fields, except that a path or scope that
// is not valid UTF-8 (file names are bytes) goes base64-encoded in
// path_b64 or scope_b64: JSON strings would replace the bad bytes, and a
// state read back would name another file.
func (f Finding) MarshalJSON() ([]byte, error) {
	type plain Finding
	v := struct {
		plain
		PathB64  []byte `json:"path_b64,omitempty"`
		ScopeB64 []byte `json:"scope_b64,omitempty"`
	}{plain: plain(f)}
	if !utf8.ValidString(f.Path) {
		v.plain.Path, v.PathB64 = "", []byte(f.Path)
	}
	if !utf8.ValidString(f.Scope) {
		v.plain.Scope, v.ScopeB64 = "", []byte(f.Scope)
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *Finding) UnmarshalJSON(data []byte) error {
	type plain Finding
	var v struct {
		plain
		PathB64  []byte `json:"path_b64"`
		ScopeB64 []byte `json:"scope_b64"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*f = Finding(v.plain)
	if f.Kind == legacyMissingFile {
		f.Kind = kind.FileMissing
	}
	if v.PathB64 != nil {
		f.Path = string(v.PathB64)
	}
	if v.ScopeB64 != nil {
		f.Scope = string(v.ScopeB64)
	}
	return nil
}

// Sort puts findings in report order, the one order used
// everywhere: core first, then scopes by name; in a scope, the scope's
// EXCEPTION, then by kind (in kind.All's order) and path.
func Sort(f []Finding) {
	sort.SliceStable(f, func(i, j int) bool { return before(&f[i], &f[j]) })
}

// SortPtrs is Sort for pointers.
func SortPtrs(f []*Finding) {
	sort.SliceStable(f, func(i, j int) bool { return before(f[i], f[j]) })
}

// before is the report order.
func before(a, b *Finding) bool {
	if a.Scope != b.Scope {
		if a.Scope == "core" || b.Scope == "core" {
			return a.Scope == "core"
		}
		return a.Scope < b.Scope
	}
	if (a.Path == "") != (b.Path == "") {
		return a.Path == ""
	}
	if a.Kind != b.Kind {
		return a.Kind.Order() < b.Kind.Order()
	}
	return a.Path < b.Path
}

// legacyMissingFile is the name earlier integrityd versions wrote for
// FILE_MISSING (Nextcloud's documentation says MISSING_FILE; its code, occ
// and the admin page say FILE_MISSING). State files that say it are read
// as FILE_MISSING.
const legacyMissingFile kind.Kind = "MISSING_FILE"
