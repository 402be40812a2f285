package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/integrityd/integrityd/internal/verify"
)

// demoFiles is a small Nextcloud-like install: core files, two apps, and
// directories that the check skips (config, data).
var demoFiles = map[string]string{
	"version.php": "<?php\n$OC_Version = array(30,0,0,0);\n$OC_VersionString = '30.0.0';\n$OC_Channel = 'stable';\n",
	"index.php":   "<?php\nrequire_once __DIR__ . '/lib/base.php';\nOC::handleRequest();\n",
	"status.php":  "<?php\necho json_encode(['installed' => true]);\n",
	".htaccess": "<IfModule mod_headers.c>\n  Header always set X-Content-Type-Options \"nosniff\"\n</IfModule>\n" +
		"#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####\n\nErrorDocument 404 /index.php\n",
	"lib/base.php":                     "<?php\nclass OC { public static function handleRequest() {} }\n",
	"lib/private/Server.php":           "<?php\nnamespace OC;\nclass Server {}\n",
	"core/js/login.js":                 "window.login = function () { return true; };\n",
	"core/css/server.css":              "body { margin: 0; }\n",
	"core/shipped.json":                "{\"shippedApps\": [\"files\", \"dashboard\"], \"alwaysEnabled\": [\"files\"]}\n",
	"apps/files/appinfo/info.xml":      "<?xml version=\"1.0\"?>\n<info><id>files</id><version>2.0.0</version></info>\n",
	"apps/files/lib/App.php":           "<?php\nnamespace OCA\\Files;\nclass App {}\n",
	"apps/files/js/files.js":           "console.log('files');\n",
	"apps/dashboard/appinfo/info.xml":  "<?xml version=\"1.0\"?>\n<info><id>dashboard</id><version>7.0.0</version></info>\n",
	"apps/dashboard/lib/Dashboard.php": "<?php\nnamespace OCA\\Dashboard;\nclass Dashboard {}\n",
	"config/config.php":                "<?php\n$CONFIG = array('instanceid' => 'demo');\n",
	"data/admin/files/notes.txt":       "user data is not checked\n",
}

// runDemo builds a signed demo install with its own code-signing CA,
// checks it, tampers with it and checks again.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{"at most one DIR"}
	}
	dir := ""
	if len(pos) == 1 {
		dir = pos[0]
		if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
			return fmt.Errorf("demo directory %s is not empty", dir)
		}
	} else if dir, err = os.MkdirTemp("", "integrityd-demo-"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Building a signed demo install in %s (test CA, RSA-2048 keys)...\n", dir)
	if err := buildDemo(ctx, dir); err != nil {
		return err
	}
	check := func(title string) error {
		fmt.Fprintf(stdout, "\n$ integrityd check --root %s\n# %s\n", dir, title)
		err := runCheck(ctx, []string{"--root", dir}, stdout, stderr)
		if err != nil && !errors.Is(err, errFindings) {
			return err
		}
		return nil
	}
	if err := check("freshly signed: no findings expected"); err != nil {
		return err
	}
	// Tamper: modify, add, delete; edit below the .htaccess marker (allowed).
	tamper := []struct {
		what string
		do   func() error
	}{
		{"append to index.php", func() error { return appendFile(filepath.Join(dir, "index.php"), "eval($_GET['x']);\n") }},
		{"add core/shell.php", func() error {
			return os.WriteFile(filepath.Join(dir, "core/shell.php"), []byte("<?php system($_GET['c']);\n"), 0o644)
		}},
		{"delete apps/files/js/files.js", func() error { return os.Remove(filepath.Join(dir, "apps/files/js/files.js")) }},
		{"edit .htaccess below the marker (not signed, so not a finding)", func() error {
			return appendFile(filepath.Join(dir, ".htaccess"), "ErrorDocument 403 /index.php\n")
		}},
	}
	fmt.Fprintln(stdout, "\nTampering:")
	for _, t := range tamper {
		fmt.Fprintf(stdout, "  - %s\n", t.what)
		if err := t.do(); err != nil {
			return err
		}
	}
	if err := check("after tampering: INVALID_HASH index.php, EXTRA_FILE core/shell.php, MISSING_FILE js/files.js in app files"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nThe demo install stays in %s; its trust anchor is %s.\n", dir,
		filepath.Join(dir, "resources/codesigning/root.crt"))
	return nil
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// buildDemo writes demoFiles under dir, a CA in
// resources/codesigning/root.crt, and signs core and both apps.
func buildDemo(ctx context.Context, dir string) error {
	for name, content := range demoFiles {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	caKey, caCert, err := newCert("integrityd demo Code Signing Authority", nil, nil)
	if err != nil {
		return err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})
	if err := os.MkdirAll(filepath.Join(dir, "resources/codesigning"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "resources/codesigning/root.crt"), caPEM, 0o644); err != nil {
		return err
	}
	in := verify.NewInstall(dir, nil, "")
	for _, sc := range []*verify.Scope{in.Core(), in.App("files", ""), in.App("dashboard", "")} {
		key, cert, err := newCert(sc.Name, caKey, caCert)
		if err != nil {
			return err
		}
		if err := sc.Sign(ctx, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})); err != nil {
			return err
		}
	}
	return nil
}

// newCert makes an RSA-2048 key and a certificate for cn, signed by the
// parent (self-signed CA when parent is nil).
func newCert(cn string, parentKey *rsa.PrivateKey, parent *x509.Certificate) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(cert.RawIssuer, parent.RawSubject) && parent != tmpl {
		return nil, nil, errors.New("demo certificate: issuer mismatch")
	}
	return key, cert, nil
}
