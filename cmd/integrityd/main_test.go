package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/demo"
)

var update = flag.Bool("update", false, "rewrite golden files")

const interop = "../../internal/verify/testdata/interop"

// runCmd runs the command line in-process and returns exit code, stdout
// and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// appInstall makes ROOT/apps/SomeApp from a fixture tree and a vector.
func appInstall(t *testing.T, tree, vector string) string {
	t.Helper()
	root := t.TempDir()
	app := filepath.Join(root, "apps", "SomeApp")
	copyDir(t, filepath.Join(interop, "nextcloud-tests/integritycheck", tree), app)
	sig, err := os.ReadFile(filepath.Join(interop, "nextcloud-tests/vectors", vector+".signature.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(app, "appinfo"), 0o755)
	if err := os.WriteFile(filepath.Join(app, "appinfo/signature.json"), sig, 0o644); err != nil {
		t.Fatal(err)
	}
	// A development tree (no channel: Nextcloud does not enforce the check).
	if err := os.WriteFile(filepath.Join(root, "version.php"), []byte("<?php\n$OC_Version = array(33,0,0,16);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n%s\nwant:\n%s", path, got, want)
	}
}

// check-app output in every format, against golden files.
func TestCheckAppOutputs(t *testing.T) {
	root := appInstall(t, "appWithInvalidData", "v02_app_signed_by_core")
	trust := filepath.Join(interop, "nextcloud-tests/integritycheck/root.crt")
	for _, format := range []string{"text", "plain", "json", "json_pretty"} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := runCmd(t, "check-app", "SomeApp", "--root", root, "--trust", trust, "--output", format)
			if code != exitFindings {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitFindings, errOut)
			}
			golden(t, "check-app-"+format, out)
			if strings.HasPrefix(format, "json") && !json.Valid([]byte(out)) {
				t.Errorf("invalid JSON: %s", out)
			}
		})
	}
}

func TestCheckExitCodes(t *testing.T) {
	trust := filepath.Join(interop, "nextcloud-tests/integritycheck/root.crt")
	clean := appInstall(t, "app", "v01_app_SomeApp")
	tampered := appInstall(t, "app", "v03_app_tampered_hashes_SomeApp")
	tests := []struct {
		name    string
		args    []string
		code    int
		wantOut string // substring of stdout+stderr
	}{
		{"clean", []string{"check-app", "SomeApp", "--root", clean, "--trust", trust}, exitClean, ""},
		{"clean json", []string{"check-app", "--root", clean, "--trust", trust, "--output=json", "SomeApp"}, exitClean, "[]"},
		{"bad signature", []string{"check-app", "SomeApp", "--root", tampered, "--trust", trust}, exitFindings, "Signature could not get verified."},
		{"no app id", []string{"check-app", "--root", clean}, exitError, "exactly one APPID"},
		{"no root", []string{"check-core"}, exitError, "--root is required"},
		{"bad output", []string{"check-app", "SomeApp", "--root", clean, "--trust", trust, "--output", "xml"}, exitError, `unknown --output "xml"`},
		{"missing trust", []string{"check-app", "SomeApp", "--root", clean, "--trust", "/nonexistent/root.crt"}, exitError, "/nonexistent/root.crt"},
		{"garbage trust", []string{"check-app", "SomeApp", "--root", clean, "--trust", "main_test.go"}, exitError, "no PEM certificate found"},
		{"missing app", []string{"check-app", "Nope", "--root", clean, "--trust", trust}, exitError, "is not a directory"},
		{"unknown command", []string{"frobnicate"}, exitError, "unknown command"},
		{"not enforced", []string{"check-core", "--root", clean, "--trust", trust}, exitError, "--enforce=yes"},
		{"help", []string{"check", "-h"}, exitClean, "-root"},
		{"not nextcloud", []string{"check", "--root", t.TempDir()}, exitError, "no version.php: not a Nextcloud installation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out+errOut, tt.wantOut) {
				t.Errorf("output does not contain %q:\nstdout: %s\nstderr: %s", tt.wantOut, out, errOut)
			}
		})
	}
}

// The demo builds, checks clean, tampers and finds exactly what it did.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nc")
	code, out, errOut := runCmd(t, "demo", dir)
	if code != exitClean {
		t.Fatalf("demo exit %d: %s %s", code, out, errOut)
	}
	for _, want := range []string{"No errors have been found.", "- index.php", "- core/shell.php", "- js/files.js"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, ".htaccess") && strings.Contains(out, "INVALID_HASH\n\t\t- .htaccess") {
		t.Errorf("an edit below the .htaccess marker was reported:\n%s", out)
	}
	code, out, _ = runCmd(t, "check", "--root", dir, "--trust", filepath.Join(dir, "resources/codesigning/root.crt"), "--output", "json")
	if code != exitFindings {
		t.Fatalf("check exit %d", code)
	}
	var got map[string]map[string]map[string]map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got) != 2 || len(got["core"]["INVALID_HASH"]) != 1 || len(got["core"]["EXTRA_FILE"]) != 1 || len(got["files"]["FILE_MISSING"]) != 1 {
		t.Errorf("findings: %s", out)
	}
}

// sign-app with a key and certificate made by openssl: the manifest
// verifies with integrityd and its signature with openssl dgst.
func TestSignAppOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: the interop check needs it (.ci/run installs it)")
	}
	dir := t.TempDir()
	sh := func(args ...string) {
		t.Helper()
		cmd := exec.Command(openssl, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	sh("req", "-x509", "-newkey", "rsa:4096", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=Test Code Signing CA", "-days", "1")
	sh("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "app.key", "-out", "app.csr", "-subj", "/CN=demoapp")
	sh("x509", "-req", "-in", "app.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "app.crt", "-days", "1")
	// openssl x509 -req without extensions makes an X.509 v1 leaf, which
	// Nextcloud accepts: so must we.
	if leaf, err := os.ReadFile(filepath.Join(dir, "app.crt")); err != nil {
		t.Fatal(err)
	} else if b, _ := pem.Decode(leaf); b == nil {
		t.Fatal("app.crt: no PEM")
	} else if c, err := x509.ParseCertificate(b.Bytes); err != nil || c.Version != 1 {
		t.Fatalf("app.crt: version %v, err %v; want a v1 certificate", c, err)
	}
	app := filepath.Join(dir, "root", "apps", "demoapp")
	os.MkdirAll(filepath.Join(dir, "root"), 0o755)
	os.WriteFile(filepath.Join(dir, "root", "version.php"), []byte("<?php\n"), 0o644)
	for name, content := range map[string]string{
		"appinfo/info.xml": "<info/>\n", "lib/A.php": "<?php\n", "js/a/b.js": "x\n", "l10n/é.json": "{}\n",
	} {
		os.MkdirAll(filepath.Join(app, filepath.Dir(name)), 0o755)
		os.WriteFile(filepath.Join(app, name), []byte(content), 0o644)
	}
	code, out, errOut := runCmd(t, "sign-app", "--path", app, "--privateKey", filepath.Join(dir, "app.key"), "--certificate", filepath.Join(dir, "app.crt"))
	if code != exitClean {
		t.Fatalf("sign-app exit %d: %s %s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "check-app", "demoapp", "--root", filepath.Join(dir, "root"), "--trust", filepath.Join(dir, "ca.crt"))
	if code != exitClean {
		t.Fatalf("check-app exit %d: %s %s", code, out, errOut)
	}
	// Re-create the signed message the way Nextcloud does and let openssl
	// verify the signature.
	raw, err := os.ReadFile(filepath.Join(app, "appinfo/signature.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("{\n    \"hashes\": {\n        \"")) || bytes.HasSuffix(raw, []byte("\n")) {
		t.Errorf("not Nextcloud's pretty print:\n%s", raw)
	}
	if !bytes.Contains(raw, []byte(`"l10n\/\u00e9.json"`)) || !bytes.Contains(raw, []byte(`-----BEGIN CERTIFICATE-----\r\n`)) {
		t.Errorf("escapes differ from PHP's:\n%s", raw)
	}
	var doc struct {
		Hashes      map[string]string
		Signature   []byte
		Certificate string
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	msg := `{"appinfo\/info.xml":"` + doc.Hashes["appinfo/info.xml"] + `","js\/a\/b.js":"` + doc.Hashes["js/a/b.js"] +
		`","l10n\/\u00e9.json":"` + doc.Hashes["l10n/é.json"] + `","lib\/A.php":"` + doc.Hashes["lib/A.php"] + `"}`
	os.WriteFile(filepath.Join(dir, "msg.bin"), []byte(msg), 0o644)
	os.WriteFile(filepath.Join(dir, "sig.bin"), doc.Signature, 0o644)
	sh("x509", "-in", "app.crt", "-pubkey", "-noout", "-out", "pub.pem")
	sh("dgst", "-sha1", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:0", "-sigopt", "rsa_mgf1_md:sha512",
		"-verify", "pub.pem", "-signature", "sig.bin", "msg.bin")
}

// check with the trust anchor pinned outside the install warns, and
// fails, when the install's root.crt differs from it.
func TestCheckPinnedTrust(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nc")
	if code, out, errOut := runCmd(t, "demo", "--build-only", dir); code != exitClean {
		t.Fatalf("demo: %s %s", out, errOut)
	}
	pinned := filepath.Join(t.TempDir(), "root.crt")
	orig, _ := os.ReadFile(filepath.Join(dir, "resources/codesigning/root.crt"))
	os.WriteFile(pinned, orig, 0o644)
	if code, out, errOut := runCmd(t, "check", "--root", dir, "--trust", pinned); code != exitClean || errOut != "" {
		t.Fatalf("equal anchors: exit %d %s %s", code, out, errOut)
	}
	// Add another CA to the install's copy.
	_, other, err := demo.NewCert("attacker CA", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "resources/codesigning/root.crt"),
		append(orig, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Raw})...), 0o644)
	code, _, errOut := runCmd(t, "check-core", "--root", dir, "--trust", pinned)
	if code != exitFindings || !strings.Contains(errOut, "differs from the pinned one") {
		t.Errorf("differing anchors: exit %d, stderr %q", code, errOut)
	}
}

// TestCheckAppPathAlone: check-app APPID --path DIR with neither --root nor
// --trust vets an app directory on its own (an unpacked tarball before it
// is installed) against Nextcloud's built-in anchors and CRL: the real
// pride_flags manifest verifies (chain to Nextcloud's real root), and with
// only the manifest present every file is FILE_MISSING, none an EXCEPTION.
func TestCheckAppPathAlone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pride_flags")
	sig, err := os.ReadFile(filepath.Join(interop, "real-apps", "pride_flags.signature.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "appinfo"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "appinfo", "signature.json"), sig, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "check-app", "pride_flags", "--path", dir, "--output", "json")
	if code != exitFindings {
		t.Fatalf("exit %d, want %d (findings)\n%s%s", code, exitFindings, out, errOut)
	}
	var res map[string]map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if _, ok := res["EXCEPTION"]; ok || len(res["FILE_MISSING"]) == 0 || len(res) != 1 {
		t.Errorf("want only FILE_MISSING, got kinds %v", slices.Collect(maps.Keys(res)))
	}
	// Another app id than the certificate's: Nextcloud's scope message.
	code, out, _ = runCmd(t, "check-app", "notes", "--path", dir)
	if code != exitFindings || !strings.Contains(out, "Certificate is not valid for required scope. (Requested: notes, current: CN=pride_flags)") {
		t.Errorf("other app id: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCmd(t, "check-app", "pride_flags"); code != exitError || !strings.Contains(errOut, "--path DIR") {
		t.Errorf("neither --root nor --path: exit %d, %s", code, errOut)
	}
}

// TestHelpSaysWhatIsDone: the help of a flag says what the code does:
// --trust and --crl default to the anchors built into the binary (not the
// install's root.crt), and sign-* --digest offers SHA-1 only, the one PSS
// digest every Nextcloud release verifies (phpseclib 2, 34.0.1 included);
// asking for sha256 is a usage error.
func TestHelpSaysWhatIsDone(t *testing.T) {
	for _, tt := range []struct {
		name     string
		args     []string
		code     int
		want     []string
		wantNot  []string
		flagLine string // the help line that must hold want (and not wantNot)
	}{
		{"check trust", []string{"check", "-h"}, exitClean, []string{"built into integrityd", "only compared"}, []string{"default ROOT/resources/codesigning/root.crt"}, "-trust"},
		{"check crl", []string{"check", "-h"}, exitClean, []string{"built into integrityd", "with --trust"}, nil, "-crl"},
		{"sign-app digest", []string{"sign-app", "-h"}, exitClean, []string{"sha1", "every Nextcloud release verifies"}, []string{"Nextcloud 34 and later"}, "-digest"},
		{"sign-core digest", []string{"sign-core", "-h"}, exitClean, []string{"sha1", "every Nextcloud release verifies"}, []string{"Nextcloud 34 and later"}, "-digest"},
		{"sign-app sha256", []string{"sign-app", "--path", t.TempDir(), "--privateKey", "k", "--certificate", "c", "--digest", "sha256"}, exitError, []string{"no released Nextcloud verifies a SHA-256"}, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			text := out + errOut
			if tt.flagLine != "" {
				text = flagHelp(text, tt.flagLine)
			}
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("help of %q does not say %q:\n%s", tt.flagLine, w, text)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(text, w) {
					t.Errorf("help of %q says %q:\n%s", tt.flagLine, w, text)
				}
			}
		})
	}
}

// flagHelp is the part of flag.PrintDefaults output that documents flag
// (its line and the indented lines after it).
func flagHelp(out, flag string) string {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "  "+flag+" ") || l == "  "+flag:
			in = true
		case strings.HasPrefix(l, "  -"):
			in = false
		}
		if in {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
