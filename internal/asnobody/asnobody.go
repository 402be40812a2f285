// Package asnobody helps tests of what an unprivileged process cannot
// read: as root (CI), chmod 000 stops nothing, so such a test runs itself
// again, in a copy of the test binary, as uid/gid 65534.
package asnobody

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Dir makes a directory that uid 65534 can traverse (a test's own
// temporary directories are below a 0700 one); it is removed after t.
func Dir(t testing.TB) string {
	t.Helper()
	parent := ""
	for _, p := range []string{"/var/tmp", os.TempDir(), "/tmp"} {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() && fi.Mode().Perm()&0o001 != 0 {
			parent = p
			break
		}
	}
	if parent == "" {
		t.Skip("no world-traversable temporary directory (/var/tmp, $TMPDIR, /tmp) for a tree that uid 65534 can reach")
	}
	dir, err := os.MkdirTemp(parent, "integrityd-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Run runs the test named test of this test binary as uid/gid 65534, with
// env added, from a copy of the binary in dir (made by Dir). The child
// failing, hanging for a minute or not passing fails t; its output is
// returned.
func Run(t testing.TB, dir, test string, env ...string) []byte {
	t.Helper()
	cmd := Command(t, dir, test, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("running as root but cannot switch to uid 65534 (no CAP_SETUID?): %v", err)
		}
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the test run as uid 65534 did not finish within 60 s: it hangs\n%s", out.Bytes())
	}
	if err != nil || !bytes.Contains(out.Bytes(), []byte("--- PASS: "+test)) {
		t.Fatalf("the test run as uid 65534 failed (%v):\n%s", err, out.Bytes())
	}
	return out.Bytes()
}

// Command is what Run runs, not started: the test named test of a copy
// of this test binary in dir, as uid/gid 65534, with env added. For a
// test that talks with the child while it runs (its stdin, stdout); the
// caller starts it, waits for it and looks at its result.
func Command(t testing.TB, dir, test string, env ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "nobody.test")
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	return cmd
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, 0o755)
}
