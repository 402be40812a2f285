package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/demo"
)

// expect-release stages a release whose manifests verify with the trust
// given, refuses one they do not (Nextcloud's own anchors for the demo's
// test CA), and says what is wrong with its arguments.
func TestExpectReleaseCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	trust := filepath.Join(root, "resources/codesigning/root.crt")
	code, out, errOut := runCmd(t, "expect-release", "--trust", trust, "--state-dir", state, "--for", "1h", root)
	if code != 0 || !strings.Contains(out, "expecting release ") || !strings.Contains(out, "(3: core, dashboard, files)") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(state, "expected", "nextcloud", "core", "signature.json")); err != nil {
		t.Errorf("nothing staged: %v", err)
	}
	// Nextcloud's anchors (no --trust): the demo's certificates do not
	// chain to them.
	code, out, errOut = runCmd(t, "expect-release", "--state-dir", t.TempDir(), root)
	if code == 0 || !strings.Contains(errOut, "core: ") || !strings.Contains(errOut, "not staged") {
		t.Errorf("with Nextcloud's anchors: exit %d\n%s%s", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--state-dir", state}, "needs one DIR or ARCHIVE"},
		{[]string{"--state-dir", state, "--for", "8d", root}, "invalid value"},
		{[]string{"--state-dir", state, "--for", "200h", root}, "at most"},
		{[]string{"--state-dir", state, "--clear", root}, "takes no DIR"},
	} {
		if code, _, errOut := runCmd(t, append([]string{"expect-release"}, c.args...)...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, errOut, c.want)
		}
	}
	code, out, errOut = runCmd(t, "expect-release", "--state-dir", state, "--clear")
	if code != 0 || !strings.Contains(out, "no release expected") {
		t.Errorf("--clear: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(state, "expected")); !os.IsNotExist(err) {
		t.Errorf("--clear left the expectation: %v", err)
	}
}
