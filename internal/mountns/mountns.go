// Package mountns runs a test again in a mount namespace of its own
// (unshare --mount --propagation private), where it can mount freely
// without touching the host's mounts: tests of mounts over the install.
// Rerun does the same under any wrapper (a user namespace with its own
// inotify limit, say).
package mountns

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
	"time"
)

// parentEnv carries the parent's mount namespace to the child, which must
// not be in it.
const parentEnv = "INTEGRITYD_TEST_MOUNTNS_PARENT"

// Run runs the test named child of this test binary in a new mount
// namespace and fails t if it fails. It skips t, saying why, when that
// cannot be done (not root, no unshare, no mount namespaces).
func Run(t *testing.T, child string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: the test mounts in a mount namespace of its own, which needs CAP_SYS_ADMIN (CI runs the tests as root)")
	}
	for _, c := range []string{"unshare", "mount", "umount"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("no %s (util-linux): %v", c, err)
		}
	}
	if out, err := exec.Command("unshare", "--mount", "--propagation", "private", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a mount namespace (unshare --mount: %v): %s", err, bytes.TrimSpace(out))
	}
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Skipf("cannot tell this process's mount namespace: %v", err)
	}
	Rerun(t, "in a mount namespace", []string{"unshare", "--mount", "--propagation", "private"}, []string{parentEnv + "=" + ns}, child)
}

// Rerun runs the test named child of this test binary under the command
// wrapper (which execs its last arguments: the binary and its flags), with
// env added, and fails t if it fails or skips t if it skipped; where says
// in what setting, for messages.
func Rerun(t *testing.T, where string, wrapper, env []string, child string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The child may take as long as this test may (a hang guard, not a
	// speed target: a loaded machine is slow), less a margin to report.
	limit := 10 * time.Minute
	if d, ok := t.Deadline(); ok {
		limit = max(time.Until(d)-30*time.Second, time.Minute)
	}
	args := append(append([]string(nil), wrapper[1:]...), self, "-test.run=^"+child+"$", "-test.count=1", "-test.v", "-test.timeout="+limit.String())
	cmd := exec.Command(wrapper[0], args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(limit + 15*time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %s did not finish within %v (hangs?):\n%s", child, where, limit+15*time.Second, out.Bytes())
	}
	switch {
	case err == nil && bytes.Contains(out.Bytes(), []byte("--- SKIP: "+child)):
		t.Skipf("skipped %s:\n%s", where, out.Bytes())
	case err != nil || !bytes.Contains(out.Bytes(), []byte("--- PASS: "+child)):
		t.Fatalf("%s %s failed (%v):\n%s", child, where, err, out.Bytes())
	}
	t.Logf("%s:\n%s", where, out.Bytes())
}

// Enter is the first call of a child test: it skips unless Run started
// it, and refuses to go on in the parent's mount namespace.
func Enter(t *testing.T, parent string) {
	t.Helper()
	ns := os.Getenv(parentEnv)
	if ns == "" {
		t.Skipf("run by %s, in a mount namespace of its own", parent)
	}
	if cur, err := os.Readlink("/proc/self/ns/mnt"); err != nil || cur == ns {
		t.Fatalf("not in a mount namespace of its own (%s, parent %s, %v): refusing to mount", cur, ns, err)
	}
}
