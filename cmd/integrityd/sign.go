package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/integrityd/integrityd/internal/verify"
)

func runSignApp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runSign(ctx, "sign-app", args, stdout, stderr)
}

func runSignCore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runSign(ctx, "sign-core", args, stdout, stderr)
}

// runSign is occ integrity:sign-app / integrity:sign-core.
func runSign(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	var path, keyFile, certFile, root, digest string
	fs := newFlagSet(name, stderr)
	fs.StringVar(&path, "path", "", "directory to sign")
	fs.StringVar(&keyFile, "privateKey", "", "PEM RSA private key")
	fs.StringVar(&certFile, "certificate", "", "PEM certificate of the key (CN = app id, or core)")
	if name == "sign-app" {
		fs.StringVar(&root, "root", "", "server root the app lives in, whose excluded directories apply (optional)")
	}
	fs.StringVar(&digest, "digest", "sha1", `PSS message digest: only "sha1", the one every Nextcloud release verifies (phpseclib 2, up to 34); "sha256" is refused`)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	d, err := verify.ParseDigest(digest)
	if err != nil {
		return usageError{"--digest: " + err.Error()}
	}
	if path == "" || keyFile == "" || certFile == "" {
		return usageError{"--path, --privateKey and --certificate are required"}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("read private key: %w", err)
	}
	key, err := verify.ParsePrivateKey(keyPEM, keyFile)
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("read certificate: %w", err)
	}
	var sc *verify.Scope
	if name == "sign-core" {
		sc = verify.NewInstall(path, nil, "").Core()
	} else {
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		sc = verify.NewInstall(root, nil, "").App(filepath.Base(abs), abs)
	}
	if err := sc.Sign(ctx, key, certPEM, d); err != nil {
		return fmt.Errorf("%w (key %s, certificate %s)", err, keyFile, certFile)
	}
	fmt.Fprintf(stdout, "Successfully signed %q\n", sc.Dir)
	return nil
}
