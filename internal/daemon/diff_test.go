package daemon

import (
	"crypto/sha512"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
)

func hashOf(s string) finding.Hash { return finding.Hash(sha512.Sum512([]byte(s))) }

// TestDiff is the alert rule, case by case: what is alerted, what is
// resolved, what is recorded silently.
func TestDiff(t *testing.T) {
	t.Parallel()
	inv := func(path, cur string) finding.Finding {
		return finding.Finding{Scope: "core", Kind: kind.InvalidHash, Path: path, Expected: hashOf("signed"), Current: hashOf(cur)}
	}
	extra := func(path, cur, msg string) finding.Finding {
		f := finding.Finding{Scope: "core", Kind: kind.ExtraFile, Path: path, Message: msg}
		if cur != "" { // "": could not be read
			f.Current = hashOf(cur)
		}
		return f
	}
	missing := func(path string) finding.Finding {
		return finding.Finding{Scope: "core", Kind: kind.FileMissing, Path: path, Expected: hashOf("signed")}
	}
	exc := func(path, msg string) finding.Finding {
		return finding.Finding{Scope: "core", Kind: kind.Exception, Path: path, Class: "C", Message: msg}
	}
	tests := []struct {
		name       string
		old, fresh []finding.Finding
		want       []string // "alert PATH KIND", "resolved PATH", "update PATH"
	}{
		{"nothing", nil, nil, nil},
		{"unchanged", []finding.Finding{inv("a", "x")}, []finding.Finding{inv("a", "x")}, nil},
		{"appears", nil, []finding.Finding{inv("a", "x")}, []string{"alert a INVALID_HASH"}},
		{"heals", []finding.Finding{inv("a", "x")}, nil, []string{"resolved a"}},
		{"several appear", nil, []finding.Finding{inv("a", "x"), missing("b"), extra("c", "y", "")},
			[]string{"alert a INVALID_HASH", "alert b FILE_MISSING", "alert c EXTRA_FILE"}},
		{"kind changes", []finding.Finding{inv("a", "x")}, []finding.Finding{missing("a")}, []string{"alert a FILE_MISSING"}},
		{"missing comes back wrong", []finding.Finding{missing("a")}, []finding.Finding{inv("a", "x")}, []string{"alert a INVALID_HASH"}},
		{"other content, same kind", []finding.Finding{inv("a", "x")}, []finding.Finding{inv("a", "y")}, []string{"alert a INVALID_HASH"}},
		{"extra file, other content", []finding.Finding{extra("a", "x", "")}, []finding.Finding{extra("a", "y", "")}, []string{"alert a EXTRA_FILE"}},
		{"unreadable extra readable again, same content", []finding.Finding{extra("a", "", "open: permission denied")},
			[]finding.Finding{extra("a", "x", "")}, []string{"alert a EXTRA_FILE"}},
		{"other detail only", []finding.Finding{inv("a", "x")}, []finding.Finding{func() finding.Finding { f := inv("a", "x"); f.Detail = "d"; return f }()},
			[]string{"update a"}},
		{"extra becomes unreadable", []finding.Finding{extra("a", "x", "")}, []finding.Finding{extra("a", "", "open: permission denied")},
			[]string{"update a"}},
		{"exception, other reason", []finding.Finding{exc("a", "open: permission denied")}, []finding.Finding{exc("a", "read: I/O error")},
			[]string{"alert a EXCEPTION"}},
		{"exception, same reason", []finding.Finding{exc("", "Signature data not found.")}, []finding.Finding{exc("", "Signature data not found.")}, nil},
		{"scope exception replaces file findings", []finding.Finding{inv("a", "x"), missing("b")},
			[]finding.Finding{exc("", "Certificate is not valid.")},
			[]string{"alert  EXCEPTION", "resolved a", "resolved b"}},
		{"one heals, one appears, one stays", []finding.Finding{inv("a", "x"), inv("b", "x")}, []finding.Finding{inv("b", "x"), extra("c", "z", "")},
			[]string{"alert c EXTRA_FILE", "resolved a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := map[string]*finding.Finding{}
			for i := range tt.old {
				old[tt.old[i].Path] = &tt.old[i]
			}
			var got []string
			for _, tr := range diff(old, tt.fresh) {
				switch {
				case tr.New == nil:
					got = append(got, "resolved "+tr.Old.Path)
				case tr.Alert:
					got = append(got, fmt.Sprintf("alert %s %s", tr.New.Path, tr.New.Kind))
				default:
					if tr.Old == nil {
						t.Errorf("a finding that appears without an alert: %+v", tr.New)
					}
					got = append(got, "update "+tr.New.Path)
				}
			}
			sort.Strings(got)
			want := append([]string(nil), tt.want...)
			sort.Strings(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("diff:\ngot  %q\nwant %q", got, want)
			}
		})
	}
}

// The journal's integrity_expected is what the manifest says, as the
// report prints it: the hex hash, or the manifest's own value when it is
// not one (control characters quoted).
func TestAlertFieldsExpected(t *testing.T) {
	t.Parallel()
	h := hashOf("signed")
	for _, c := range []struct {
		f    finding.Finding
		want string
	}{
		{finding.Finding{Kind: kind.InvalidHash, Expected: h}, h.String()},
		{finding.Finding{Kind: kind.InvalidHash, ExpectedRaw: "ABCDEF"}, "ABCDEF"},
		{finding.Finding{Kind: kind.FileMissing, ExpectedRaw: "x\ny"}, `x\ny`},
		{finding.Finding{Kind: kind.ExtraFile}, ""},
	} {
		got := ""
		for _, fl := range alertFields(&c.f) {
			if fl.Key == "integrity_expected" {
				got = fl.String
			}
		}
		if got != c.want {
			t.Errorf("%+v: integrity_expected %q, want %q", c.f, got, c.want)
		}
	}
}
