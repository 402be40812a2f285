package verify

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/mimetypelist"
	"github.com/integrityd/integrityd/internal/oracledir"
)

// The walk's side of core/js/mimetypelist.js (the generator itself is
// tested in internal/mimetypelist, whose testdata holds the dist files).

// mimeCase is an install's custom mime type files, config/NAME -> content.
type mimeCase struct {
	name   string
	custom map[string]string
}

// buildMimeTree makes an install with the dist files, icons and the
// custom files of c; it returns its root and config directory.
func buildMimeTree(t *testing.T, c mimeCase, icons []string) (root, config string) {
	t.Helper()
	root = t.TempDir()
	config = filepath.Join(root, "config")
	for _, n := range icons {
		writeFile(t, filepath.Join(root, "core/img/filetypes", n), []byte("<svg/>"))
	}
	if err := os.MkdirAll(filepath.Join(root, "themes"), 0o755); err != nil {
		t.Fatal(err)
	}
	dist, err := filepath.Glob("../mimetypelist/testdata/mimetypelist/dist/*.json")
	if err != nil || len(dist) != 3 {
		t.Fatalf("testdata dist files: %v %v", dist, err)
	}
	for _, f := range dist {
		writeFile(t, filepath.Join(root, "resources/config", filepath.Base(f)), mustRead(t, f))
	}
	for n, content := range c.custom {
		writeFile(t, filepath.Join(config, n), []byte(content))
	}
	if err := os.MkdirAll(config, 0o755); err != nil {
		t.Fatal(err)
	}
	return root, config
}

// generated is the file the generator makes from the install's aliases
// (all) and from the defaults only (def).
func generated(t *testing.T, root, config string, major int) (all, def []byte) {
	t.Helper()
	all, err := mimetypelist.Generate(root, config, major, false)
	if err != nil {
		t.Fatal(err)
	}
	if def, err = mimetypelist.Generate(root, config, major, true); err != nil {
		t.Fatal(err)
	}
	return all, def
}

// TestMimetypeListCheckerOracle runs Nextcloud's whole Checker (the
// oracle's nc-oracle.sh) on a core tree whose manifest holds, for
// core/js/mimetypelist.js, the hash mimetypelist.Hash returns: Nextcloud
// must find core clean, and must report INVALID_HASH when the manifest
// holds the file's own hash instead.
func TestMimetypeListCheckerOracle(t *testing.T) {
	oracle := oracledir.Find(t)
	if _, err := exec.LookPath("php"); err != nil {
		t.Skip("php-cli is not installed (apt-get install php-cli): cannot run Nextcloud's own Checker")
	}
	pki := newSignPKI(t)
	cases := []mimeCase{
		{name: "defaults"},
		{name: "custom aliases", custom: map[string]string{"mimetypealiases.json": `{"text/csv": "x-office/document", "7": "seven", "a/b": "\u00fc/c"}`}},
		{name: "custom names", custom: map[string]string{"mimetypenames.json": `{"text/plain": "Klartext \u00fc", "x/y": "New"}`}},
	}
	for _, release := range []string{"25.0.12", "33.0.0"} {
		major, _ := strconv.Atoi(strings.SplitN(release, ".", 2)[0])
		icons := oracledir.ReleaseIcons(t, filepath.Join(oracle, release))
		for _, c := range cases {
			t.Run(release+"/"+c.name, func(t *testing.T) {
				root, config := buildMimeTree(t, c, icons)
				writeFile(t, filepath.Join(root, "version.php"), mustRead(t, filepath.Join(oracle, release, "root", "version.php")))
				all, def := generated(t, root, config, major)
				writeFile(t, filepath.Join(root, mimetypelist.Path), all)
				h, ok, err := mimetypelist.Hash(root, config, major, all)
				if err != nil || !ok {
					t.Fatalf("mimetypelist.Hash: %v %v", ok, err)
				}
				hashes := map[string]string{}
				for _, dir := range []string{"core", "resources"} {
					err := filepath.Walk(filepath.Join(root, dir), func(p string, fi os.FileInfo, err error) error {
						if err != nil || fi.IsDir() {
							return err
						}
						rel, _ := filepath.Rel(root, p)
						hashes[rel] = sha512hex(string(mustRead(t, p)))
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
				}
				hashes["version.php"] = sha512hex(string(mustRead(t, filepath.Join(root, "version.php"))))
				sc := NewInstall(root, nil, "").Core()
				for _, own := range []bool{false, true} {
					if own {
						hashes[mimetypelist.Path] = sha512hex(string(all))
					} else {
						hashes[mimetypelist.Path] = h.String()
					}
					pki.signHashes(t, sc, hashes)
					cmd := exec.Command("bash", filepath.Join(oracle, "nc-oracle.sh"), "--code", filepath.Join(oracle, release, "code"),
						"--trust", pki.trust.AnchorFile, root, "core")
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					out, err := cmd.Output()
					if err != nil {
						t.Fatalf("nc-oracle: %v\n%s", err, stderr.String())
					}
					var res map[string]map[string]json.RawMessage
					if err := json.Unmarshal(out, &res); err != nil {
						t.Fatalf("nc-oracle output %q: %v", out, err)
					}
					core := res["core"]
					customised := !bytes.Equal(all, def)
					switch {
					case !own && len(core) != 0:
						t.Fatalf("manifest holds mimetypelist.Hash's hash, Nextcloud reports %s", out)
					case own && customised && !strings.Contains(string(core["INVALID_HASH"]), mimetypelist.Path):
						t.Fatalf("manifest holds the customised file's own hash, Nextcloud reports %s, want INVALID_HASH for it", out)
					case own && !customised && len(core) != 0:
						t.Fatalf("default file: Nextcloud reports %s", out)
					}
				}
			})
		}
	}
}

// TestMimetypeListInCheck: through the core check, as Nextcloud does it:
// an install with custom aliases whose core/js/mimetypelist.js was
// regenerated (occ maintenance:mimetype:update-js) is clean against a
// manifest that has the default file's hash; a mimetypelist.js edited by
// hand is INVALID_HASH; without custom aliases the file is hashed as is.
func TestMimetypeListInCheck(t *testing.T) {
	p := newSignPKI(t)
	c := mimeCase{custom: map[string]string{"mimetypealiases.json": `{"text/csv": "x-office/document"}`}}
	root, config := buildMimeTree(t, c, []string{"folder.svg", "file.svg"})
	writeFile(t, filepath.Join(root, "version.php"), []byte("<?php\n$OC_Version = array(33,0,0,16);\n$OC_Channel = 'stable';\n"))
	in := NewInstall(root, nil, "")
	all, def := generated(t, root, config, 33)
	writeFile(t, filepath.Join(root, mimetypelist.Path), all)
	hashes := map[string]string{}
	current, err := in.Core().hashTree(context.Background(), root, "")
	if err != nil {
		t.Fatal(err)
	}
	for k, st := range current {
		if !st.skip {
			hashes[k] = st.hash.String()
		}
	}
	defHash := finding.Hash(sha512.Sum512(def))
	if hashes[mimetypelist.Path] != defHash.String() {
		t.Fatalf("the walk hashed %s as %s, want the default file's hash", mimetypelist.Path, hashes[mimetypelist.Path])
	}
	p.signHashes(t, in.Core(), hashes)
	check := func(what string, want []kind.Kind) {
		t.Helper()
		res, err := in.Core().Check(context.Background(), p.trust)
		if err != nil {
			t.Fatal(err)
		}
		var got []kind.Kind
		for _, f := range res.AllFindings() {
			got = append(got, f.Kind)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: findings %+v, want kinds %v", what, res.AllFindings(), want)
		}
	}
	check("regenerated with custom aliases", nil)
	writeFile(t, filepath.Join(root, mimetypelist.Path), append(all, "/* x */"...))
	check("edited by hand", []kind.Kind{kind.InvalidHash})
	writeFile(t, filepath.Join(root, mimetypelist.Path), def)
	if err := os.Remove(filepath.Join(config, "mimetypealiases.json")); err != nil {
		t.Fatal(err)
	}
	check("default file, no custom aliases", nil)
}

// TestMimetypeInput: the paths whose change makes the daemon recheck
// core/js/mimetypelist.js.
func TestMimetypeInput(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "version.php"), []byte("<?php\n$OC_Version = array(33,0,0,16);\n"))
	writeFile(t, filepath.Join(root, "themes", "example", "core", "img", "filetypes", "a.svg"), nil)
	in := NewInstall(root, nil, "")
	for p, want := range map[string]bool{
		"config/mimetypealiases.json":                true,
		"config/mimetypenames.json":                  true,
		"config/config.php":                          false,
		"config":                                     true, // the directory renamed or replaced
		"resources/config/mimetypemapping.dist.json": true,
		"resources":                                  true,
		"core/img/filetypes/folder.svg":              true,
		"core/img/actions/x.svg":                     false,
		"themes/example/core/img/filetypes/a.svg":    true,
		"themes/new":                                 true,
		"lib/base.php":                               false,
		"":                                           false,
	} {
		if got := in.MimetypeInput(filepath.Join(root, p)); got != want {
			t.Errorf("MimetypeInput(%s) = %v, want %v", p, got, want)
		}
	}
	if (&Install{}).MimetypeInput("/x") {
		t.Error("an install without a root has no inputs")
	}
}
