// Package demo builds a small signed Nextcloud-like install with its own
// code-signing CA: for the demo command, tests and benchmarks.
package demo

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
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/integrityd/integrityd/internal/verify"
)

// Files is a small Nextcloud-like install: core files, two apps, and
// directories that the check skips (config, data).
var Files = map[string]string{
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

// Build writes Files under dir, a CA in resources/codesigning/root.crt,
// and signs core and both apps (RSA-2048 keys, made fresh).
func Build(ctx context.Context, dir string) error {
	_, err := BuildWithKeys(ctx, dir)
	return err
}

// Keys are the demo's signing keys, to sign again after a change.
type Keys struct {
	CAKey  *rsa.PrivateKey
	CACert *x509.Certificate
	// Leaf keys and certificate PEMs by scope name.
	Key  map[string]*rsa.PrivateKey
	Cert map[string][]byte
}

// Sign signs sc again with the demo key of its name (made if needed).
func (k *Keys) Sign(ctx context.Context, sc *verify.Scope) error {
	if k.Key[sc.Name] == nil {
		key, cert, err := NewCert(sc.Name, k.CAKey, k.CACert)
		if err != nil {
			return err
		}
		k.Key[sc.Name] = key
		k.Cert[sc.Name] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	}
	return sc.Sign(ctx, k.Key[sc.Name], k.Cert[sc.Name], verify.DigestSHA1)
}

// SignedRelease returns the files of the demo app id (its manifest and
// appinfo/info.xml) as a release of the given version, validly signed,
// and leaves the app as it was: what an older (or newer) signed release
// put in place of the install's looks like.
func (k *Keys) SignedRelease(ctx context.Context, root, id, version string) (map[string][]byte, error) {
	dir := filepath.Join(root, "apps", id)
	names := []string{"appinfo/signature.json", "appinfo/info.xml"}
	read := func() (map[string][]byte, error) {
		m := map[string][]byte{}
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				return nil, err
			}
			m[n] = b
		}
		return m, nil
	}
	was, err := read()
	if err != nil {
		return nil, err
	}
	info := fmt.Sprintf("<?xml version=\"1.0\"?>\n<info><id>%s</id><version>%s</version></info>\n", id, version)
	if err := os.WriteFile(filepath.Join(dir, "appinfo/info.xml"), []byte(info), 0o644); err != nil {
		return nil, err
	}
	if err := k.Sign(ctx, verify.NewInstall(root, nil, "").App(id, dir)); err != nil {
		return nil, err
	}
	rel, err := read()
	if err != nil {
		return nil, err
	}
	return rel, PutFiles(dir, was)
}

// PutFiles writes files (names relative to dir) in dir: the manifest
// first, then the others in name order, so that a watcher sees the new
// manifest before the files it signs (as it does during an update).
func PutFiles(dir string, files map[string][]byte) error {
	var manifests, others []string
	for _, n := range slices.Sorted(maps.Keys(files)) {
		if filepath.Base(n) == "signature.json" {
			manifests = append(manifests, n)
		} else {
			others = append(others, n)
		}
	}
	for _, n := range append(manifests, others...) {
		if err := os.WriteFile(filepath.Join(dir, n), files[n], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// BuildWithKeys is Build, returning the keys.
func BuildWithKeys(ctx context.Context, dir string) (*Keys, error) {
	for name, content := range Files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	caKey, caCert, err := NewCert("integrityd demo Code Signing Authority", nil, nil)
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})
	if err := os.MkdirAll(filepath.Join(dir, "resources/codesigning"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "resources/codesigning/root.crt"), caPEM, 0o644); err != nil {
		return nil, err
	}
	k := &Keys{CAKey: caKey, CACert: caCert, Key: map[string]*rsa.PrivateKey{}, Cert: map[string][]byte{}}
	in := verify.NewInstall(dir, nil, "")
	for _, sc := range []*verify.Scope{in.Core(), in.App("files", ""), in.App("dashboard", "")} {
		if err := k.Sign(ctx, sc); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// NewCert makes an RSA-2048 key and a certificate for cn, signed by the
// parent (self-signed CA when parent is nil).
func NewCert(cn string, parentKey *rsa.PrivateKey, parent *x509.Certificate) (*rsa.PrivateKey, *x509.Certificate, error) {
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
