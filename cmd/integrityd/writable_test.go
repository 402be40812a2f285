package main

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckWritableDir(t *testing.T) {
	dir := t.TempDir()
	if c, err := checkWritableDir(dir); err != nil || !strings.HasPrefix(c.note, "writable") {
		t.Errorf("writable directory: %+v %v", c, err)
	}
	missing := filepath.Join(dir, "a", "b")
	if c, err := checkWritableDir(missing); err != nil || !strings.Contains(c.note, "does not exist yet; "+dir+" is writable") {
		t.Errorf("missing directory: %+v %v", c, err)
	}
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	if _, err := checkWritableDir(filepath.Join(file, "x")); err == nil || !strings.Contains(err.Error(), file+" is not a directory") {
		t.Errorf("below a file: %v", err)
	}
}

// writableBy reads the owner and mode as the kernel would for another
// user: owner bits, group bits, other bits.
func TestWritableBy(t *testing.T) {
	nobody := &user.User{Uid: "65534", Gid: "65534", Username: "integrityd-test-none"}
	dir := t.TempDir()
	for _, tt := range []struct {
		uid, gid int
		mode     os.FileMode
		want     bool
	}{
		{65534, 0, 0o700, true},
		{65534, 0, 0o500, false},
		{0, 65534, 0o770, true},
		{0, 65534, 0o750, false},
		{0, 0, 0o755, false},
		{0, 0, 0o777, true},
	} {
		d := filepath.Join(dir, "d")
		os.RemoveAll(d)
		os.Mkdir(d, 0o700)
		os.Chown(d, tt.uid, tt.gid)
		os.Chmod(d, tt.mode)
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() != 0 && (tt.uid != os.Geteuid()) {
			continue // cannot chown
		}
		if got, why := writableBy(fi, nobody); got != tt.want {
			t.Errorf("owner %d:%d mode %04o: writable by uid 65534 %v (%s), want %v", tt.uid, tt.gid, tt.mode, got, why, tt.want)
		}
	}
}

// check-config names the directories the daemon writes in, and refuses a
// textfile directory it cannot write in.
func TestCheckConfigDirectories(t *testing.T) {
	root := demoRoot(t)
	state := filepath.Join(t.TempDir(), "state")
	code, out, errOut := runCmd(t, "check-config", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--state-dir", state, "--metrics-textfile", filepath.Join(t.TempDir(), "m.prom"), "--control-socket", "/run/x/c.sock")
	if code != exitClean || !strings.Contains(out, "state dir:       does not exist yet") || !strings.Contains(out, "metrics dir:     writable") ||
		!strings.Contains(out, "control socket:  /run/x/c.sock") {
		t.Errorf("check-config: exit %d\n%s%s", code, out, errOut)
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	code, out, errOut = runCmd(t, "check-config", "--root", root, "--trust", filepath.Join(root, "resources/codesigning/root.crt"), "--state-dir", state, "--metrics-textfile", filepath.Join(file, "m.prom"))
	if code != exitError || !strings.Contains(errOut, "metrics textfile directory "+file+": "+file+" is not a directory") || !strings.Contains(errOut, "ReadWritePaths="+file) {
		t.Errorf("check-config, textfile below a file: exit %d\n%s%s", code, out, errOut)
	}
}
