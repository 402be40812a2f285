package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/integrityd/integrityd/internal/demo"
)

// runDemo builds a signed demo install with its own code-signing CA,
// checks it, tampers with it and checks again.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	buildOnly := fs.Bool("build-only", false, "only build the signed install (for scripts)")
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
	if err := demo.Build(ctx, dir); err != nil {
		return err
	}
	if *buildOnly {
		return nil
	}
	check := func(title string) error {
		fmt.Fprintf(stdout, "\n$ integrityd check --root %s --trust %s/resources/codesigning/root.crt\n# %s\n", dir, dir, title)
		// The demo is signed by its own CA (in the tree); a real install
		// is checked against Nextcloud's, built in.
		err := runCheck(ctx, []string{"--root", dir, "--trust", filepath.Join(dir, "resources/codesigning/root.crt")}, stdout, stderr)
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
	if err := check("after tampering: INVALID_HASH index.php, EXTRA_FILE core/shell.php, FILE_MISSING js/files.js in app files"); err != nil {
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
