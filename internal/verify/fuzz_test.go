package verify

import (
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"maps"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/integrityd/integrityd/internal/fsutil"
)

// Seeds in testdata/fuzz/<FuzzName>/ are added by the fuzzing engine; these
// are the vectors and a few hand-made inputs.
func FuzzParseManifest(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(ncTests, "vectors", "*.signature.json"))
	if len(files) == 0 {
		f.Fatal("no vector manifests found")
	}
	for _, file := range files {
		f.Add(mustReadF(f, file))
	}
	for _, s := range []string{
		``,
		`null`,
		`{}`,
		`[]`,
		`{"hashes": {}, "signature": "", "certificate": ""}`,
		`{"hashes": ["a", "b"], "signature": "", "certificate": ""}`,
		`{"hashes": {"10": "a", "9": "b", "1e1": "c", "x": "d", " 1": "e", "01": "f"}, "signature": "!!", "certificate": "x"}`,
		`{"hashes": {"\ud83d\ude00\/\u00e9": "x", "a/b": "y", "\u0000": "z"}, "signature": "", "certificate": ""}`,
		`{"hashes": {"a": "1", "a": "2"}, "signature": "", "certificate": "", "hashes": {"b": "3"}}`,
		`{"hashes": {"\ud800": "x"}, "signature": "", "certificate": ""}`,
		`{"x": [[[[[]]]]], "hashes": {"a": 1}, "signature": "", "certificate": ""}`,
		"{\"hashes\": {\"\xff\": \"x\"}, \"signature\": \"\", \"certificate\": \"\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("got error %T %v, want *ManifestError", err, err)
			}
			if m != nil {
				t.Fatal("got a manifest along with an error")
			}
			return
		}
		hashes := m.hashMap()
		if len(hashes) != len(m.ents) {
			t.Fatalf("%d hashes for %d entries", len(hashes), len(m.ents))
		}
		enc := canonicalOf(t, data)
		if sha1.Sum(enc) != m.signed {
			t.Fatalf("the SHA-1 parseManifest took of the signed message is not that of JSONEncode %s", enc)
		}
		if !json.Valid(enc) {
			t.Fatalf("canonical message is not valid JSON: %s", enc)
		}
		// encoding/json reads the same map back.
		back := map[string]string{}
		if len(enc) > 0 && enc[0] == '[' {
			var list []string
			if err := json.Unmarshal(enc, &list); err != nil {
				t.Fatalf("encoding/json: %v: %s", err, enc)
			}
			for i, v := range list {
				back[strconv.Itoa(i)] = v
			}
		} else if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("encoding/json: %v: %s", err, enc)
		}
		if !maps.Equal(back, hashes) {
			t.Fatalf("encoding/json read %q from %s, want %q", back, enc, hashes)
		}
		// Parsing the canonical form again gives the same hashes.
		doc := append(append([]byte(`{"hashes": `), enc...), `, "signature": "", "certificate": ""}`...)
		m2, err := ParseManifest(bytes.NewReader(doc), "canonical.json")
		if err != nil {
			t.Fatalf("re-parsing the canonical form %s: %v", doc, err)
		}
		if !maps.Equal(m2.hashMap(), hashes) {
			t.Fatalf("re-parsed hashes %q, want %q", m2.hashMap(), hashes)
		}
	})
}

func mustReadF(f *testing.F, path string) []byte {
	f.Helper()
	data, err := fsutil.ReadLimited(path, 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	return data
}
