// Package tamperhelper is for tests of who-data: a copy of the test
// binary, named tamper-helper and run as uid/gid 33 (a web server's), that
// appends a web shell to a file and stays alive until told to exit, so
// that the writer's pid, comm, exe and uid can be checked against what the
// daemon reports.
package tamperhelper

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// env makes the test binary the helper: it appends a line to the file the
// variable names, says so on stdout, and waits for stdin to close before
// it exits (so that /proc still describes it when the event is read).
const env = "INTEGRITYD_TAMPER_HELPER"

// UID is the helper's uid and gid.
const UID = 33

// Main runs the helper and exits when the test binary was started as one;
// call it first in TestMain.
func Main() {
	p := os.Getenv(env)
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = f.WriteString("<?php system($_GET['c']);\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("written")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// Dir returns a temporary directory uid 33 can traverse (a test's own are
// below a 0700 one).
func Dir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// Binary copies the test binary to dir/tamper-helper, so that its comm and
// exe are distinct from the test's.
func Binary(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "tamper-helper")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// Start runs the helper bin as uid/gid 33 on file and returns it once it
// has written; closing the returned stdin (or the end of the test) ends it.
func Start(t *testing.T, bin, file string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env+"="+file)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: UID, Gid: UID}}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	if _, err := io.ReadFull(out, make([]byte, 8)); err != nil {
		in.Close()
		cmd.Wait()
		t.Fatalf("tamper-helper: %v: %s", err, stderr.String())
	}
	return cmd, in
}
