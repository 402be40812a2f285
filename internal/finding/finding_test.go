package finding

import (
	"encoding/json"
	"testing"

	"github.com/integrityd/integrityd/internal/kind"
)

// TestFindingJSONBytes: paths and scopes are bytes; a state written and
// read back names the same file, also when its name is not UTF-8.
func TestFindingJSONBytes(t *testing.T) {
	for _, f := range []Finding{
		{Scope: "core", Kind: kind.ExtraFile, Path: "lib/a.php", Current: Hash{1}},
		{Scope: "core", Kind: kind.ExtraFile, Path: "lib/a\xffb.php", Current: Hash{2}},
		{Scope: "app\xfe", Kind: kind.Exception, Class: "C", Message: "m"},
		{Scope: "core", Kind: kind.InvalidHash, Path: "caf\xc3\xa9/\x80.js", Expected: Hash{3}, Current: Hash{4}, Detail: "d"},
	} {
		data, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		var g Finding
		if err := json.Unmarshal(data, &g); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if g != f {
			t.Errorf("round trip of %q: got %+v from %s", f.Path, g, data)
		}
	}
}

// TestFindingJSONLegacyKind: a state written by an earlier integrityd says
// MISSING_FILE; it is read as FILE_MISSING, Nextcloud's name, so that a
// restart neither re-alerts nor "resolves" every missing file.
func TestFindingJSONLegacyKind(t *testing.T) {
	var f Finding
	if err := json.Unmarshal([]byte(`{"scope":"core","kind":"MISSING_FILE","path":"lib/base.php"}`), &f); err != nil {
		t.Fatal(err)
	}
	if f.Kind != kind.FileMissing {
		t.Errorf("kind %q, want %q", f.Kind, kind.FileMissing)
	}
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"scope":"core","kind":"FILE_MISSING","path":"lib/base.php"}`; string(data) != want {
		t.Errorf("written as %s, want %s", data, want)
	}
}
