package verify

import (
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
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
			t.Fatalf("the SHA-1 parseManifest took of the signed message is not that of encodeHashes %s", enc)
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
	data, err := readLimited(path, 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	return data
}

// checkPHPEscapes checks that out is a JSON string literal written with
// exactly PHP's default escapes: "\/", lowercase \u00XX for control
// characters without a short form, lowercase \uXXXX for everything
// non-ASCII, and nothing else escaped.
func checkPHPEscapes(out []byte) error {
	if len(out) < 2 || out[0] != '"' || out[len(out)-1] != '"' {
		return errors.New("not a quoted string")
	}
	body := out[1 : len(out)-1]
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c >= 0x80:
			return errors.New("raw non-ASCII byte at " + strconv.Itoa(i))
		case c < 0x20:
			return errors.New("raw control character at " + strconv.Itoa(i))
		case c == '/':
			return errors.New("raw '/' at " + strconv.Itoa(i))
		case c == '"':
			return errors.New("raw '\"' at " + strconv.Itoa(i))
		case c != '\\':
			continue
		}
		i++
		if i >= len(body) {
			return errors.New("dangling backslash")
		}
		switch body[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			if i+4 >= len(body) {
				return errors.New("short \\u escape")
			}
			hex := string(body[i+1 : i+5])
			if strings.ToLower(hex) != hex {
				return errors.New("upper-case hex in \\u" + hex)
			}
			v, err := strconv.ParseUint(hex, 16, 16)
			if err != nil {
				return err
			}
			switch {
			case v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t':
				return errors.New("\\u" + hex + " has a short form")
			case v >= 0x20 && v < 0x80:
				return errors.New("printable ASCII escaped as \\u" + hex)
			}
			i += 4
		default:
			return errors.New("unknown escape \\" + string(body[i]))
		}
	}
	return nil
}

func FuzzEncodeString(f *testing.F) {
	for _, s := range []string{"", "a/b", "\x00\x1f\x7f", "é😀\u2028", "\"\\", "\xff", "\xed\xa0\x80", "<>&'", "\b\f\n\r\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := appendPHPString(nil, s)
		if !utf8.ValidString(s) {
			var ue *InvalidUTF8Error
			if !errors.As(err, &ue) {
				t.Fatalf("invalid UTF-8 %q: got %q, %v, want *InvalidUTF8Error", s, out, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q encoded as %s: encoding/json: %v", s, out, err)
		}
		if back != s {
			t.Fatalf("%q encoded as %s decodes to %q", s, out, back)
		}
		if err := checkPHPEscapes(out); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, out, err)
		}
	})
}

func FuzzKsort(f *testing.F) {
	for _, s := range []string{
		"",
		"b\na\n10\n9\n2",
		"file.txt\n10\n9",
		"10\n9\na\n1e1",
		"9\n10\n1a",
		" 1\n01\n1\n1.0\n-0\n-1\n+1\n.5\n5.",
		"9223372036854775807\n9223372036854775808\n-9223372036854775808\n-9223372036854775809\n1e400\n-1e400",
		"a\nb\na",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Build the array as json_decode would: numeric keys become
		// integers, the last of duplicate keys wins in the first position.
		var e []entry
		index := map[string]int{}
		for i, k := range strings.Split(s, "\n") {
			pk := newPHPKey(k)
			if j, ok := index[pk.str]; ok {
				e[j].value = strconv.Itoa(i)
				continue
			}
			pk.pos = len(e)
			index[pk.str] = len(e)
			e = append(e, entry{key: pk, value: strconv.Itoa(i)})
		}
		before := slices.Clone(e)
		ksort(e)
		if len(e) != len(before) {
			t.Fatalf("ksort changed the length from %d to %d", len(before), len(e))
		}
		seen := make([]bool, len(e))
		allInts, allPlain := true, true
		for _, x := range e {
			if x.key.pos < 0 || x.key.pos >= len(before) || seen[x.key.pos] || before[x.key.pos] != x {
				t.Fatalf("ksort result is not a permutation of its input: %v", e)
			}
			seen[x.key.pos] = true
			if !x.key.isInt {
				allInts = false
			}
			if x.key.isInt || parseNumeric(x.key.str).kind != 0 {
				allPlain = false
			}
		}
		switch {
		case allInts:
			if !sort.SliceIsSorted(e, func(i, j int) bool { return e[i].key.i < e[j].key.i }) {
				t.Fatalf("integer keys not in numeric order: %v", e)
			}
		case allPlain:
			if !sort.SliceIsSorted(e, func(i, j int) bool { return e[i].key.str < e[j].key.str }) {
				t.Fatalf("non-numeric keys not in byte order: %v", e)
			}
		}
	})
}
