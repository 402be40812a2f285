package verify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/integrityd/integrityd/internal/phpcompat"
)

// errClass is the kind of problem a ManifestError's reason names, in the
// order of precedence both parsers give them; the text after it is the
// detail, which the streaming parser words with an offset.
func errClass(reason string) string {
	for _, c := range []string{"read:", "larger than", "malformed UTF-8", "nested deeper than 512", "unpaired UTF-16 surrogate"} {
		if strings.Contains(reason, c) {
			return c
		}
	}
	if strings.HasPrefix(reason, "invalid JSON") {
		return "invalid JSON"
	}
	// Problems with the fields: the same words, the streaming parser
	// adding where.
	reason, _, _ = strings.Cut(reason, " (at offset")
	return reason
}

// sameManifest compares the streaming parser's result with the whole-text
// parser's on data, reading it through buffers of bufSize bytes.
func sameManifest(t testing.TB, data []byte, bufSize int, limit int64) {
	t.Helper()
	want, werr := parseManifestWhole(bytes.NewReader(data), "x/signature.json", limit)
	got, gerr := parseManifestStream(bytes.NewReader(data), "x/signature.json", limit, bufSize, 0)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("buffer %d: streaming: %v; whole: %v\ninput %q", bufSize, gerr, werr, data)
	}
	if werr != nil {
		var wm, gm *ManifestError
		if !errors.As(werr, &wm) || !errors.As(gerr, &gm) || gm.Path != "x/signature.json" || got != nil {
			t.Fatalf("buffer %d: streaming error %T %v (manifest %v), whole %T %v", bufSize, gerr, gerr, got != nil, werr, werr)
		}
		if wc, gc := errClass(wm.Reason), errClass(gm.Reason); wc != gc && !(len(wm.Reason) > 200 && strings.HasPrefix(wc, "hashes: value for")) {
			t.Fatalf("buffer %d: streaming error %q (%s), whole %q (%s)\ninput %q", bufSize, gm.Reason, gc, wm.Reason, wc, data)
		}
		return
	}
	if got.signed != want.signed {
		t.Errorf("buffer %d: signed message's SHA-1 differs; canonical %s\ninput %q", bufSize, canonicalOf(t, data), data)
	}
	if !slices.Equal(got.ents, want.ents) {
		t.Errorf("buffer %d: entries\n%+v\nwant\n%+v", bufSize, got.ents, want.ents)
	}
	if !bytes.Equal(got.Signature, want.Signature) || got.sigNote != want.sigNote || got.Certificate != want.Certificate {
		t.Errorf("buffer %d: signature %x (%q), certificate %q; want %x (%q), %q", bufSize, got.Signature, got.sigNote, got.Certificate,
			want.Signature, want.sigNote, want.Certificate)
	}
	if got.sum != want.sum {
		t.Errorf("buffer %d: Sum differs", bufSize)
	}
}

// streamInputs are the inputs the parsers are compared on: the vectors,
// the real app manifest, FuzzParseManifest's corpus and the documents of
// the manifest tests.
func streamInputs(t testing.TB) [][]byte {
	var inputs [][]byte
	files, _ := filepath.Glob(filepath.Join(ncTests, "vectors", "*.signature.json"))
	files = append(files, "testdata/interop/real-apps/pride_flags.signature.json")
	for _, f := range files {
		inputs = append(inputs, readTB(t, f))
	}
	seeds, _ := filepath.Glob("testdata/fuzz/FuzzParseManifest/*")
	for _, f := range seeds {
		b := readTB(t, f)
		_, lit, _ := strings.Cut(string(b), "\n")
		lit = strings.TrimSpace(lit)
		lit = strings.TrimSuffix(strings.TrimPrefix(lit, "[]byte("), ")")
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		inputs = append(inputs, []byte(s))
	}
	keys, _ := filepath.Glob("testdata/fuzz/FuzzKsort/*")
	for _, f := range keys {
		b := readTB(t, f)
		_, lit, _ := strings.Cut(string(b), "\n")
		lit = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(lit), "string("), ")")
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var doc strings.Builder
		doc.WriteString(`{"hashes": {`)
		for i, k := range strings.Split(s, "\n") {
			if i > 0 {
				doc.WriteString(", ")
			}
			fmt.Fprintf(&doc, "%q: %q", k, strings.Repeat(strconv.Itoa(i%10), 128))
		}
		doc.WriteString(`}, "signature": "", "certificate": ""}`)
		inputs = append(inputs, []byte(doc.String()))
	}
	for _, s := range []string{
		``, ` `, `null`, `{}`, `[]`, `[`, `{`, `{"`, `{"a"`, `{"a":`, `{"a":1`, `"x`, `"\`, `"\u12`, `tru`, `-`, `-0`, `01`, `1.`, `1e`, `1e+`, `.5`,
		`{"hashes": {}, "signature": "", "certificate": ""}`,
		`{"hashes": [], "signature": "", "certificate": ""}`,
		`{"hashes": ["a", "b"], "signature": "", "certificate": ""}`,
		`{"hashes": ["a", 1], "signature": "", "certificate": ""}`,
		`{"hashes": {"b": "1", "a": "2", "b": "3"}, "signature": "", "certificate": ""}`,
		`{"hashes": {"a": "", "b": "` + strings.Repeat("0", 128) + `", "a": "", "0": "x"}, "signature": "", "certificate": ""}`,
		`{"hashes": {"b": "", "c": "` + strings.Repeat("0", 128) + `", "a": ""}, "signature": "", "certificate": ""}`,
		`{"hashes": {"a": "` + strings.Repeat("f", 128) + `", "a": "x"}, "signature": "", "certificate": ""}`,
		`{"hashes": {"a": "1", "b": "2", "c": "3", "b": "4", "d": "5", "a": "6"}, "signature": "", "certificate": ""}`,
		`{"hashes": {"a/b": "1", "a\/b": "2"}, "signature": "", "certificate": ""}`,
		`{"hashes": {"1": "b", "0": "a"}, "signature": "", "certificate": ""}`,
		`{"hashes": {"-9223372036854775809": "a", "-9223372036854775808": "b"}, "signature": "", "certificate": ""}`,
		`{"hashes": {"a": "1"}, "signature": "", "certificate": "", "hashes": {"b": "2"}}`,
		`{"hashes": {"a": "1"}, "signature": "", "certificate": "", "hashes": 5}`,
		`{"hashes": 5, "signature": "", "certificate": "", "hashes": {}}`,
		`{"certificate": "", "signature": "", "hashes": {"a": "1"}}`,
		`{"hash\u0065s": {"a": "1"}, "signature": "", "certificate": ""}`,
		`{"hashes": {"a": 1}, "signature": "", "certificate": ""`,
		`{"hashes": {"a": 1}, "signature": "", "certificate": ""} x`,
		`{"hashes": {"a": 1}, "signature": "\ud800", "certificate": ""}`,
		`{"hashes": {"\ud800": 1}, "signature": "", "certificate": ""} x`,
		`{"x": ` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `, "hashes": {"a": 1}, "signature": "", "certificate": ""}`,
		`{"x": ` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `, "hashes": {}, "signature": "", "certificate": ""}`,
		`{"x": ` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `, "hashes": {}, "signature": "", "certificate": ""}`,
		`{"x": ` + strings.Repeat("[", 600) + strings.Repeat("]", 599) + `, "hashes": {}, "signature": "", "certificate": ""}`,
		`{"x": [1, -0.5e+3, true, false, null, {"y": {}}], "hashes": {"\u00e9\"\\\b\f\n\r\t\u0000": "\ud83d\ude00"}, "signature": "QUJD\n", "certificate": "x"}`,
		"{\"hashes\": {\"a\": \"\xc3\xa9\"}, \"signature\": \"\", \"certificate\": \"\"}",
		"{\"hashes\": {\"a\": \"\xc3\"}, \"signature\": \"\", \"certificate\": \"\"}",
		"{\"hashes\": {\"a\": \"\xef\xbf\xbd\"}, \"signature\": \"\", \"certificate\": \"\"}",
		"{\"hashes\": {}, \"signature\": \"\", \"certificate\": \"\"}\xc3",
		"{\"hashes\": {}, \"signature\": \"\", \"certificate\": \"\"} \xe2\x82",
		"{\"hashes\": {\"a\": 1, \"b\": \"\x01\"}, \"signature\": \"\", \"certificate\": \"\"}",
		"\xef\xbb\xbf{\"hashes\": {}, \"signature\": \"\", \"certificate\": \"\"}",
		`{"hashes": {"a": "1"}, "signature": 1, "certificate": []}`,
		`{"hashes": {"` + strings.Repeat("k", 300) + `": 1}, "signature": "", "certificate": ""}`,
	} {
		inputs = append(inputs, []byte(s))
	}
	return inputs
}

func readTB(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bufSizes are the read buffers the parsers are compared with: tiny ones
// cut every token, escape and UTF-8 sequence somewhere.
var bufSizes = []int{1, 2, 3, 5, 7, 64, 4096, streamBufSize}

func TestStreamMatchesWhole(t *testing.T) {
	for i, data := range streamInputs(t) {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			for _, n := range bufSizes {
				sameManifest(t, data, n, maxManifestSize)
			}
		})
	}
}

// Every prefix of a manifest (a file truncated while it is read) is an
// error, the same one as the whole-text parser's.
func TestStreamTruncated(t *testing.T) {
	data := mustRead(t, filepath.Join(ncTests, "vectors", "v01_app_SomeApp.signature.json"))
	for n := 0; n < len(data); n++ {
		for _, b := range []int{3, 64} {
			sameManifest(t, data[:n], b, maxManifestSize)
		}
		if _, err := parseBytes(data[:n]); err == nil {
			t.Fatalf("prefix of %d bytes parsed", n)
		}
	}
}

// Limits: the size limit is the first problem whatever else is wrong; a
// reader that fails mid-way is a read error.
func TestStreamLimitsAndReadErrors(t *testing.T) {
	for _, data := range streamInputs(t) {
		for _, limit := range []int64{0, 1, int64(len(data)) / 2, int64(len(data)) - 1, int64(len(data))} {
			if limit >= 0 {
				sameManifest(t, data, 7, limit)
			}
		}
	}
	data := mustRead(t, filepath.Join(ncTests, "vectors", "v01_app_SomeApp.signature.json"))
	r := io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(errors.New("disk on fire")))
	_, err := parseManifestStream(r, "x.json", maxManifestSize, 64, 0)
	var me *ManifestError
	if !errors.As(err, &me) || me.Path != "x.json" || !strings.Contains(me.Reason, "read: disk on fire") {
		t.Errorf("got %v, want a read error naming the file", err)
	}
	// A reader that returns nothing, forever, is given up on.
	_, err = parseManifestStream(zeroReader{}, "x.json", maxManifestSize, 64, 0)
	if !errors.As(err, &me) || !strings.Contains(me.Reason, "read:") {
		t.Errorf("got %v, want a read error", err)
	}
	// Small reads are fine.
	if _, err := parseManifestStream(iotest.OneByteReader(bytes.NewReader(data)), "x.json", maxManifestSize, 64, 0); err != nil {
		t.Errorf("one byte at a time: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// Manifests as Nextcloud writes them are hashed as they are read, never
// indexed nor sorted again; keys out of ksort's plain order are.
func TestStreamPlainOrder(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(ncTests, "vectors", "*.signature.json"))
	files = append(files, "testdata/interop/real-apps/pride_flags.signature.json")
	for _, f := range files {
		p := &streamParser{in: streamReader{r: bytes.NewReader(mustRead(t, f)), limit: maxManifestSize, buf: make([]byte, 4096), sum: nopHash{}}}
		if err := p.document(); err != nil || p.hashes == nil || p.semErr != nil || p.phpErr != nil {
			t.Fatalf("%s: %v %v %v", f, err, p.semErr, p.phpErr)
		}
		if p.hashes.general {
			t.Errorf("%s: took the general way", f)
		}
	}
	p := &streamParser{in: streamReader{r: strings.NewReader(`{"hashes": {"b": "1", "a": "2"}}`), limit: 100, buf: make([]byte, 64), sum: nopHash{}}}
	if err := p.document(); err != nil || p.hashes == nil || !p.hashes.general {
		t.Errorf("out of order keys: %v, general %v", err, p.hashes != nil && p.hashes.general)
	}
}

// nopHash stands for the file's SHA-256 where it is not needed.
type nopHash struct{}

func (nopHash) Write(b []byte) (int, error) { return len(b), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 1 }

// A large generated manifest, in plain order and shuffled, through a
// small buffer; and from an *os.File (the size hint).
func TestStreamLarge(t *testing.T) {
	var plain, shuffled []phpcompat.Entry
	for i := 0; i < 5000; i++ {
		k := phpcompat.NewKey(fmt.Sprintf("apps/app%03d/lib/Controller/File%05d.php", i%30, i))
		k.Pos = i
		plain = append(plain, phpcompat.Entry{Key: k, Value: fmt.Sprintf("%0128x", i*7919)})
	}
	phpcompat.Ksort(plain)
	for i := range plain {
		shuffled = append(shuffled, plain[(i*37)%len(plain)])
	}
	shuffled = append(shuffled, phpcompat.Entry{Key: phpcompat.NewKey("17"), Value: "x"}, phpcompat.Entry{Key: phpcompat.NewKey("apps/app001/lib/Controller/File00001.php"), Value: ""})
	for _, e := range [][]phpcompat.Entry{plain, shuffled} {
		hashes, err := phpcompat.JSONEncode(e, true, 1)
		if err != nil {
			t.Fatal(err)
		}
		data := []byte(`{"hashes": ` + string(hashes) + `, "signature": "AAAA", "certificate": "x"}`)
		for _, n := range []int{13, 4096} {
			sameManifest(t, data, n, maxManifestSize)
		}
		path := filepath.Join(t.TempDir(), "signature.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseManifest(f, path)
		f.Close()
		want, _ := parseManifestWhole(bytes.NewReader(data), path, maxManifestSize)
		if err != nil || m.signed != want.signed || !slices.Equal(m.ents, want.ents) {
			t.Errorf("from a file: %v", err)
		}
	}
}

// FuzzParseManifestStream compares the streaming parser with the
// whole-text one; the first byte picks the read buffer's size.
func FuzzParseManifestStream(f *testing.F) {
	for i, data := range streamInputs(f) {
		f.Add(append([]byte{byte(i)}, data...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		sameManifest(t, in[1:], 1+int(in[0]%16), maxManifestSize)
	})
}

// BenchmarkParseManifestStream is BenchmarkParseManifest through the
// streaming parser, its keys ksorted as in a manifest Nextcloud writes
// (BenchmarkParseManifest's are not: the general way).
func BenchmarkParseManifestStream(b *testing.B) {
	var e []phpcompat.Entry
	for i := 0; i < 30000; i++ {
		k := phpcompat.NewKey(fmt.Sprintf("apps/app%03d/lib/Controller/File%05d.php", i%300, i))
		k.Pos = i
		e = append(e, phpcompat.Entry{Key: k, Value: fmt.Sprintf("%0128x", i)})
	}
	phpcompat.Ksort(e)
	hashes, err := phpcompat.JSONEncode(e, true, 1)
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"hashes": ` + string(hashes) + `, "signature": "AAAA", "certificate": "x"}`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ParseManifest(bytes.NewReader(data), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}
