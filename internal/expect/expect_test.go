package expect_test

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/expect"
	"github.com/integrityd/integrityd/internal/verify"
)

// release builds a signed demo release in DIR/nextcloud and returns DIR
// and the trust that verifies it.
func release(t *testing.T) (string, *verify.Trust) {
	t.Helper()
	dir := t.TempDir()
	nc := filepath.Join(dir, "nextcloud")
	if err := demo.Build(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	tr, err := verify.LoadTrust(filepath.Join(nc, "resources/codesigning/root.crt"), "")
	if err != nil {
		t.Fatal(err)
	}
	return dir, tr
}

// pack writes the tree below dir into an archive named name, in the
// format its name says.
func pack(t *testing.T, dir, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			files[filepath.ToSlash(rel)], _ = os.ReadFile(p)
		}
		return err
	})
	switch {
	case strings.HasSuffix(name, ".zip"):
		zw := zip.NewWriter(f)
		for p, data := range files {
			w, _ := zw.Create(p)
			w.Write(data)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		var w io.Writer = f
		var gz *gzip.Writer
		if strings.HasSuffix(name, ".gz") {
			gz = gzip.NewWriter(f)
			w = gz
		}
		tw := tar.NewWriter(w)
		for p, data := range files {
			tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
			tw.Write(data)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if gz != nil {
			gz.Close()
		}
	}
	return out
}

// TestStage: a release's manifests staged from its directory and from
// each archive format, verified, laid out as a release, with its end.
func TestStage(t *testing.T) {
	dir, tr := release(t)
	srcs := map[string]string{
		"the release's directory": filepath.Join(dir, "nextcloud"),
		"the directory above it":  dir,
		"a .tar.gz":               pack(t, dir, "nextcloud.tar.gz"),
		"a .tar":                  pack(t, dir, "nextcloud.tar"),
		"a .zip":                  pack(t, dir, "nextcloud.zip"),
	}
	if _, err := exec.LookPath("bzip2"); err == nil {
		tarball := pack(t, dir, "nextcloud.tar")
		if out, err := exec.Command("bzip2", "-k", tarball).CombinedOutput(); err != nil {
			t.Fatalf("bzip2: %v: %s", err, out)
		}
		srcs["a .tar.bz2 (as Nextcloud ships it)"] = tarball + ".bz2"
	} else {
		t.Log("no bzip2 on this machine: the .tar.bz2 case is not run")
	}
	for what, src := range srcs {
		t.Run(what, func(t *testing.T) {
			state := t.TempDir()
			until := time.Now().Add(time.Hour)
			rel, err := expect.Stage(state, src, tr, until)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"core", "dashboard", "files"}; !slices.Equal(rel.Scopes, want) {
				t.Errorf("scopes %v, want %v", rel.Scopes, want)
			}
			for _, p := range []string{"core/signature.json", "version.php", "apps/files/appinfo/signature.json", "apps/dashboard/appinfo/signature.json"} {
				if _, err := os.Stat(filepath.Join(expect.Dir(state), p)); err != nil {
					t.Errorf("%s not kept: %v", p, err)
				}
			}
			if _, err := os.Stat(filepath.Join(expect.Dir(state), "lib/base.php")); err == nil {
				t.Error("lib/base.php kept: only manifests and version.php are")
			}
			if got, ok := expect.Until(state); !ok || !got.Equal(until.UTC().Truncate(time.Second)) {
				t.Errorf("until %v %v, want %v", got, ok, until)
			}
			if err := expect.Clear(state); err != nil {
				t.Fatal(err)
			}
			if _, ok := expect.Until(state); ok {
				t.Error("an expectation after Clear")
			}
		})
	}
}

// TestStageApp: an app's directory or archive on its own is staged as
// that app.
func TestStageApp(t *testing.T) {
	dir, tr := release(t)
	app := filepath.Join(dir, "nextcloud", "apps", "files")
	for what, src := range map[string]string{"directory": app, "archive": pack(t, filepath.Join(dir, "nextcloud", "apps"), "files.tar.gz")} {
		t.Run(what, func(t *testing.T) {
			state := t.TempDir()
			rel, err := expect.Stage(state, src, tr, time.Now().Add(time.Hour))
			if what == "archive" && err == nil {
				// The archive holds both apps below their ids.
				if !slices.Contains(rel.Scopes, "files") {
					t.Errorf("scopes %v, want files among them", rel.Scopes)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rel.Scopes, []string{"files"}) || rel.Version != "" {
				t.Errorf("scopes %v version %q, want files alone", rel.Scopes, rel.Version)
			}
		})
	}
}

// TestStageRefuses: a manifest that does not verify, a source with no
// manifest, an archive that is not one: an error naming the source and
// the problem, and the expectation before stays as it was.
func TestStageRefuses(t *testing.T) {
	dir, tr := release(t)
	state := t.TempDir()
	good := filepath.Join(dir, "nextcloud")
	if _, err := expect.Stage(state, good, tr, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	before, _ := expect.Until(state)

	forged := t.TempDir()
	if err := os.CopyFS(forged, os.DirFS(good)); err != nil {
		t.Fatal(err)
	}
	m := filepath.Join(forged, "apps/files/appinfo/signature.json")
	data, _ := os.ReadFile(m)
	forgedData := strings.Replace(string(data), `"appinfo\/info.xml": "8`, `"appinfo\/info.xml": "9`, 1)
	if forgedData == string(data) {
		t.Fatal("the test's forgery changed nothing")
	}
	os.WriteFile(m, []byte(forgedData), 0o644)
	empty := t.TempDir()
	notArchive := filepath.Join(t.TempDir(), "nextcloud.tar.gz")
	os.WriteFile(notArchive, []byte("not gzip"), 0o644)
	other := filepath.Join(t.TempDir(), "release.rar")
	os.WriteFile(other, []byte("x"), 0o644)
	for _, c := range []struct{ src, want string }{
		{forged, "app files: "},
		{empty, "no signed manifest"},
		{notArchive, "not a gzip archive"},
		{other, "neither a directory nor an archive"},
		{filepath.Join(empty, "nothere"), "no such file"},
	} {
		_, err := expect.Stage(state, c.src, tr, time.Now().Add(time.Hour))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Base(c.src)) {
			t.Errorf("%s: error %v, want one naming it and saying %q", c.src, err, c.want)
		}
	}
	if now, ok := expect.Until(state); !ok || !now.Equal(before) {
		t.Errorf("the expectation before changed: %v %v, was %v", now, ok, before)
	}
	ents, _ := os.ReadDir(state)
	if len(ents) != 1 {
		t.Errorf("state directory holds %d entries after refusals, want the expectation alone (no temporary left)", len(ents))
	}
}
