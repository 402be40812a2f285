package verify

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha1"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/kind"
)

const (
	ncTests = "testdata/interop/nextcloud-tests"
	ncSign  = "testdata/interop/nextcloud-codesigning"
)

// copyTree copies src into dst (created).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
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

// vectorInstall lays out an install whose scope holds tree and the
// vector's signature.json, and returns the scope to check.
func vectorInstall(t *testing.T, vector, tree, scope string) *Scope {
	t.Helper()
	root := t.TempDir()
	in := NewInstall(root, nil, "")
	var sc *Scope
	if scope == "core" {
		sc = in.Core()
	} else {
		sc = in.App(scope, "")
	}
	copyTree(t, filepath.Join(ncTests, "integritycheck", tree), sc.Dir)
	writeFile(t, sc.ManifestPath(), mustRead(t, filepath.Join(ncTests, "vectors", vector+".signature.json")))
	return sc
}

func testTrust(t *testing.T) *Trust {
	t.Helper()
	tr, err := LoadTrust(filepath.Join(ncTests, "integritycheck", "root.crt"), "")
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// findingLines renders findings as "KIND path" or "EXCEPTION message".
func findingLines(r ScopeResult) []string {
	var out []string
	for _, f := range r.AllFindings() {
		if f.Path == "" {
			out = append(out, string(f.Kind)+" "+f.Message)
		} else {
			out = append(out, string(f.Kind)+" "+f.Path)
		}
	}
	return out
}

// The table of ../shared/interop/README.md.
func TestNextcloudVectors(t *testing.T) {
	tests := []struct {
		vector, tree, scope string
		want                []string
		// sigOnly: only the signature outcome is asserted (the fixture
		// tree does not reproduce every hash).
		sigOnly bool
	}{
		{"v01_app_SomeApp", "app", "SomeApp", nil, false},
		{"v02_app_signed_by_core", "app", "SomeApp", nil, false},
		{"v02_app_signed_by_core", "appWithInvalidData", "SomeApp", []string{
			"INVALID_HASH AnotherFile.txt", "FILE_MISSING subfolder/file.txt", "EXTRA_FILE UnecessaryFile"}, false},
		{"v03_app_tampered_hashes_SomeApp", "app", "SomeApp", []string{"EXCEPTION Signature could not get verified."}, false},
		{"v04_app_AnotherScope", "appWithInvalidData", "SomeApp", []string{
			"EXCEPTION Certificate is not valid for required scope. (Requested: SomeApp, current: CN=AnotherScope)"}, false},
		// The fixture lacks subfolder/.htaccess, which the manifest lists
		// (Nextcloud reports it as missing too); .htaccess itself matches.
		{"v05_core_htaccessUnmodified", "htaccessUnmodified", "core", []string{"FILE_MISSING subfolder/.htaccess"}, false},
		{"v06_core_htaccessWithInvalidModifiedContent", "htaccessWithInvalidModifiedContent", "core", nil, false},
		{"v07_core_htaccessWithValidModifiedContent", "htaccessWithValidModifiedContent", "core", nil, true},
		{"v08_core_tampered_hashes_eXes_with_core_cert", "appWithInvalidData", "core", []string{"EXCEPTION Signature could not get verified."}, false},
		{"v09_core_untrusted_cert", "app", "core", []string{"EXCEPTION Certificate is not valid."}, false},
		{"v10_core_wrong_scope_SomeApp", "app", "core", []string{
			"EXCEPTION Certificate is not valid for required scope. (Requested: core, current: CN=SomeApp)"}, false},
		{"v11_core_mimetypeListModified", "mimetypeListModified", "core", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.vector+"/"+tt.tree, func(t *testing.T) {
			sc := vectorInstall(t, tt.vector, tt.tree, tt.scope)
			res, err := sc.Check(context.Background(), testTrust(t))
			if err != nil {
				t.Fatal(err)
			}
			if tt.sigOnly {
				if res.Exception != nil {
					t.Fatalf("got exception %+v, want the signature to verify", res.Exception)
				}
				return
			}
			got := strings.Join(findingLines(res), "\n")
			if want := strings.Join(tt.want, "\n"); got != want {
				t.Errorf("findings:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// Every vector's canonical message must equal the exact bytes Nextcloud
// signed, and its signature must verify with the vector's certificate.
func TestCanonicalMessageVectors(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(ncTests, "vectors", "*.signature.json"))
	if len(files) < 11 {
		t.Fatalf("found %d vectors", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".signature.json")
		t.Run(name, func(t *testing.T) {
			m, err := ParseManifest(bytes.NewReader(mustRead(t, f)), f)
			if err != nil {
				t.Fatal(err)
			}
			want := mustRead(t, filepath.Join(ncTests, "vectors", name+".signed_message.bin"))
			if got := canonicalOf(t, mustRead(t, f)); !bytes.Equal(got, want) {
				t.Errorf("canonical message:\n%s\nwant:\n%s", got, want)
			}
			if sha1.Sum(want) != m.signed {
				t.Errorf("the SHA-1 parseManifest took of the signed message is not that of %s", name+".signed_message.bin")
			}
			sig := mustRead(t, filepath.Join(ncTests, "vectors", name+".sig.bin"))
			if !bytes.Equal(m.Signature, sig) {
				t.Errorf("decoded signature differs from %s.sig.bin", name)
			}
			leaf, err := parseLeaf(m.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			err = verifyPSSErr(leaf.PublicKey.(*rsa.PublicKey), want, sig)
			// Checked with openssl dgst: the tampered vectors, and those that
			// fail earlier in Nextcloud (v04, v09, v10), do not verify.
			valid := map[string]bool{"v01": true, "v02": true, "v05": true, "v06": true, "v07": true, "v11": true}[name[:3]]
			if valid != (err == nil) {
				t.Errorf("VerifyPSS: %v, want valid=%v", err, valid)
			}
		})
	}
}

// The real app manifest, signed by Nextcloud's infrastructure, verifies
// against Nextcloud's real root.crt and CRL; on a tree holding only the
// manifest, every file is missing.
func TestRealAppManifest(t *testing.T) {
	root := t.TempDir()
	in := NewInstall(root, nil, "")
	sc := in.App("pride_flags", "")
	manifest := mustRead(t, "testdata/interop/real-apps/pride_flags.signature.json")
	writeFile(t, sc.ManifestPath(), manifest)
	tr, err := LoadTrust(filepath.Join(ncSign, "root.crt"), filepath.Join(ncSign, "root.crl"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := sc.Check(context.Background(), tr)
	if err != nil {
		t.Fatal(err)
	}
	if res.Exception != nil {
		t.Fatalf("exception: %+v", res.Exception)
	}
	m, _ := ParseManifest(bytes.NewReader(manifest), "pride_flags")
	hashes := m.hashMap()
	if len(res.Findings) != len(hashes) || len(hashes) == 0 {
		t.Fatalf("got %d findings for %d files", len(res.Findings), len(hashes))
	}
	for _, f := range res.Findings {
		if f.Kind != kind.FileMissing || f.Expected.String() != hashes[f.Path] {
			t.Errorf("finding %+v, want FILE_MISSING with the expected hash", f)
		}
	}
	// The same manifest for another app id is refused.
	if ex := m.Verify(tr, "other"); ex == nil || ex.Message != "Certificate is not valid for required scope. (Requested: other, current: CN=pride_flags)" {
		t.Errorf("other scope: %+v", ex)
	}
	// And it is not trusted by Nextcloud's test root.
	if ex := m.Verify(testTrust(t), "pride_flags"); ex == nil || ex.Message != MsgBadCert {
		t.Errorf("test root: %+v", ex)
	}
}
