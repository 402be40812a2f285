package mimetypelist

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/oracledir"
)

// mimeCase is one install for the mime type list tests.
type mimeCase struct {
	name    string
	icons   []string            // core/img/filetypes (nil: the release's own list)
	themes  map[string][]string // theme -> icons ("" entry: a theme without icons dir)
	files   map[string]string   // extra files relative to the root (themes/README ...)
	custom  map[string]string   // config/NAME -> content
	dirs    []string            // config/NAME created as a directory
	noTheme bool                // no themes/ directory
	remove  []string            // dist files to remove
}

var mimeCases = []mimeCase{
	{name: "defaults"},
	{name: "custom aliases", custom: map[string]string{"mimetypealiases.json": `{
	"text/csv": "x-office/document",
	"application/x-bild": "bild/\u00fcber",
	"text/x-emoji": "\ud83d\ude00/a",
	"application/x-slash": "a/b/c",
	"application/<&'>": "odd"
}`}},
	{name: "numeric keys and empty values", custom: map[string]string{"mimetypealiases.json": `{
	"7": "text", "0": "zero", "-3": "minus", "01": "leading zero", "1e3": "float-like",
	"9223372036854775807": "max", "9223372036854775808": "beyond", "": "empty key",
	"_mine": "a comment", "emptyval": "", "text/csv": "csv"
}`}},
	{name: "values of every JSON type", custom: map[string]string{"mimetypealiases.json": `{
	"n": null, "t": true, "f": false, "i": 42, "big": 123456789012345678901,
	"fl": 1.5, "one": 1.0, "e20": 1e20, "e16": 1e16, "small": 0.00001, "tiny": 0.0001, "negzero": -0.0,
	"obj": {"a": "b/c", "1": [1, 2, {}], "0": []}, "list": ["x", {}, [[]]],
	"s": "\"quote\\ back\u0007 \u00e9 \u2028 \/"
}`}},
	{name: "infinite value", custom: map[string]string{"mimetypealiases.json": `{"inf": 1e999}`}},
	{name: "invalid custom JSON", custom: map[string]string{"mimetypealiases.json": `{"text/csv": "x",`,
		"mimetypenames.json": "{\"a/b\": \"\xff\"}", "mimetypemapping.json": "nope"}},
	{name: "custom aliases null", custom: map[string]string{"mimetypealiases.json": `null`}},
	{name: "custom aliases a string", custom: map[string]string{"mimetypealiases.json": `"text"`}},
	{name: "custom aliases a list", custom: map[string]string{"mimetypealiases.json": `["a", "b/c"]`}},
	{name: "custom aliases empty", custom: map[string]string{"mimetypealiases.json": `[]`}},
	{name: "duplicate keys", custom: map[string]string{"mimetypealiases.json": `{"text/csv": "a", "x/y": "1", "text/csv": "b"}`}},
	{name: "custom file is a directory", dirs: []string{"mimetypealiases.json", "mimetypenames.json"}},
	{name: "custom names", custom: map[string]string{"mimetypenames.json": `{
	"_x": "hidden", "text/plain": "Plain \u00fc text", "a/b": "  \t ", "new/type": "Quote \" and /slash",
	"application/pdf": "", "it's": "apostrophe key"
}`}},
	{name: "names integer key", custom: map[string]string{"mimetypenames.json": `{"123": "x"}`}},
	{name: "names non-string value", custom: map[string]string{"mimetypenames.json": `{"a/b": 5}`}},
	{name: "names comment with any value", custom: map[string]string{"mimetypenames.json": `{"_c": 5, "_d": ["x"]}`}},
	{name: "mapping numeric extension", custom: map[string]string{"mimetypemapping.json": `{"1": ["text/plain"], "bak": ["text/plain"]}`}},
	{name: "mapping non-array value", custom: map[string]string{"mimetypemapping.json": `{"xyz": 5, "abc": "text/plain"}`}},
	{name: "mapping nested array", custom: map[string]string{"mimetypemapping.json": `{"xyz": [["a"]]}`}},
	{name: "mapping null", custom: map[string]string{"mimetypemapping.json": `null`}},
	{name: "no themes directory", noTheme: true},
	{name: "missing default aliases", remove: []string{"mimetypealiases.dist.json"}},
	{name: "missing default mapping", remove: []string{"mimetypemapping.dist.json"}},
	{name: "missing default names", remove: []string{"mimetypenames.dist.json"}},
	{name: "icons and themes",
		icons: []string{"folder.svg", "folder.png", "10.svg", "9.svg", "9.5.svg", "010.svg", "1e1.svg", " 7.svg", "abc", "noext",
			"a.b.c", ".hidden", "..svg", "x.", "nl\n.svg", "\n", "a\nb", "\u00e9t\u00e9.svg", "01.svg", "1.svg"},
		themes: map[string][]string{"example": {"a.svg", "b.png", "a.png", "10.svg", "9.svg"}, "0": {"z.svg"}, "12": {}, "empty": nil, "nodir": {""}},
		files:  map[string]string{"themes/README": "x", "core/img/filetypes/sub/inner.svg": "x"}},
	{name: "non-UTF-8 icon name", icons: []string{"folder.svg", "\xff.svg"}},
	{name: "non-UTF-8 theme name", themes: map[string][]string{"\xfe": {"a.svg"}}},
}

func buildMimeTree(t testing.TB, c mimeCase, icons []string) (root, config string) {
	t.Helper()
	root = t.TempDir()
	config = filepath.Join(root, "config")
	for _, d := range []string{"core/img/filetypes", "resources/config", "config"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if !c.noTheme {
		if err := os.MkdirAll(filepath.Join(root, "themes"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if c.icons != nil {
		icons = c.icons
	}
	for _, n := range icons {
		mimeWrite(t, filepath.Join(root, "core/img/filetypes", n), []byte("<svg/>"))
	}
	for theme, list := range c.themes {
		switch {
		case list == nil:
			mimeWrite(t, filepath.Join(root, "themes", theme, "core/css/x.css"), []byte("x"))
		case len(list) == 0:
			if err := os.MkdirAll(filepath.Join(root, "themes", theme, "core/img/filetypes"), 0o755); err != nil {
				t.Fatal(err)
			}
		case list[0] == "":
			mimeWrite(t, filepath.Join(root, "themes", theme, "core/img/filetypes"), []byte("a file, not a directory"))
		default:
			for _, n := range list {
				mimeWrite(t, filepath.Join(root, "themes", theme, "core/img/filetypes", n), []byte("x"))
			}
		}
	}
	for p, content := range c.files {
		mimeWrite(t, filepath.Join(root, p), []byte(content))
	}
	dist, err := filepath.Glob("testdata/mimetypelist/dist/*.json")
	if err != nil || len(dist) != 3 {
		t.Fatalf("testdata dist files: %v %v", dist, err)
	}
	for _, f := range dist {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		mimeWrite(t, filepath.Join(root, "resources/config", filepath.Base(f)), data)
	}
	for _, n := range c.remove {
		if err := os.Remove(filepath.Join(root, "resources/config", n)); err != nil {
			t.Fatal(err)
		}
	}
	for n, content := range c.custom {
		mimeWrite(t, filepath.Join(config, n), []byte(content))
	}
	for _, n := range c.dirs {
		if err := os.MkdirAll(filepath.Join(config, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root, config
}

func mimeWrite(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// phpResult is what harness.php prints.
type phpResult struct {
	All     *string `json:"all"`
	Matched bool    `json:"matched"`
	Default *string `json:"default"`
	Class   string  `json:"class"`
	Message string  `json:"message"`
	Caught  bool    `json:"caught"`
}

func runHarness(t *testing.T, code, root, config, onDisk string) phpResult {
	t.Helper()
	cmd := exec.Command("php", "-d", "opcache.enable_cli=0", "testdata/mimetypelist/harness.php", code, root, config, onDisk)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("harness: %v\n%s", err, stderr.String())
	}
	var r phpResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("harness output %q: %v", out, err)
	}
	return r
}

func b64(t *testing.T, s *string) []byte {
	t.Helper()
	if s == nil {
		t.Fatal("harness printed no file")
	}
	b, err := base64.StdEncoding.DecodeString(*s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSameError requires Go's error to be the one PHP threw.
func checkSameError(t *testing.T, what string, err error, r phpResult) {
	t.Helper()
	var me *mimetypeListError
	if !errors.As(err, &me) {
		t.Fatalf("%s: Nextcloud threw %s %q, Go returned %v", what, r.Class, r.Message, err)
	}
	if me.Class != r.Class || me.Caught() != r.Caught {
		t.Fatalf("%s: Nextcloud threw %s (caught %v) %q, Go %s (caught %v) %q", what, r.Class, r.Caught, r.Message, me.Class, me.Caught(), me.Message)
	}
	if r.Caught && me.Message != r.Message {
		t.Fatalf("%s: message\nNextcloud %q\nGo        %q", what, r.Message, me.Message)
	}
}

// TestMimetypeListOracle runs Nextcloud's own Detection and
// GenerateMimetypeFileBuilder (the oracle's 25.0.12 and 33.0.0 code) on each
// case and requires the same generated bytes, the same hash decision and
// the same hash, or the same failure.
func TestMimetypeListOracle(t *testing.T) {
	oracle := oracledir.Find(t)
	if _, err := exec.LookPath("php"); err != nil {
		t.Skip("php-cli is not installed (apt-get install php-cli): cannot run Nextcloud's own code")
	}
	for _, release := range []string{"25.0.12", "33.0.0"} {
		code := filepath.Join(oracle, release, "code")
		if _, err := os.Stat(filepath.Join(code, "core/Command/Maintenance/Mimetype/GenerateMimetypeFileBuilder.php")); err != nil {
			t.Fatalf("oracle %s: %v", release, err)
		}
		major, _ := strconv.Atoi(strings.SplitN(release, ".", 2)[0])
		icons := oracledir.ReleaseIcons(t, filepath.Join(oracle, release))
		for _, c := range mimeCases {
			t.Run(release+"/"+c.name, func(t *testing.T) {
				root, config := buildMimeTree(t, c, icons)
				junk := filepath.Join(t.TempDir(), "junk.js")
				mimeWrite(t, junk, []byte("not the generated file"))

				php := runHarness(t, code, root, config, junk)
				g := &mimetypeGen{root: root, configDir: config}
				g.rules, _ = mimetypeRulesFor(major)
				all, err := g.generate(false)
				if php.Class != "" {
					t.Logf("Nextcloud fails generating: %s %q", php.Class, php.Message)
					checkSameError(t, "generating", err, php)
					_, _, err := Hash(root, config, major, []byte("x"))
					checkSameError(t, "Hash", err, php)
					return
				}
				if err != nil {
					t.Fatalf("Nextcloud generated the file, Go: %v", err)
				}
				want := b64(t, php.All)
				if !bytes.Equal(all, want) {
					t.Fatalf("generated file differs\nNextcloud:\n%s\nGo:\n%s", want, all)
				}
				if php.Matched {
					t.Fatal("harness matched the junk file")
				}
				if h, ok, err := Hash(root, config, major, append(want, '\n')); ok || err != nil || !h.IsZero() {
					t.Fatalf("a file that is not the generated one: %x %v %v, want hashed as is", h[:4], ok, err)
				}

				// The file on disk is what Nextcloud generates: it hashes the
				// default file instead.
				onDisk := filepath.Join(t.TempDir(), "mimetypelist.js")
				mimeWrite(t, onDisk, want)
				php = runHarness(t, code, root, config, onDisk)
				h, ok, err := Hash(root, config, major, want)
				if php.Class != "" {
					t.Logf("Nextcloud fails once the file matched: %s %q", php.Class, php.Message)
					checkSameError(t, "default generation", err, php)
					return
				}
				if !php.Matched {
					t.Fatal("Nextcloud did not match its own file")
				}
				if err != nil || !ok {
					t.Fatalf("Hash: %v %v, want the default file's hash", ok, err)
				}
				def := b64(t, php.Default)
				t.Logf("matched: hashes the default file (%d bytes; the current one has %d)", len(def), len(want))
				if h != finding.Hash(sha512.Sum512(def)) {
					g2 := &mimetypeGen{root: root, configDir: config, rules: g.rules}
					mine, _ := g2.generate(true)
					t.Fatalf("default file differs\nNextcloud:\n%s\nGo:\n%s", def, mine)
				}
			})
		}
	}
}

func TestMimetypeListHashBasics(t *testing.T) {
	c := mimeCase{custom: map[string]string{"mimetypealiases.json": `{"text/csv": "x-office/document"}`}}
	root, config := buildMimeTree(t, c, []string{"folder.svg", "file.svg"})
	for _, major := range []int{17, 24, 25, 28, 29, 31, 32, 33, 34} {
		g := &mimetypeGen{root: root, configDir: config}
		g.rules, _ = mimetypeRulesFor(major)
		all, err := g.generate(false)
		if err != nil {
			t.Fatalf("%d: %v", major, err)
		}
		def, err := g.generate(true)
		if err != nil {
			t.Fatalf("%d: %v", major, err)
		}
		if bytes.Equal(all, def) {
			t.Fatalf("%d: custom alias did not change the file", major)
		}
		if !bytes.Contains(all, []byte(`"text/csv": "x-office/document"`)) || !bytes.Contains(def, []byte(`"text/csv": "x-office/spreadsheet"`)) {
			t.Fatalf("%d: aliases not as expected:\n%s", major, all)
		}
		if got := bytes.Contains(all, []byte("\tnames: {")); got != (major >= 32) {
			t.Fatalf("%d: names block present %v", major, got)
		}
		onDisk := filepath.Join(root, Path)
		mimeWrite(t, onDisk, all)
		h, ok, err := Hash(root, config, major, mustRead(t, onDisk))
		if err != nil || !ok || h != finding.Hash(sha512.Sum512(def)) {
			t.Fatalf("%d: %v %v", major, ok, err)
		}
		if _, ok, err := Hash(root, config, major, def); ok || err != nil {
			t.Fatalf("%d: the default file with custom aliases configured: %v %v, want hashed as is", major, ok, err)
		}
	}
	if _, ok, err := Hash(root, config, 16, nil); ok || err != nil {
		t.Fatalf("16: %v %v", ok, err)
	}
}

// TestMimetypeListFIFO: a FIFO where Nextcloud reads a JSON file would
// block it; this returns an error at once.
func TestMimetypeListFIFO(t *testing.T) {
	for _, name := range []string{"config/mimetypealiases.json", "resources/config/mimetypealiases.dist.json"} {
		root, config := buildMimeTree(t, mimeCase{}, []string{"file.svg"})
		p := filepath.Join(root, name)
		os.Remove(p)
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := Hash(root, config, 33, []byte("x"))
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Fatalf("%s: %v, want an error naming it", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: blocked on a FIFO", name)
		}
	}
}

func TestMimetypeListHugeCustomFile(t *testing.T) {
	root, config := buildMimeTree(t, mimeCase{}, []string{"file.svg"})
	p := filepath.Join(config, "mimetypealiases.json")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFile + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, _, err := Hash(root, config, 25, []byte("x")); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("%v, want an error naming %s", err, p)
	}
}

func TestMimetypeInputs(t *testing.T) {
	c := mimeCase{themes: map[string][]string{"example": {"a.svg"}}}
	root, config := buildMimeTree(t, c, []string{"file.svg"})
	in := mimetypeInputs(root, config, 33)
	want := []string{
		filepath.Join(root, "resources/config/mimetypealiases.dist.json"),
		filepath.Join(config, "mimetypenames.json"),
		filepath.Join(root, "core/img/filetypes"),
		filepath.Join(root, "themes"),
		filepath.Join(root, "themes/example/core/img/filetypes"),
	}
	for _, w := range want {
		found := false
		for _, p := range in {
			found = found || p == w
		}
		if !found {
			t.Errorf("missing %s in %q", w, in)
		}
	}
	for _, p := range mimetypeInputs(root, config, 25) {
		if strings.Contains(p, "mimetypenames") {
			t.Errorf("25 has no names file, got %s", p)
		}
	}
	if in := mimetypeInputs(root, config, 16); in != nil {
		t.Errorf("16: %q", in)
	}
}

func TestPHPFloat(t *testing.T) {
	// Outputs of PHP 8.2 json_encode(json_decode(X)).
	for in, want := range map[float64]string{
		1.0: "1", 10.0: "10", 1e20: "1.0e+20", 1e17: "1.0e+17", 1e16: "10000000000000000",
		0.0001: "0.0001", 0.00001: "1.0e-5", 1.5e-7: "1.5e-7", 0.1: "0.1", 12345678901234567890: "1.2345678901234567e+19",
		-2.5: "-2.5", 0.5: "0.5", 123.456: "123.456",
	} {
		if got := string(appendPHPFloat(nil, in)); got != want {
			t.Errorf("%v: %q, want %q", in, got, want)
		}
	}
}

func TestStripLastExtension(t *testing.T) {
	for in, want := range map[string]string{
		"folder.svg": "folder", "a.b.c": "a.b", "noext": "", ".hidden": "", "..svg": ".", "x.": "x",
		"\n": "\n", "\nab": "\n", "nl\n.svg": "nl\n", "": "",
	} {
		if got := stripLastExtension(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func BenchmarkMimetypeListHash(b *testing.B) {
	c := mimeCase{custom: map[string]string{"mimetypealiases.json": `{"text/csv": "x-office/document"}`},
		icons: []string{"application.svg", "audio.svg", "file.svg", "folder.svg", "image.svg", "text.svg", "video.svg"}}
	root, config := buildMimeTree(b, c, nil)
	g := &mimetypeGen{root: root, configDir: config}
	g.rules, _ = mimetypeRulesFor(33)
	all, err := g.generate(false)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok, err := Hash(root, config, 33, all); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestGenerate: Generate is what the generator makes, current and default.
func TestGenerate(t *testing.T) {
	c := mimeCase{custom: map[string]string{"mimetypealiases.json": `{"text/csv": "x-office/document"}`}}
	root, config := buildMimeTree(t, c, []string{"folder.svg", "file.svg"})
	g := &mimetypeGen{root: root, configDir: config}
	g.rules, _ = mimetypeRulesFor(33)
	for _, dflt := range []bool{false, true} {
		want, err := g.generate(dflt)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Generate(root, config, 33, dflt)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Generate(default %v) = %q, %v; want %q", dflt, got, err, want)
		}
	}
	if got, err := Generate(root, config, 16, false); got != nil || err != nil {
		t.Fatalf("Generate before 17 = %q, %v; want nothing", got, err)
	}
}
