package verify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/phpcompat"
)

// RSA key generation dominates the cost of these tests; the keys are made
// once per test binary.
var (
	signCAKey   = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
	signLeafKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
)

// signPKI is a throwaway code-signing CA, its trust and one leaf key.
type signPKI struct {
	caKey   *rsa.PrivateKey
	ca      *x509.Certificate
	trust   *Trust
	leafKey *rsa.PrivateKey
}

func newSignPKI(t *testing.T) *signPKI {
	t.Helper()
	caKey, err := signCAKey()
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := signLeafKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Throwaway Code Signing CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "root.crt")
	writeFile(t, file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	tr, err := LoadTrust(file, "")
	if err != nil {
		t.Fatal(err)
	}
	return &signPKI{caKey: caKey, ca: ca, trust: tr, leafKey: leafKey}
}

// leaf returns the DER and PEM of a certificate for cn, issued by the CA.
func (p *signPKI) leaf(t *testing.T, cn string) ([]byte, []byte) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &p.leafKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// sign signs the scope's tree with a leaf named after the scope.
func (p *signPKI) sign(t *testing.T, sc *Scope) {
	t.Helper()
	_, certPEM := p.leaf(t, sc.Name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sc.Sign(ctx, p.leafKey, certPEM, DigestSHA1); err != nil {
		t.Fatalf("Sign: %v", err)
	}
}

// signHashes writes a signature.json for the scope holding exactly hashes,
// whatever is on disk.
func (p *signPKI) signHashes(t *testing.T, sc *Scope, hashes map[string]string) {
	t.Helper()
	der, _ := p.leaf(t, sc.Name)
	var entries []phpcompat.Entry
	for _, k := range sortedKeys(hashes) {
		pk := phpcompat.NewKey(k)
		pk.Pos = len(entries)
		entries = append(entries, phpcompat.Entry{Key: pk, Value: hashes[k]})
	}
	data, err := signatureJSON(entries, p.leafKey, der, DigestSHA1)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, sc.ManifestPath(), data)
}

func sha512hex(data string) string {
	s := sha512.Sum512([]byte(data))
	return hex.EncodeToString(s[:])
}

// put writes files (path relative to dir => content).
func put(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		writeFile(t, filepath.Join(dir, rel), []byte(content))
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("cannot create a FIFO: %v", err)
	}
}

// newCoreScope returns the core scope of a fresh install (with core/).
func newCoreScope(t *testing.T) *Scope {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "core"), 0o755); err != nil {
		t.Fatal(err)
	}
	return NewInstall(root, nil, "").Core()
}

// newAppScope returns the scope of app id under root/apps (with appinfo/).
func newAppScope(t *testing.T, id string) *Scope {
	t.Helper()
	root := t.TempDir()
	sc := NewInstall(root, nil, "").App(id, "")
	if err := os.MkdirAll(filepath.Join(sc.Dir, "appinfo"), 0o755); err != nil {
		t.Fatal(err)
	}
	return sc
}

// within runs f and fails the test if it has not returned after d.
// unblock, if not nil, is called on timeout to let f finish.
func within(t *testing.T, d time.Duration, f func(), unblock func()) bool {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		if unblock != nil {
			unblock()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
		}
		return false
	}
}

// check runs sc.Check with a deadline and fails the test if it hangs.
func check(t *testing.T, sc *Scope, tr *Trust) ScopeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	var res ScopeResult
	var err error
	if !within(t, hangGuard, func() { res, err = sc.Check(ctx, tr) }, nil) {
		t.Fatalf("Check did not return after %v: it hangs", hangGuard)
	}
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return res
}

// manifestHashes returns the hashes of the scope's signature.json.
func manifestHashes(t *testing.T, sc *Scope) map[string]string {
	t.Helper()
	m, err := ParseManifest(bytes.NewReader(mustRead(t, sc.ManifestPath())), sc.ManifestPath())
	if err != nil {
		t.Fatal(err)
	}
	return m.hashMap()
}

func wantFindings(t *testing.T, res ScopeResult, want ...string) {
	t.Helper()
	got := findingLines(res)
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n  got  %q\n  want %q", got, want)
	}
}

func findingFor(res ScopeResult, path string) (finding.Finding, bool) {
	for _, f := range res.Findings {
		if f.Path == path {
			return f, true
		}
	}
	return finding.Finding{}, false
}

func TestCoreExclusions(t *testing.T) {
	p := newSignPKI(t)
	sc := newCoreScope(t)
	included := map[string]string{
		"index.php":                          "<?php",
		"lib/a.php":                          "a",
		"lib/data/x.txt":                     "a data directory below the root is hashed",
		"lib/config/y.php":                   "y",
		"core/apps/z.js":                     "z",
		"core/js/z.js":                       "z",
		"x.DS_Store":                         "not an excluded name",
		".DS_Store.bak":                      "not an excluded name",
		"Thumbs.db/inner.txt":                "excluded names apply to files, not directories",
		".webapp-nextcloud-25.0":             "does not match the pattern",
		"lib/.webapp-nextcloud-1.2.3-r":      "does not match the pattern",
		".webapp-nextcloud-25.0.1-r2.bak":    "does not match the pattern",
		"sub/appinfo/signature.json":         "only the scope's own appinfo/signature.json is skipped",
		"lib/core/signature.json":            "only the scope's own core/signature.json is skipped",
		"core/signature.json.bak":            "x",
		"datafile":                           "x",
		"data.txt":                           "x",
		"apps.php":                           "x",
		"lost+found.txt":                     "x",
		"updater.php":                        "x",
		"Data/x":                             "paths are case-sensitive",
		"appinfo/info.xml":                   "x",
		"nextcloud-init-sync.lock.d/f":       "x",
		"lib/nested/deeper/still/file.txt":   "x",
		"lib/größe 😀.txt":                    "x",
		"lib/space in name.txt":              "x",
		"lib/quote\"and\\backslash.txt":      "x",
		"lib/control\x01char.txt":            "x",
		"lib/10":                             "numeric file name",
		"9":                                  "numeric file name",
		"lib/.htaccess":                      "x\n#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####\ny",
		"themes-not-excluded/t.css":          "x",
		"lib/updater/index.php":              "x",
		"lib/_oc_upgrade/u":                  "x",
		"lib/assets/a.js":                    "x",
		"lib/apps/a.php":                     "x",
		"lib/themes/t.css":                   "x",
		"lib/lost+found/l":                   "x",
		"core/signature.json.d/x":            "x",
		"lib/.webapp-nextcloud-1.2.3\nx":     "newline inside: does not match",
		"lib/.webapp-nextcloud-1.2.3-r4-rc1": "x",
	}
	excluded := map[string]string{
		".DS_Store":                     "x",
		"lib/.DS_Store":                 "x",
		"lib/Thumbs.db":                 "x",
		".directory":                    "x",
		".webapp":                       "x",
		".rnd":                          "x",
		"lib/nextcloud-init-sync.lock":  "x",
		".webapp-nextcloud-25.0.1-r2":   "x",
		".webapp-nextcloud-25.0.1":      "x",
		"lib/.webapp-nextcloud-1.2.3\n": "PCRE's $ matches before a final newline",
		"data/f":                        "x",
		"data/sub/g":                    "x",
		"config/other.php":              "x",
		"themes/t.css":                  "x",
		"apps/app1/a.php":               "x",
		"assets/a.js":                   "x",
		"lost+found/l":                  "x",
		"updater/index.php":             "x",
		"_oc_upgrade/u":                 "x",
		"appinfo/signature.json":        "x",
	}
	put(t, sc.Dir, included)
	put(t, sc.Dir, excluded)
	p.sign(t, sc)

	got := manifestHashes(t, sc)
	for k, content := range included {
		if h, ok := got[k]; !ok {
			t.Errorf("%q: not in the manifest, want it hashed", k)
		} else if k != ".htaccess" && h != sha512hex(content) {
			t.Errorf("%q: got hash %s, want %s", k, h, sha512hex(content))
		}
	}
	for k := range got {
		if _, ok := included[k]; !ok {
			t.Errorf("%q: in the manifest, want it excluded", k)
		}
	}

	wantFindings(t, check(t, sc, p.trust))

	// Excluded places may change freely.
	put(t, sc.Dir, map[string]string{
		"data/new":           "x",
		"apps/app2/x.php":    "x",
		"lib/.DS_Store":      "changed",
		"updater/index.php":  "changed",
		"config/config.php":  "<?php $CONFIG = [];",
		".webapp":            "changed",
		"assets/new.js":      "x",
		"_oc_upgrade/new":    "x",
		"lost+found/new":     "x",
		"themes/new/x.css":   "x",
		"appinfo/other.json": "included: EXTRA_FILE",
		"lib/data/new.txt":   "included: EXTRA_FILE",
	})
	wantFindings(t, check(t, sc, p.trust), "EXTRA_FILE appinfo/other.json", "EXTRA_FILE lib/data/new.txt")
}

// A custom data directory and extra apps roots are excluded from core.
func TestCoreCustomExclusions(t *testing.T) {
	p := newSignPKI(t)
	root := t.TempDir()
	put(t, root, map[string]string{
		"config/config.php": "<?php\n$CONFIG = array (\n  'datadirectory' => '" + root + "/mydata',\n" +
			"  'apps_paths' => array (\n    0 => array ('path' => '" + root + "/apps', 'url' => '/apps', 'writable' => false),\n" +
			"    1 => array ('path' => '" + root + "/extra-apps', 'url' => '/extra-apps', 'writable' => true),\n  ),\n);\n",
		"core/x.js":         "x",
		"version.php":       "<?php\n$OC_Version = array(33,0,0,16);\n",
		"mydata/f":          "excluded by datadirectory",
		"extra-apps/a/b":    "excluded by apps_paths",
		"apps/a/b":          "excluded",
		"data/f":            "excluded",
		"other-data/f":      "hashed",
		"lib/mydata/f":      "hashed",
		"lib/extra-apps/f":  "hashed",
		"override-data/f":   "excluded by the dataDir argument",
		"override-apps/a/f": "excluded by the appsRoots argument",
	})
	in, err := OpenInstall(root, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	sc := in.Core()
	p.sign(t, sc)
	got := sortedKeys(manifestHashes(t, sc))
	want := []string{"core/x.js", "lib/extra-apps/f", "lib/mydata/f", "other-data/f", "override-apps/a/f", "override-data/f", "version.php"}
	if !slices.Equal(got, want) {
		t.Errorf("from config.php: got keys %q, want %q", got, want)
	}

	sc = NewInstall(root, []string{filepath.Join(root, "override-apps")}, filepath.Join(root, "override-data")).Core()
	p.sign(t, sc)
	got = sortedKeys(manifestHashes(t, sc))
	want = []string{"core/x.js", "extra-apps/a/b", "lib/extra-apps/f", "lib/mydata/f", "mydata/f", "other-data/f", "version.php"}
	if !slices.Equal(got, want) {
		t.Errorf("from arguments: got keys %q, want %q", got, want)
	}
}

func TestAppExclusions(t *testing.T) {
	p := newSignPKI(t)
	sc := newAppScope(t, "demoapp")
	put(t, sc.Dir, map[string]string{
		"appinfo/info.xml":       "<info/>",
		"appinfo/signature.json": "replaced by Sign",
		"core/signature.json":    "skipped in apps too",
		"data/x":                 "an app's own data/ is hashed",
		"config/y":               "hashed",
		"apps/z":                 "hashed",
		"updater/u":              "hashed",
		".DS_Store":              "skipped",
		"l10n/.directory":        "skipped",
		"img/Thumbs.db":          "skipped",
		"js/app.js":              "hashed",
		".htaccess":              "a\n#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####\nb",
	})
	p.sign(t, sc)
	got := manifestHashes(t, sc)
	want := []string{".htaccess", "appinfo/info.xml", "apps/z", "config/y", "data/x", "js/app.js", "updater/u"}
	if keys := sortedKeys(got); !slices.Equal(keys, want) {
		t.Errorf("got keys %q, want %q", keys, want)
	}
	// The marker rule is for the server root's .htaccess only.
	if h, want := got[".htaccess"], sha512hex("a\n#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####\nb"); h != want {
		t.Errorf("app .htaccess: got %s, want the hash of the whole file %s", h, want)
	}
	wantFindings(t, check(t, sc, p.trust))
}

func TestHtaccessMarker(t *testing.T) {
	const marker = "#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####"
	tests := []struct {
		name, content, hashed string
	}{
		{"no marker", "Options -Indexes\n", "Options -Indexes\n"},
		{"marker once", "Options -Indexes\n" + marker + "\nErrorDocument 404 /index.php\n", "Options -Indexes\n"},
		{"marker first", marker + "\nanything", ""},
		{"marker last", "above\n" + marker, "above\n"},
		{"marker twice", "a\n" + marker + "\nb\n" + marker + "\nc", "a\n" + marker + "\nb\n" + marker + "\nc"},
		{"marker three times", marker + marker + marker, marker + marker + marker},
		{"marker case differs", "a\n" + strings.ToLower(marker) + "\nb", "a\n" + strings.ToLower(marker) + "\nb"},
		{"empty", "", ""},
	}
	p := newSignPKI(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := newCoreScope(t)
			put(t, sc.Dir, map[string]string{".htaccess": tt.content, "sub/.htaccess": tt.content})
			p.sign(t, sc)
			got := manifestHashes(t, sc)
			if got[".htaccess"] != sha512hex(tt.hashed) {
				t.Errorf("root .htaccess: got %s, want sha512(%q)", got[".htaccess"], tt.hashed)
			}
			if got["sub/.htaccess"] != sha512hex(tt.content) {
				t.Errorf("sub/.htaccess: got %s, want the hash of the whole file", got["sub/.htaccess"])
			}
			res := check(t, sc, p.trust)
			wantFindings(t, res)
			if res.Files != 2 || res.Bytes != int64(len(tt.hashed)+len(tt.content)) {
				t.Errorf("got %d files, %d bytes, want 2 files, %d bytes", res.Files, res.Bytes, len(tt.hashed)+len(tt.content))
			}
		})
	}

	t.Run("edits after a single marker", func(t *testing.T) {
		sc := newCoreScope(t)
		ht := filepath.Join(sc.Dir, ".htaccess")
		put(t, sc.Dir, map[string]string{".htaccess": "top\n" + marker + "\nbottom\n"})
		p.sign(t, sc)
		for _, step := range []struct {
			content string
			want    []string
		}{
			{"top\n" + marker + "\nErrorDocument 403 /x\nmore custom lines\n", nil},
			{"top\n" + marker, nil},
			{"top changed\n" + marker + "\nbottom\n", []string{"INVALID_HASH .htaccess"}},
			{"top\n", nil}, // no marker: the whole file, equal to the signed part
			{"top\nbottom\n", []string{"INVALID_HASH .htaccess"}},
			{"top\n" + marker + "\nbottom\n" + marker, []string{"INVALID_HASH .htaccess"}},
		} {
			writeFile(t, ht, []byte(step.content))
			if got := findingLines(check(t, sc, p.trust)); !slices.Equal(got, step.want) {
				t.Errorf(".htaccess %q: got findings %q, want %q", step.content, got, step.want)
			}
		}
	})
}

func TestSymlinks(t *testing.T) {
	p := newSignPKI(t)
	sc := newCoreScope(t)
	outside := t.TempDir()
	put(t, outside, map[string]string{"dir/secret.txt": "outside", "file.txt": "outside file"})
	put(t, sc.Dir, map[string]string{"realdir/f.txt": "F", "other.txt": "O"})
	symlink(t, "realdir", filepath.Join(sc.Dir, "linkdir"))
	symlink(t, filepath.Join(outside, "dir"), filepath.Join(sc.Dir, "outdir"))
	symlink(t, ".", filepath.Join(sc.Dir, "dot"))
	symlink(t, "..", filepath.Join(sc.Dir, "realdir", "up"))
	symlink(t, "realdir/f.txt", filepath.Join(sc.Dir, "link.txt"))
	symlink(t, filepath.Join(outside, "file.txt"), filepath.Join(sc.Dir, "abslink.txt"))
	symlink(t, "../link.txt", filepath.Join(sc.Dir, "realdir", "chain.txt"))
	p.sign(t, sc)

	got := manifestHashes(t, sc)
	want := map[string]string{
		"abslink.txt":       sha512hex("outside file"),
		"link.txt":          sha512hex("F"),
		"other.txt":         sha512hex("O"),
		"realdir/chain.txt": sha512hex("F"),
		"realdir/f.txt":     sha512hex("F"),
	}
	if keys, wantKeys := sortedKeys(got), sortedKeys(want); !slices.Equal(keys, wantKeys) {
		t.Fatalf("got keys %q, want %q", keys, wantKeys)
	}
	for k, h := range want {
		if got[k] != h {
			t.Errorf("%s: got %s, want %s", k, got[k], h)
		}
	}
	wantFindings(t, check(t, sc, p.trust))

	// Re-pointing a link changes what is hashed.
	os.Remove(filepath.Join(sc.Dir, "link.txt"))
	symlink(t, "other.txt", filepath.Join(sc.Dir, "link.txt"))
	// A dangling link is reported, with why it could not be hashed.
	symlink(t, "nowhere", filepath.Join(sc.Dir, "dangling"))
	res := check(t, sc, p.trust)
	wantFindings(t, res, "INVALID_HASH link.txt", "INVALID_HASH realdir/chain.txt", "EXTRA_FILE dangling")
	if f, _ := findingFor(res, "dangling"); f.Message == "" || !f.Current.IsZero() {
		t.Errorf("dangling link: got %+v, want a message and no current hash", f)
	}
}

func TestSymlinkLoop(t *testing.T) {
	p := newSignPKI(t)
	sc := newCoreScope(t)
	put(t, sc.Dir, map[string]string{"f.txt": "f"})
	p.sign(t, sc)
	symlink(t, "b", filepath.Join(sc.Dir, "a"))
	symlink(t, "a", filepath.Join(sc.Dir, "b"))
	symlink(t, "self", filepath.Join(sc.Dir, "self"))
	symlink(t, "../loopdir", filepath.Join(sc.Dir, "loopdir", "back"))
	res := check(t, sc, p.trust)
	wantFindings(t, res, "EXTRA_FILE a", "EXTRA_FILE b", "EXTRA_FILE self")
	for _, f := range res.Findings {
		if !strings.Contains(f.Message, "too many levels of symbolic links") {
			t.Errorf("%s: got message %q, want it to say why it could not be read", f.Path, f.Message)
		}
	}
	// Signing refuses such a tree instead of hanging.
	_, certPEM := p.leaf(t, "core")
	var err error
	if !within(t, hangGuard, func() { err = sc.Sign(context.Background(), p.leafKey, certPEM, DigestSHA1) }, nil) {
		t.Fatalf("Sign did not return after %v: it hangs", hangGuard)
	}
	if err == nil {
		t.Error("Sign of a tree with a symlink loop: got no error")
	}
}

func TestSpecialFiles(t *testing.T) {
	p := newSignPKI(t)
	sc := newCoreScope(t)
	put(t, sc.Dir, map[string]string{"f.txt": "f", "expected-pipe": "was a file", "expected-link": "was a file"})
	p.sign(t, sc)

	mkfifo(t, filepath.Join(sc.Dir, "pipe"))
	symlink(t, "pipe", filepath.Join(sc.Dir, "pipelink"))
	os.Remove(filepath.Join(sc.Dir, "expected-pipe"))
	mkfifo(t, filepath.Join(sc.Dir, "expected-pipe"))
	os.Remove(filepath.Join(sc.Dir, "expected-link"))
	symlink(t, "pipe", filepath.Join(sc.Dir, "expected-link"))
	mkfifo(t, filepath.Join(sc.Dir, "data", "pipe")) // excluded: never looked at
	want := []string{"EXTRA_FILE pipe", "EXTRA_FILE pipelink", "EXCEPTION expected-link", "EXCEPTION expected-pipe"}
	var sock string
	if l, err := net.Listen("unix", filepath.Join(sc.Dir, "sock")); err == nil {
		defer l.Close()
		sock = "sock"
		want = []string{"EXTRA_FILE pipe", "EXTRA_FILE pipelink", "EXTRA_FILE sock", "EXCEPTION expected-link", "EXCEPTION expected-pipe"}
	}

	res := check(t, sc, p.trust)
	wantFindings(t, res, want...)
	for _, f := range res.Findings {
		wantMsg := "named pipe"
		if f.Path == sock {
			wantMsg = "socket"
		}
		if !strings.Contains(f.Message, wantMsg) {
			t.Errorf("%s: got message %q, want it to contain %q", f.Path, f.Message, wantMsg)
		}
		if f.Kind == kind.Exception && f.Expected.String() != sha512hex("was a file") {
			t.Errorf("%s: got expected hash %q, want the manifest's", f.Path, f.Expected)
		}
	}

	// Signing refuses a FIFO instead of hanging on it.
	_, certPEM := p.leaf(t, "core")
	var err error
	if !within(t, hangGuard, func() { err = sc.Sign(context.Background(), p.leafKey, certPEM, DigestSHA1) }, nil) {
		t.Fatalf("Sign did not return after %v: it hangs", hangGuard)
	}
	if err == nil || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("Sign of a tree with a FIFO: got %v, want an error naming the named pipe", err)
	}
}

// A FIFO in place of signature.json must not hang the check.
func TestManifestIsFIFO(t *testing.T) {
	p := newSignPKI(t)
	sc := newAppScope(t, "demoapp")
	put(t, sc.Dir, map[string]string{"appinfo/info.xml": "x"})
	mkfifo(t, sc.ManifestPath())
	var res ScopeResult
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	unblock := func() {
		// Opening the write end releases a reader blocked in open(2).
		if w, err := os.OpenFile(sc.ManifestPath(), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	}
	if !within(t, hangGuard, func() { res, err = sc.Check(ctx, p.trust) }, unblock) {
		t.Fatal("regression: Scope.Check (LoadManifest) blocks forever when appinfo/signature.json is a FIFO: os.Open without O_NONBLOCK; want an EXCEPTION \"Signature data not found.\"")
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Exception == nil || res.Exception.Message != MsgNoSignature || !strings.Contains(res.Exception.Detail, "not a regular file") {
		t.Errorf("got %+v, want %q with a detail saying it is not a regular file", res.Exception, MsgNoSignature)
	}
}

func TestManifestMissingOrBroken(t *testing.T) {
	p := newSignPKI(t)
	tests := []struct {
		name    string
		setup   func(t *testing.T, sc *Scope)
		message string
		detail  string
	}{
		{"no manifest", func(*testing.T, *Scope) {}, MsgNoSignature, "no such file"},
		{"manifest is a directory", func(t *testing.T, sc *Scope) { os.MkdirAll(sc.ManifestPath(), 0o755) }, MsgNoSignature, "not a regular file"},
		{"manifest is not JSON", func(t *testing.T, sc *Scope) { writeFile(t, sc.ManifestPath(), []byte("<html>")) }, MsgNoSignature, "invalid JSON"},
		{"manifest of another app", func(t *testing.T, sc *Scope) {
			other := &Scope{Name: "otherapp", Dir: sc.Dir, in: sc.in}
			p.sign(t, other)
		}, "Certificate is not valid for required scope. (Requested: demoapp, current: CN=otherapp)", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := newAppScope(t, "demoapp")
			put(t, sc.Dir, map[string]string{"appinfo/info.xml": "x"})
			tt.setup(t, sc)
			res := check(t, sc, p.trust)
			if res.Exception == nil {
				t.Fatalf("got findings %q and no exception, want %q", findingLines(res), tt.message)
			}
			if res.Exception.Message != tt.message || !strings.Contains(res.Exception.Detail, tt.detail) {
				t.Errorf("got %+v, want message %q, detail containing %q", res.Exception, tt.message, tt.detail)
			}
			if len(res.Findings) != 0 {
				t.Errorf("got findings %q along with the exception, want none", findingLines(res))
			}
		})
	}
}

func TestUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: permission bits do not stop root from reading, so unreadable files cannot be tested")
	}
	p := newSignPKI(t)
	sc := newCoreScope(t)
	put(t, sc.Dir, map[string]string{"f.txt": "f", "secret.txt": "s", "locked/a.txt": "a", "locked/sub/b.txt": "b", "locked-sibling.txt": "c"})
	p.sign(t, sc)
	secret, locked := filepath.Join(sc.Dir, "secret.txt"), filepath.Join(sc.Dir, "locked")
	if err := os.Chmod(secret, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Chmod(secret, 0o644)
		os.Chmod(locked, 0o755)
	})
	res := check(t, sc, p.trust)
	// The directory is one exception; the files it hides are not missing.
	wantFindings(t, res, "EXCEPTION locked", "EXCEPTION secret.txt")
	for _, f := range res.Findings {
		if !strings.Contains(f.Message, "permission denied") {
			t.Errorf("%s: got message %q, want it to contain %q", f.Path, f.Message, "permission denied")
		}
	}
}

// Keys that point outside the scope are never resolved: they are missing,
// even when a file they would reach has the expected content.
func TestManifestKeysOutsideTree(t *testing.T) {
	p := newSignPKI(t)
	sc := newAppScope(t, "demoapp")
	put(t, sc.Dir, map[string]string{"appinfo/info.xml": "info", "in.txt": "in"})
	appsDir := filepath.Dir(sc.Dir)
	put(t, appsDir, map[string]string{"outside.txt": "outside"})
	elsewhere := filepath.Join(t.TempDir(), "abs.txt")
	writeFile(t, elsewhere, []byte("absolute"))
	passwd := strings.Repeat("0", 128)
	if data, err := os.ReadFile("/etc/passwd"); err == nil {
		passwd = sha512hex(string(data))
	}
	hashes := map[string]string{
		"appinfo/info.xml":                 sha512hex("info"),
		"in.txt":                           sha512hex("in"),
		"../outside.txt":                   sha512hex("outside"),
		"../demoapp/in.txt":                sha512hex("in"),
		"./in.txt":                         sha512hex("in"),
		"appinfo/../in.txt":                sha512hex("in"),
		"appinfo//info.xml":                sha512hex("info"),
		"/etc/passwd":                      passwd,
		elsewhere:                          sha512hex("absolute"),
		strings.TrimPrefix(elsewhere, "/"): sha512hex("absolute"),
	}
	p.signHashes(t, sc, hashes)
	res := check(t, sc, p.trust)
	var want []string
	for _, k := range sortedKeys(hashes) {
		if k != "appinfo/info.xml" && k != "in.txt" {
			want = append(want, "FILE_MISSING "+k)
		}
	}
	wantFindings(t, res, want...)
	for _, f := range res.Findings {
		if !f.Current.IsZero() || f.Expected.String() != hashes[f.Path] {
			t.Errorf("%s: got expected %q current %q, want the manifest's hash and no current hash", f.Path, f.Expected, f.Current)
		}
	}
}

// Core does not check updater/, which Nextcloud replaces after its check.
func TestCoreIgnoresUpdaterEntries(t *testing.T) {
	p := newSignPKI(t)
	sc := newCoreScope(t)
	put(t, sc.Dir, map[string]string{"index.php": "i", "updater/index.php": "u"})
	p.signHashes(t, sc, map[string]string{
		"index.php":          sha512hex("i"),
		"updater/index.php":  sha512hex("something else"),
		"updater/gone.php":   sha512hex("g"),
		"lib/updater/x.php":  sha512hex("x"),
		"updaterx/index.php": sha512hex("y"),
	})
	wantFindings(t, check(t, sc, p.trust), "FILE_MISSING lib/updater/x.php", "FILE_MISSING updaterx/index.php")

	// An app's updater/ directory is an ordinary directory.
	app := newAppScope(t, "demoapp")
	p.signHashes(t, app, map[string]string{"updater/gone.php": sha512hex("g")})
	wantFindings(t, check(t, app, p.trust), "FILE_MISSING updater/gone.php")
}

// Files are compared by path, not by hash value.
func TestPathComparison(t *testing.T) {
	p := newSignPKI(t)
	sc := newAppScope(t, "demoapp")
	put(t, sc.Dir, map[string]string{"appinfo/info.xml": "i", "a.txt": "A", "b.txt": "B", "c.txt": "same", "d.txt": "same", "e.txt": "E"})
	p.sign(t, sc)
	res := check(t, sc, p.trust)
	wantFindings(t, res)
	if res.Files != 6 || res.Bytes != 1+1+1+4+4+1 {
		t.Errorf("got %d files, %d bytes, want 6 files, 12 bytes", res.Files, res.Bytes)
	}

	put(t, sc.Dir, map[string]string{"a.txt": "B", "b.txt": "A"})
	os.Remove(filepath.Join(sc.Dir, "d.txt"))
	os.MkdirAll(filepath.Join(sc.Dir, "moved"), 0o755)
	os.Rename(filepath.Join(sc.Dir, "e.txt"), filepath.Join(sc.Dir, "moved", "e.txt"))
	res = check(t, sc, p.trust)
	wantFindings(t, res, "INVALID_HASH a.txt", "INVALID_HASH b.txt", "FILE_MISSING d.txt", "FILE_MISSING e.txt", "EXTRA_FILE moved/e.txt")
	for _, tt := range []struct{ path, expected, current string }{
		{"a.txt", sha512hex("A"), sha512hex("B")},
		{"b.txt", sha512hex("B"), sha512hex("A")},
		{"d.txt", sha512hex("same"), ""},
		{"moved/e.txt", "", sha512hex("E")},
	} {
		f, _ := findingFor(res, tt.path)
		if f.Expected.String() != tt.expected || f.Current.String() != tt.current {
			t.Errorf("%s: got expected %q current %q, want %q %q", tt.path, f.Expected, f.Current, tt.expected, tt.current)
		}
		if f.Scope != "demoapp" {
			t.Errorf("%s: got scope %q, want demoapp", tt.path, f.Scope)
		}
	}
}

// Many files over several directories: every change is found, nothing else.
func TestCheckManyFiles(t *testing.T) {
	p := newSignPKI(t)
	sc := newCoreScope(t)
	files := map[string]string{}
	for i := 0; i < 400; i++ {
		files[filepath.Join("lib", string(rune('a'+i%7)), strings.Repeat("x", i%5), "f"+strconv.Itoa(i)+".php")] = strings.Repeat("y", i)
	}
	put(t, sc.Dir, files)
	p.sign(t, sc)
	if got := len(manifestHashes(t, sc)); got != len(files) {
		t.Fatalf("manifest has %d entries, want %d", got, len(files))
	}
	keys := sortedKeys(files)
	var want []string
	for i, k := range keys {
		switch i % 97 {
		case 3:
			writeFile(t, filepath.Join(sc.Dir, k), []byte("changed"))
			want = append(want, "INVALID_HASH "+k)
		case 5:
			os.Remove(filepath.Join(sc.Dir, k))
			want = append(want, "FILE_MISSING "+k)
		}
	}
	writeFile(t, filepath.Join(sc.Dir, "lib", "new.php"), nil)
	want = append(want, "EXTRA_FILE lib/new.php")
	sort.SliceStable(want, func(i, j int) bool {
		return kind.Kind(strings.Fields(want[i])[0]).Order() < kind.Kind(strings.Fields(want[j])[0]).Order()
	})
	wantFindings(t, check(t, sc, p.trust), want...)
}

func TestCheckCanceled(t *testing.T) {
	p := newSignPKI(t)
	sc := newCoreScope(t)
	put(t, sc.Dir, map[string]string{"f.txt": "f"})
	p.sign(t, sc)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := sc.Check(ctx, p.trust)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestSignErrors(t *testing.T) {
	p := newSignPKI(t)
	_, certPEM := p.leaf(t, "demoapp")
	otherKey, err := signCAKey()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	in := NewInstall(root, nil, "")
	noAppinfo := in.App("noappinfo", "")
	os.MkdirAll(noAppinfo.Dir, 0o755)
	ok := newAppScope(t, "demoapp")
	tests := []struct {
		name string
		sc   *Scope
		key  *rsa.PrivateKey
		cert []byte
		want string
	}{
		{"no appinfo directory", noAppinfo, p.leafKey, certPEM, "is not a directory"},
		{"key does not match certificate", ok, otherKey, certPEM, "does not belong to the certificate"},
		{"certificate not PEM", ok, p.leafKey, []byte("garbage"), "no PEM CERTIFICATE block"},
		{"wrong PEM type", ok, p.leafKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), "no PEM CERTIFICATE block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sc.Sign(context.Background(), tt.key, tt.cert, DigestSHA1)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
			if _, err := os.Lstat(tt.sc.ManifestPath()); err == nil {
				t.Errorf("a signature.json was written")
			}
		})
	}
}

// File names that PHP turns into integer keys, or nearly, survive signing
// and checking: every file signed is found again under its own name.
func TestSignNumericFileNames(t *testing.T) {
	p := newSignPKI(t)
	sc := newAppScope(t, "demoapp")
	names := []string{"0", "1", "9", "10", "-1", "-0", "01", "1e1", " 1", "1 ", "+1", "1.0",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "99999999999999999999"}
	files := map[string]string{"appinfo/info.xml": "i"}
	for _, n := range names {
		files[n] = "content of " + n
	}
	put(t, sc.Dir, files)
	p.sign(t, sc)
	got := manifestHashes(t, sc)
	for k, v := range files {
		if got[k] != sha512hex(v) {
			t.Errorf("manifest entry %q: got %q, want the hash of the file", k, got[k])
		}
	}
	wantFindings(t, check(t, sc, p.trust))

	// "-9223372036854775809" is below PHP_INT_MIN: PHP 7 and 8 keep it a
	// string key, distinct from "-9223372036854775808".
	const low = "-9223372036854775809"
	for _, tt := range []struct {
		name  string
		files []string
	}{
		{"alone", []string{low}},
		{"next to PHP_INT_MIN", []string{low, "-9223372036854775808"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc := newAppScope(t, "demoapp")
			for _, n := range tt.files {
				writeFile(t, filepath.Join(sc.Dir, n), []byte("content of "+n))
			}
			p.sign(t, sc)
			if got := findingLines(check(t, sc, p.trust)); len(got) != 0 {
				t.Errorf("regression: files %q, signed by Sign, then checked: got findings %q, want none; handleNumericStr turns the key %q into PHP_INT_MIN %q", tt.files, got, low, "-9223372036854775808")
			}
		})
	}
}

// PHP 8's ksort is not idempotent on some key sets (integer keys compare
// numerically, and with strings by their decimal text: 22 < 129 but
// "129" < "16c" < "22"), and a verifier sorts again what the signer wrote
// in sorted order: with these 17 top-level names (quicksort, not insertion
// sort) the second sort gives another order (checked with PHP 8.2, so
// Nextcloud's own signer has the same flaw). Sign must still write a
// manifest that verifies.
func TestSignCyclicKeys(t *testing.T) {
	p := newSignPKI(t)
	sc := newAppScope(t, "demoapp")
	files := map[string]string{"appinfo/info.xml": "i"}
	for _, n := range []string{"129", "14", "143", "147", "16c", "177c", "187c", "188c", "22", "32b", "44", "54b", "62", "69", "79a", "89a"} {
		files[n] = n
	}
	put(t, sc.Dir, files)
	p.sign(t, sc)
	if got := findingLines(check(t, sc, p.trust)); len(got) != 0 {
		t.Errorf("regression: Sign wrote a signature.json that does not verify: got findings %q; its keys, re-sorted by ksort as every verifier (Nextcloud too) does, give another message than the one signed", got)
	}
}

// TestGoneBeforeRead: a file listed, then removed before it is read (as
// rsync and updates do all the time) is not there, as a listing now would
// say: an expected one is FILE_MISSING, not an EXCEPTION "open: no such
// file or directory". A directory removed after its parent was listed is
// not there either, nor is a symlink removed before its target was
// looked at. A symlink whose target is missing stays an error.
func TestGoneBeforeRead(t *testing.T) {
	dir := t.TempDir()
	h := newHasher(&Checker{})
	st, err := h.hash(context.Background(), filepath.Join(dir, "gone.php"), special{}, false)
	if err != nil || !st.skip || st.err != nil {
		t.Errorf("a file removed before its read: %+v, %v; want it skipped as not there", st, err)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	st, err = h.hash(context.Background(), filepath.Join(dir, "dangling"), special{}, true)
	if err != nil || st.skip || st.err == nil {
		t.Errorf("a dangling symlink: %+v, %v; want its error", st, err)
	}
	// A symlink listed, then removed (rsync replacing it by a file)
	// before its target is looked at: not there either.
	st, err = h.hash(context.Background(), filepath.Join(dir, "gone-link"), special{}, true)
	if err != nil || !st.skip || st.err != nil {
		t.Errorf("a symlink removed before its read: %+v, %v; want it skipped as not there", st, err)
	}
	// A directory removed after its parent was listed, before it was
	// read: dangling sorts before sub.
	s := &Scope{Name: "core", Dir: dir, in: &Install{Root: dir}}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	var sent []string
	err = s.walkTree(context.Background(), dir, "", func(f walkedFile) error {
		if f.key == "dangling" {
			os.Remove(sub) // after the listing of dir, before sub is read
		}
		sent = append(sent, f.key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range sent {
		if strings.HasSuffix(k, "/") {
			t.Errorf("walk sent %q for a directory removed before it was read; want nothing", k)
		}
	}
}
