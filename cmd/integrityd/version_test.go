package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	buildversion "github.com/integrityd/integrityd/internal/version"
)

// TestVersionAndHelp: integrityd --version and integrityd version print
// the version the metrics carry, on stdout; -h of the program and of a
// command goes to stdout with exit 0 (issue 22: it went to stderr).
func TestVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}, {"-h"}, {"help"}, {"status", "-h"}, {"run", "--help"}, {"check-app", "x", "-h"}} {
		var stdout, stderr bytes.Buffer
		if rc := run(context.Background(), args, &stdout, &stderr); rc != exitClean {
			t.Errorf("%v: exit %d, want 0; stderr %q", args, rc, stderr.String())
		}
		if stderr.Len() != 0 {
			t.Errorf("%v: wrote to stderr: %q", args, stderr.String())
		}
		out := stdout.String()
		if args[0] == "--version" || args[0] == "version" {
			if want := "integrityd " + buildversion.String() + "\n"; !strings.HasPrefix(out, want) {
				t.Errorf("%v: stdout %q, want it to start with %q", args, out, want)
			}
		} else if !strings.HasPrefix(out, "usage: integrityd") && !strings.HasPrefix(out, "Usage of integrityd") {
			t.Errorf("%v: stdout %q, want the usage", args, out)
		}
	}
	// No arguments and bad flags are errors: stderr, not 0.
	var stdout, stderr bytes.Buffer
	if rc := run(context.Background(), nil, &stdout, &stderr); rc != exitError || stdout.Len() != 0 || stderr.Len() == 0 {
		t.Errorf("no arguments: exit %d, stdout %q; want 2 and the usage on stderr", rc, stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	if rc := run(context.Background(), []string{"version", "--bogus"}, &stdout, &stderr); rc != exitError || stdout.Len() != 0 {
		t.Errorf("version --bogus: exit %d, stdout %q; want 2, nothing on stdout", rc, stdout.String())
	}
}

// TestVersionStamp builds the binary as the Dockerfile and install.sh do,
// with -ldflags -X main.version=..., and checks that --version prints it.
func TestVersionStamp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command")
		}
	}
	bin := filepath.Join(t.TempDir(), "integrityd")
	build := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -X main.version=9.8.7-test", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if !strings.HasPrefix(string(out), "integrityd 9.8.7-test\n") {
			t.Errorf("integrityd %s: %q, want integrityd 9.8.7-test", arg, out)
		}
	}
}
