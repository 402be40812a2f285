package verify

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/finding"
)

// parseManifestEmit hands on what parseManifestStream keeps, in the same
// order, or says errUnordered: never another result.
func TestManifestEmitSame(t *testing.T) {
	streamed := 0
	for _, data := range streamInputs(t) {
		if sameEmit(t, data) {
			streamed++
		}
	}
	if streamed < 5 {
		t.Errorf("only %d inputs streamed", streamed)
	}
	for _, s := range []string{
		`{"hashes": {"b": "1", "a": "2"}, "signature": "", "certificate": ""}`,
		`{"hashes": {"a": "1", "a": "2"}, "signature": "", "certificate": ""}`,
		`{"hashes": {"a": "1", "10": "2"}, "signature": "", "certificate": ""}`,
		`{"hashes": ["a"], "signature": "", "certificate": ""}`,
		`{"hashes": {"a": "1"}, "signature": "", "certificate": "", "hashes": {"b": "2"}}`,
	} {
		if _, err := parseManifestEmit(bytes.NewReader([]byte(s)), "x", maxManifestSize, func([]expEntry) {}); !errors.Is(err, errUnordered) {
			t.Errorf("%s: got %v, want errUnordered", s, err)
		}
	}
}

// sameEmit fails t unless parseManifestEmit on data hands on what
// parseManifestStream keeps, or says errUnordered; it reports whether
// data streamed.
func sameEmit(t testing.TB, data []byte) bool {
	t.Helper()
	want, werr := parseManifestStream(bytes.NewReader(data), "x/signature.json", maxManifestSize, streamBufSize, 0)
	var got []expEntry
	m, gerr := parseManifestEmit(bytes.NewReader(data), "x/signature.json", maxManifestSize, func(b []expEntry) {
		got = append(got, b...)
	})
	if errors.Is(gerr, errUnordered) {
		return false
	}
	if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
		t.Fatalf("emit: %v; stream: %v\ninput %q", gerr, werr, data)
	}
	if werr != nil {
		return false
	}
	if len(m.ents) != 0 {
		t.Errorf("emit kept %d entries", len(m.ents))
	}
	if !slices.Equal(got, want.ents) {
		t.Errorf("emitted\n%+v\nwant\n%+v\ninput %q", got, want.ents, data)
	}
	if m.signed != want.signed || m.sum != want.sum || !bytes.Equal(m.Signature, want.Signature) || m.Certificate != want.Certificate || m.sigNote != want.sigNote {
		t.Errorf("emit: signed message, sum, signature or certificate differ\ninput %q", data)
	}
	return true
}

// FuzzManifestEmit: the same as TestManifestEmitSame on any input.
func FuzzManifestEmit(f *testing.F) {
	for _, data := range streamInputs(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameEmit(t, data) })
}

// The streaming comparison (checkStream) finds what the whole one
// (checkWhole) finds, on names whose directory order is not their keys'
// order ("a.b" sorts before "a/…", "a" before "a.b"), with files missing,
// extra, changed, a symlink to a directory, a hard link, and on a
// manifest not in key order, which falls back to checkWhole.
func TestCheckStreamSameAsWhole(t *testing.T) {
	p := newSignPKI(t)
	sc := newAppScope(t, "demoapp")
	files := map[string]string{"appinfo/info.xml": "i"}
	for _, k := range []string{"a/k", "a.b", "a-b", "a0", "b/x", "b/x.y", "b.c/z", "b!/q", "b/x/../w", "c/d/e/f", "c/d.e", "c/d/e.f", "c/d/e/f.g", "c/d e", "c.d"} {
		if filepath.Clean(k) != k {
			continue
		}
		files[k] = "content of " + k
	}
	put(t, sc.Dir, files)
	p.sign(t, sc)
	same := func(what string) {
		t.Helper()
		ctx := context.Background()
		whole, werr := sc.checkWhole(ctx, p.trust)
		got, gerr, done := sc.checkStream(ctx, p.trust)
		if !done {
			t.Fatalf("%s: checkStream did not stream", what)
		}
		if werr != nil || gerr != nil {
			t.Fatalf("%s: %v, %v", what, werr, gerr)
		}
		if gl, wl := findingLines(got), findingLines(whole); !slices.Equal(gl, wl) || got.Files != whole.Files || got.Bytes != whole.Bytes {
			t.Fatalf("%s: stream %q (%d files, %d bytes)\nwhole %q (%d files, %d bytes)", what, gl, got.Files, got.Bytes, wl, whole.Files, whole.Bytes)
		}
		t.Logf("%s: %q", what, findingLines(got))
		if !reflect.DeepEqual(got, whole) {
			t.Fatalf("%s: findings differ in detail:\n%+v\n%+v", what, got.Findings, whole.Findings)
		}
	}
	same("clean")
	put(t, sc.Dir, map[string]string{"a.b": "changed", "a/new": "extra", "b/y/new": "extra", "0": "numeric", "zz": "last"})
	os.Remove(filepath.Join(sc.Dir, "a-b"))
	os.RemoveAll(filepath.Join(sc.Dir, "c", "d"))
	symlink(t, filepath.Join(sc.Dir, "b"), filepath.Join(sc.Dir, "c", "d"))
	if err := os.Link(filepath.Join(sc.Dir, "a0"), filepath.Join(sc.Dir, "b", "hard")); err != nil {
		t.Fatal(err)
	}
	same("changed")
	os.RemoveAll(filepath.Join(sc.Dir, "b"))
	same("removed")

	// A manifest not in key order: the same findings, by checkWhole.
	hashes := manifestHashes(t, sc)
	hashes["10"] = sha512hex("x")
	p.signHashes(t, sc, hashes)
	if _, _, done := sc.checkStream(context.Background(), p.trust); done {
		t.Fatal("checkStream streamed a manifest with a numeric key")
	}
	whole, _ := sc.checkWhole(context.Background(), p.trust)
	if gl, wl := findingLines(check(t, sc, p.trust)), findingLines(whole); !slices.Equal(gl, wl) || len(gl) == 0 {
		t.Fatalf("unordered manifest: Check %q, checkWhole %q", gl, wl)
	}
}

// parseHash is finding.ParseHash.
func TestParseHashSame(t *testing.T) {
	hex := "0123456789abcdef"
	for _, s := range []string{"", "0", sha512hex("a"), sha512hex("b")[:127], sha512hex("c") + "0"} {
		got, gok := parseHash(s)
		want, wok := finding.ParseHash(s)
		if got != want || gok != wok {
			t.Errorf("%q: got %x %v, want %x %v", s, got, gok, want, wok)
		}
	}
	base := []byte(sha512hex("x"))
	for i := 0; i < 128; i += 7 {
		for c := 0; c < 256; c++ {
			b := slices.Clone(base)
			b[i] = byte(c)
			got, gok := parseHash(string(b))
			want, wok := finding.ParseHash(string(b))
			if got != want || gok != wok || gok != (strings.IndexByte(hex, byte(c)) >= 0) {
				t.Fatalf("%q: got %x %v, want %x %v", b, got, gok, want, wok)
			}
		}
	}
}
