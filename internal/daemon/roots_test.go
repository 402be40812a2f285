package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/integrityd/integrityd/internal/kind"
)

// The install's directory renamed away and another put at its path (a
// manual upgrade, or an attacker's copy with a backdoor): the daemon
// alerts on the move, follows the path (the tree there now is watched
// and checked whole, the old one no longer), and ends where a one-shot
// check of the path does.
func TestAttackRootReplaced(t *testing.T) {
	t.Parallel()
	for _, gap := range []bool{true, false} {
		root := demoTree(t)
		r := start(t, testConfig(root, t.TempDir()))
		moved := func() int { return r.logs.FilterField(zapString("message_id", kind.IDRootMoved)).Len() }
		old, next := root+".old", root+".next"
		// The copy, with a backdoor in a signed file, made beside.
		if out, err := exec.Command("cp", "-a", root, next).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
		if err := appendTo(filepath.Join(next, "index.php"), "<?php system($_GET['c']);\n"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(root, old); err != nil {
			t.Fatal(err)
		}
		if gap {
			waitFor(t, "ROOT_MOVED after the install was renamed away", func() bool { return moved() >= 1 })
		}
		if err := os.Rename(next, root); err != nil {
			t.Fatal(err)
		}
		if _, ok := r.waitAlert("core:index.php"); !ok {
			t.Fatalf("gap %v: no alert for the backdoor in the tree now at the install's path", gap)
		}
		if moved() == 0 {
			t.Errorf("gap %v: no ROOT_MOVED entry", gap)
		}
		// The tree at the path is watched: a web shell written into it
		// is alerted; one written into the old tree is not (Nextcloud
		// does not run it).
		if err := os.WriteFile(filepath.Join(old, "lib", "old-shell.php"), []byte("<?php\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "lib", "shell.php"), []byte("<?php\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, ok := r.waitAlert("core:lib/shell.php"); !ok {
			t.Fatalf("gap %v: no alert for a web shell in the tree now at the install's path", gap)
		}
		r.waitIdle(t)
		if n := alerts(r.logs, sortAlert)["core:lib/old-shell.php"]; n != 0 {
			t.Errorf("gap %v: %d alerts for a file of the tree moved away", gap, n)
		}
		assertSame(t, r, root, "after the install's directory was replaced")
		r.stop()
	}
}
