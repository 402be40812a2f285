package verify

import (
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vectorMap decodes a vector's signature.json into a generic map.
func vectorMap(t *testing.T, vector string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mustRead(t, filepath.Join(ncTests, "vectors", vector+".signature.json")), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mutatedV01 returns v01_app_SomeApp's manifest with f applied.
func mutatedV01(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	m := vectorMap(t, "v01_app_SomeApp")
	f(m)
	return marshal(t, m)
}

func parseBytes(data []byte) (*Manifest, error) {
	return ParseManifest(bytes.NewReader(data), "test/signature.json")
}

func TestParseManifestErrors(t *testing.T) {
	deepArrays := func(n int) string {
		return strings.Repeat("[", n) + strings.Repeat("]", n)
	}
	tests := []struct {
		name   string
		data   []byte
		reason string // a substring of ManifestError.Reason
	}{
		{"empty file", []byte(""), "invalid JSON"},
		{"whitespace only", []byte(" \n"), "invalid JSON"},
		{"null", []byte("null"), "not a JSON object"},
		{"empty list", []byte("[]"), "not a JSON object"},
		{"string", []byte(`"hashes"`), "not a JSON object"},
		{"number", []byte(`5`), "not a JSON object"},
		{"empty object", []byte("{}"), `missing "hashes"`},
		{"missing hashes", mutatedV01(t, func(m map[string]any) { delete(m, "hashes") }), `missing "hashes"`},
		{"missing signature", mutatedV01(t, func(m map[string]any) { delete(m, "signature") }), `missing "signature"`},
		{"missing certificate", mutatedV01(t, func(m map[string]any) { delete(m, "certificate") }), `missing "certificate"`},
		{"keys are case-sensitive", mutatedV01(t, func(m map[string]any) { m["Hashes"] = m["hashes"]; delete(m, "hashes") }), `missing "hashes"`},
		{"hashes is a number", mutatedV01(t, func(m map[string]any) { m["hashes"] = 5 }), "hashes: not an object"},
		{"hashes is a string", mutatedV01(t, func(m map[string]any) { m["hashes"] = "x" }), "hashes: not an object"},
		{"hashes is null", mutatedV01(t, func(m map[string]any) { m["hashes"] = nil }), "hashes: not an object"},
		{"hash value is a number", mutatedV01(t, func(m map[string]any) {
			m["hashes"].(map[string]any)["AnotherFile.txt"] = 12
		}), `value for "AnotherFile.txt" is not a string`},
		{"hash value is an object", mutatedV01(t, func(m map[string]any) {
			m["hashes"].(map[string]any)["AnotherFile.txt"] = map[string]any{}
		}), `value for "AnotherFile.txt" is not a string`},
		{"hash value is null", mutatedV01(t, func(m map[string]any) {
			m["hashes"].(map[string]any)["AnotherFile.txt"] = nil
		}), `value for "AnotherFile.txt" is not a string`},
		{"list element is a number", mutatedV01(t, func(m map[string]any) { m["hashes"] = []any{"a", 1} }), `value for "1" is not a string`},
		{"signature is a number", mutatedV01(t, func(m map[string]any) { m["signature"] = 1 }), "signature: not a string"},
		{"certificate is a list", mutatedV01(t, func(m map[string]any) { m["certificate"] = []any{} }), "certificate: not a string"},
		{"malformed JSON", []byte(`{"hashes": {"a": "b"`), "invalid JSON"},
		{"missing comma", []byte(`{"hashes": {} "signature": "", "certificate": ""}`), "invalid JSON"},
		{"single quotes", []byte(`{'hashes': {}, 'signature': '', 'certificate': ''}`), "invalid JSON"},
		{"trailing comma", []byte(`{"hashes": {}, "signature": "", "certificate": "",}`), "invalid JSON"},
		{"trailing garbage", []byte(`{"hashes": {}, "signature": "", "certificate": ""} x`), "invalid JSON"},
		{"two objects", []byte(`{"hashes": {}, "signature": "", "certificate": ""}{}`), "invalid JSON"},
		{"invalid UTF-8 in a key", []byte("{\"hashes\": {\"a\xff\": \"b\"}, \"signature\": \"\", \"certificate\": \"\"}"), "malformed UTF-8"},
		{"invalid UTF-8 outside strings", []byte("{\"hashes\": {}, \"signature\": \"\", \"certificate\": \"\"}\xc3"), "malformed UTF-8"},
		{"UTF-8 surrogate bytes", []byte("{\"hashes\": {\"\xed\xa0\x80\": \"b\"}, \"signature\": \"\", \"certificate\": \"\"}"), "malformed UTF-8"},
		{"unpaired high surrogate in a key", []byte(`{"hashes": {"\ud800": "b"}, "signature": "", "certificate": ""}`), "unpaired UTF-16 surrogate"},
		{"high surrogate then text", []byte(`{"hashes": {"\ud800x": "b"}, "signature": "", "certificate": ""}`), "unpaired UTF-16 surrogate"},
		{"high surrogate then escape", []byte(`{"hashes": {"\ud800\n": "b"}, "signature": "", "certificate": ""}`), "unpaired UTF-16 surrogate"},
		{"high surrogate then BMP escape", []byte(`{"hashes": {"\ud800\u0041": "b"}, "signature": "", "certificate": ""}`), "unpaired UTF-16 surrogate"},
		{"two high surrogates", []byte(`{"hashes": {"\ud800\ud800": "b"}, "signature": "", "certificate": ""}`), "unpaired UTF-16 surrogate"},
		{"lone low surrogate", []byte(`{"hashes": {"\udc00": "b"}, "signature": "", "certificate": ""}`), "unpaired UTF-16 surrogate"},
		{"unpaired surrogate in a value", []byte(`{"hashes": {"a": "\uDBFF"}, "signature": "", "certificate": ""}`), "unpaired UTF-16 surrogate"},
		{"unpaired surrogate in an ignored key", []byte(`{"x": "\ud800", "hashes": {}, "signature": "", "certificate": ""}`), "unpaired UTF-16 surrogate"},
		// PHP's json_decode refuses nesting this deep; the outer object counts.
		{"600 nested arrays in another key", []byte(`{"x": ` + deepArrays(600) + `, "hashes": {}, "signature": "", "certificate": ""}`), "nested deeper than"},
		{"512 nested arrays in another key", []byte(`{"x": ` + deepArrays(512) + `, "hashes": {}, "signature": "", "certificate": ""}`), "nested deeper than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseBytes(tt.data)
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("got manifest %v, error %v, want *ManifestError", m != nil, err)
			}
			if m != nil {
				t.Errorf("got a manifest along with error %v", err)
			}
			if me.Path != "test/signature.json" {
				t.Errorf("got Path %q, want %q", me.Path, "test/signature.json")
			}
			if !strings.Contains(me.Reason, tt.reason) {
				t.Errorf("got Reason %q, want it to contain %q", me.Reason, tt.reason)
			}
			if !strings.Contains(err.Error(), "test/signature.json") || !strings.Contains(err.Error(), me.Reason) {
				t.Errorf("Error() = %q, want the path and the reason", err.Error())
			}
		})
	}
}

// What PHP's json_decode accepts, ParseManifest accepts too.
func TestParseManifestAccepts(t *testing.T) {
	deep := strings.Repeat("[", 510) + strings.Repeat("]", 510)
	tests := []struct {
		name string
		data string
		want map[string]string
	}{
		{"minimal", `{"hashes": {}, "signature": "", "certificate": ""}`, map[string]string{}},
		{"order of fields", `{"certificate": "", "signature": "", "hashes": {"a": "1"}}`, map[string]string{"a": "1"}},
		{"unknown fields ignored", `{"x": {"hashes": 5, "y": [1, true, null, "s"]}, "hashes": {"a": "1"}, "n": -1.5e3, "signature": "", "t": false, "certificate": ""}`, map[string]string{"a": "1"}},
		{"510 nested arrays (511 levels)", `{"x": ` + deep + `, "hashes": {}, "signature": "", "certificate": ""}`, map[string]string{}},
		{"brackets in strings are not nesting", `{"hashes": {"` + strings.Repeat("[", 600) + `": "1"}, "signature": "", "certificate": ""}`,
			map[string]string{strings.Repeat("[", 600): "1"}},
		{"escapes", `{"hashes": {"a\/b": "x", "\u00e9\"\\": "y", "\ud83d\ude00": "z"}, "signature": "", "certificate": ""}`,
			map[string]string{"a/b": "x", "é\"\\": "y", "😀": "z"}},
		{"raw UTF-8", `{"hashes": {"dir/größe.txt": "1"}, "signature": "", "certificate": ""}`, map[string]string{"dir/größe.txt": "1"}},
		{"whitespace everywhere", " \t\r\n{ \"hashes\" :\n{ \"a\" : \"1\" , \"b\" :\"2\" } ,\"signature\":\"\" , \"certificate\" : \"\" }\n ",
			map[string]string{"a": "1", "b": "2"}},
		// The last of duplicate keys wins, as in a PHP array.
		{"duplicate hash key", `{"hashes": {"a": "1", "b": "2", "a": "3"}, "signature": "", "certificate": ""}`, map[string]string{"a": "3", "b": "2"}},
		{"duplicate escaped key", `{"hashes": {"a/b": "1", "a\/b": "2"}, "signature": "", "certificate": ""}`, map[string]string{"a/b": "2"}},
		// Sorted so far, then a repeat of an earlier key (the parser
		// indexes keys only from the first one out of order).
		{"duplicate after sorted keys", `{"hashes": {"a": "1", "b": "2", "c": "3", "b": "4", "d": "5", "a": "6"}, "signature": "", "certificate": ""}`,
			map[string]string{"a": "6", "b": "4", "c": "3", "d": "5"}},
		{"escaped values and views", `{"hashes": {"x": "a\/b", "y": "", "z": "\u0041"}, "signature": "", "certificate": ""}`,
			map[string]string{"x": "a/b", "y": "", "z": "A"}},
		{"duplicate hashes field", `{"hashes": {"a": "1"}, "signature": "", "certificate": "", "hashes": {"b": "2"}}`, map[string]string{"b": "2"}},
		// PHP's json_decode(..., true) gives an array either way.
		{"hashes as a list", `{"hashes": ["x", "y"], "signature": "", "certificate": ""}`, map[string]string{"0": "x", "1": "y"}},
		{"empty list", `{"hashes": [], "signature": "", "certificate": ""}`, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseBytes([]byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			hashes := m.hashMap()
			if len(hashes) != len(tt.want) {
				t.Errorf("got %d hashes %q, want %q", len(hashes), hashes, tt.want)
			}
			for k, v := range tt.want {
				if got, ok := hashes[k]; !ok || got != v {
					t.Errorf("Hashes[%q]: got %q, %v, want %q", k, got, ok, v)
				}
			}
		})
	}
}

// json_decode($json, true) with its default depth of 512 accepts at most
// 511 nested arrays and objects (checked with PHP 8.2: "[]" needs depth 2).
func TestParseManifestDepthLimit(t *testing.T) {
	for _, tt := range []struct {
		levels int // including the outer object
		ok     bool
		bug    string
	}{
		{2, true, ""},
		{511, true, ""},
		{512, false, "phpcompat.CheckJSON allows 512 levels (depth > phpcompat.MaxJSONDepth); PHP's json_decode refuses 512 (\"Maximum stack depth exceeded\"), it needs depth > levels"},
		{513, false, ""},
	} {
		t.Run(strconv.Itoa(tt.levels), func(t *testing.T) {
			n := tt.levels - 1
			data := `{"x": ` + strings.Repeat("[", n) + strings.Repeat("]", n) + `, "hashes": {}, "signature": "", "certificate": ""}`
			_, err := parseBytes([]byte(data))
			if (err == nil) != tt.ok {
				if tt.bug != "" {
					t.Errorf("regression: %d levels: got error %v, want ok=%v: %s", tt.levels, err, tt.ok, tt.bug)
				}
				t.Errorf("%d levels: got error %v, want ok=%v", tt.levels, err, tt.ok)
			}
		})
	}
}

func TestParseManifestCanonical(t *testing.T) {
	const bug = "handleNumericStr turns keys below PHP_INT_MIN into PHP_INT_MIN; PHP 7/8 keep them string keys"
	tests := []struct {
		name, hashes, want string
		bug                string
	}{
		{"empty object", `{}`, `[]`, ""},
		{"empty list", `[]`, `[]`, ""},
		{"sorted and escaped", `{"b/ü": "2", "a": "1"}`, `{"a":"1","b\/\u00fc":"2"}`, ""},
		{"duplicate keeps first position", `{"b": "1", "a": "2", "b": "3"}`, `{"a":"2","b":"3"}`, ""},
		{"integer keys", `{"10": "a", "9": "b", "x": "c"}`, `{"9":"b","10":"a","x":"c"}`, ""},
		{"integer keys 0..n-1", `{"1": "b", "0": "a"}`, `["a","b"]`, ""},
		{"list", `["a", "b"]`, `["a","b"]`, ""},
		{"PHP_INT_MIN", `{"-9223372036854775808": "a", "-1": "b"}`, `{"-9223372036854775808":"a","-1":"b"}`, ""},
		{"below PHP_INT_MIN", `{"-9223372036854775809": "a", "-1": "b"}`, `{"-9223372036854775809":"a","-1":"b"}`, bug},
		{"below and at PHP_INT_MIN", `{"-9223372036854775809": "a", "-9223372036854775808": "b"}`, `{"-9223372036854775809":"a","-9223372036854775808":"b"}`, bug},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := []byte(`{"hashes": ` + tt.hashes + `, "signature": "", "certificate": ""}`)
			m, err := parseBytes(doc)
			if err != nil {
				t.Fatal(err)
			}
			if sha1.Sum([]byte(tt.want)) != m.signed {
				got := canonicalOf(t, doc)
				if tt.bug != "" {
					t.Errorf("regression: canonical message of %s: got %s, PHP gives %s: %s", tt.hashes, got, tt.want, tt.bug)
				}
				t.Errorf("canonical: got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseManifestSizeLimit(t *testing.T) {
	data := []byte(`{"hashes": {}, "signature": "", "certificate": ""}`)
	parse := func(limit int64) (*Manifest, error) {
		return parseManifestLimit(bytes.NewReader(data), "test", limit)
	}
	if _, err := parse(int64(len(data))); err != nil {
		t.Errorf("manifest of exactly the limit: got %v, want it parsed", err)
	}

	_, err := parse(int64(len(data)) - 1)
	var me *ManifestError
	if !errors.As(err, &me) {
		t.Fatalf("manifest one byte over the limit: got %v, want *ManifestError", err)
	}
	if want := fmt.Sprintf("larger than %d bytes", len(data)-1); me.Reason != want {
		t.Errorf("got Reason %q, want %q", me.Reason, want)
	}

	// The reader is not drained past the limit.
	r := &countingReader{r: bytes.NewReader(bytes.Repeat([]byte(" "), 1<<20))}
	if _, err := parseManifestLimit(r, "big", 10); err == nil {
		t.Error("1 MiB with a 10-byte limit: got no error")
	}
	if r.n > 1<<16 {
		t.Errorf("read %d bytes with a 10-byte limit, want at most a buffer's worth", r.n)
	}
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += k
	return k, err
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseManifestReadError(t *testing.T) {
	_, err := ParseManifest(failingReader{}, "x.json")
	var me *ManifestError
	if !errors.As(err, &me) || !strings.Contains(me.Reason, "disk on fire") {
		t.Errorf("got %v, want a *ManifestError naming the read error", err)
	}
}

// The signed message is built from the decoded hashes, not from the file's
// text: re-encoding the manifest differently keeps it valid, and changing a
// hash breaks it.
func TestVerifyMutatedVectors(t *testing.T) {
	tr := testTrust(t)
	v01Cert := vectorMap(t, "v01_app_SomeApp")["certificate"].(string)
	tests := []struct {
		name    string
		data    []byte
		scope   string
		message string // "" when Verify must succeed
		detail  string // a substring of the Detail
	}{
		{"v01 as is", mustRead(t, filepath.Join(ncTests, "vectors", "v01_app_SomeApp.signature.json")), "SomeApp", "", ""},
		{"v01 re-encoded by encoding/json", mutatedV01(t, func(map[string]any) {}), "SomeApp", "", ""},
		{"v01 with an extra field", mutatedV01(t, func(m map[string]any) { m["comment"] = "ignored" }), "SomeApp", "", ""},
		{"signature with line breaks (PHP skips them)", mutatedV01(t, func(m map[string]any) {
			s := m["signature"].(string)
			m["signature"] = s[:64] + "\r\n" + s[64:128] + "\n" + s[128:]
		}), "SomeApp", "", ""},
		{"signature without padding", mutatedV01(t, func(m map[string]any) {
			m["signature"] = strings.TrimRight(m["signature"].(string), "=")
		}), "SomeApp", "", ""},
		{"wrong scope", mutatedV01(t, func(map[string]any) {}), "OtherApp",
			"Certificate is not valid for required scope. (Requested: OtherApp, current: CN=SomeApp)", ""},
		{"hash changed", mutatedV01(t, func(m map[string]any) {
			m["hashes"].(map[string]any)["AnotherFile.txt"] = strings.Repeat("0", 128)
		}), "SomeApp", MsgBadSignature, "does not verify"},
		{"file added", mutatedV01(t, func(m map[string]any) {
			m["hashes"].(map[string]any)["extra.txt"] = strings.Repeat("0", 128)
		}), "SomeApp", MsgBadSignature, ""},
		{"not base64", mutatedV01(t, func(m map[string]any) { m["signature"] = "!!!notbase64" }), "SomeApp", MsgBadSignature, "base64"},
		{"empty signature", mutatedV01(t, func(m map[string]any) { m["signature"] = "" }), "SomeApp", MsgBadSignature, "0 bytes"},
		{"signature truncated", mutatedV01(t, func(m map[string]any) {
			s := m["signature"].(string)
			m["signature"] = s[:len(s)-8]
		}), "SomeApp", MsgBadSignature, "bytes, key needs 512"},
		{"garbage certificate", mutatedV01(t, func(m map[string]any) { m["certificate"] = "garbage" }), "SomeApp", MsgBadCert, "cannot parse certificate"},
		{"empty certificate", mutatedV01(t, func(m map[string]any) { m["certificate"] = "" }), "SomeApp", MsgBadCert, ""},
		{"corrupt PEM body", mutatedV01(t, func(m map[string]any) {
			m["certificate"] = strings.Replace(v01Cert, "MIIE", "AAAA", 1)
		}), "SomeApp", MsgBadCert, ""},
		{"untrusted certificate", mutatedV01(t, func(m map[string]any) {
			m["certificate"] = string(mustRead(t, filepath.Join(ncTests, "vectors", "core_untrusted.crt")))
		}), "SomeApp", MsgBadCert, "is not signed by"},
		{"certificate of another scope", mutatedV01(t, func(m map[string]any) {
			m["certificate"] = string(mustRead(t, filepath.Join(ncTests, "vectors", "AnotherScope.crt")))
		}), "SomeApp", "Certificate is not valid for required scope. (Requested: SomeApp, current: CN=AnotherScope)", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseBytes(tt.data)
			if err != nil {
				t.Fatalf("ParseManifest: %v", err)
			}
			ex := m.Verify(tr, tt.scope)
			if tt.message == "" {
				if ex != nil {
					t.Fatalf("got %+v, want the manifest to verify", ex)
				}
				return
			}
			if ex == nil {
				t.Fatalf("got no exception, want %q", tt.message)
			}
			if ex.Message != tt.message {
				t.Errorf("got Message %q, want %q", ex.Message, tt.message)
			}
			if ex.Class != `OC\IntegrityCheck\Exceptions\InvalidSignatureException` {
				t.Errorf("got Class %q, want Nextcloud's InvalidSignatureException", ex.Class)
			}
			if !strings.Contains(ex.Detail, tt.detail) {
				t.Errorf("got Detail %q, want it to contain %q", ex.Detail, tt.detail)
			}
		})
	}
}

func TestPHPBase64Decode(t *testing.T) {
	const bug = "phpBase64Decode returns nil for a last group of one character; PHP's non-strict base64_decode ignores that character and returns the bytes decoded before it"
	tests := []struct {
		in   string
		want string
		note string // a substring of the note; "-" for no note, "" to not check
		bug  string
	}{
		{"", "", "-", ""},
		{"QUJD", "ABC", "-", ""},
		{"QUI=", "AB", "-", ""},
		{"QUI", "AB", "-", ""},
		{"QQ==", "A", "-", ""},
		{"Q\nU\r\nJ D\t", "ABC", "5 characters outside base64", ""},
		{"QU=JD", "ABC", "-", ""}, // "=" is skipped wherever it is
		{"Q*U*J*D", "ABC", "3 characters outside base64", ""},
		{"+/+/", "\xfb\xff\xbf", "-", ""},
		{"QUJDx", "ABC", "", bug},
		{"!!!notbase64", "\x9e\x8b\x5b\x6a\xc7\xba", "base64", bug},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, note := phpBase64Decode(tt.in)
			if got == nil || string(got) != tt.want {
				if tt.bug != "" {
					t.Errorf("regression: phpBase64Decode(%q) = %q (nil: %v), note %q; PHP's base64_decode gives %q: %s", tt.in, got, got == nil, note, tt.want, tt.bug)
				}
				t.Errorf("got %q (nil: %v), want %q", got, got == nil, tt.want)
			}
			switch tt.note {
			case "":
			case "-":
				if note != "" {
					t.Errorf("got note %q, want none", note)
				}
			default:
				if !strings.Contains(note, tt.note) {
					t.Errorf("got note %q, want it to contain %q", note, tt.note)
				}
			}
		})
	}
}
