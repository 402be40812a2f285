package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallScriptDest runs packaging/install.sh into a staging root
// (--dest: no user, no systemctl) with --bin, then again with --bin naming
// the binary it installed (issue 22: install(1) aborted midway with "are the
// same file"); the who-data drop-in is installed with the other examples.
func TestInstallScriptDest(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	dest := filepath.Join(dir, "dest")
	bin := filepath.Join(dir, "integrityd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho integrityd 0.0.0-fake\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	install := func(bin string) {
		t.Helper()
		out, err := exec.Command("bash", "../../packaging/install.sh", "--dest", dest, "--bin", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("install.sh --dest %s --bin %s: %v\n%s", dest, bin, err, out)
		}
		if !strings.Contains(string(out), "installed into "+dest) {
			t.Fatalf("install.sh --bin %s did not finish:\n%s", bin, out)
		}
	}
	install(bin)
	installed := filepath.Join(dest, "usr/local/bin/integrityd")
	install(installed)
	if fi, err := os.Stat(installed); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("%s after --bin of itself: %v %v", installed, fi, err)
	}
	share := filepath.Join(dest, "usr/local/share/integrityd")
	for _, f := range []string{"drop-ins/metrics-tcp.conf", "drop-ins/metrics-textfile.conf", "drop-ins/who-data.conf", "integrityd.conf.example"} {
		want, err := os.ReadFile(filepath.Join("../../packaging/systemd", strings.TrimSuffix(f, ".example")))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(share, f))
		if err != nil {
			t.Errorf("not installed: %v", err)
		} else if string(got) != string(want) {
			t.Errorf("%s differs from packaging's", f)
		}
	}
}

// TestInstallPurgeUngrantsTextfileDir: --uninstall --purge takes back what
// --textfile-dir gave group integrityd on node_exporter's directory (the
// group and g+w, or an ACL entry) before deleting the group (issue 22: the
// directory stayed group-writable by the deleted group's gid). The
// script's own function, with getent answering for a group integrityd of
// gid 4242 (no group is created on this machine).
func TestInstallPurgeUngrantsTextfileDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chgrp to another gid needs root")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "bin")
	if err := os.Mkdir(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fake, "getent"), []byte("#!/bin/sh\n[ \"$1 $2\" = \"group integrityd\" ] && echo integrityd:x:4242:\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ungrant := func(setup string) string {
		t.Helper()
		d := filepath.Join(dir, "textfile")
		os.RemoveAll(d)
		script := `set -euo pipefail
eval "$(sed -n '/^ungrant_textfile_dir()/,/^}/p' ../../packaging/install.sh)"
install -d -m 0755 -o 0 -g 0 "$1"
` + setup + `
ungrant_textfile_dir "$1" >/dev/null
stat -c '%g %a' "$1"
if command -v getfacl >/dev/null; then getfacl -cpn "$1" | grep '^group:[0-9]' || true; fi`
		cmd := exec.Command("bash", "-c", script, "bash", d)
		cmd.Env = append(os.Environ(), "PATH="+fake+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := ungrant(`chgrp 4242 "$1"; chmod g+w "$1"`); got != "0 755" {
		t.Errorf("chgrp integrityd + g+w, then purge: %q, want \"0 755\"", got)
	}
	if _, err := exec.LookPath("setfacl"); err == nil {
		if got := ungrant(`setfacl -m g:4242:rwx "$1"`); got != "0 755" {
			t.Errorf("ACL g:integrityd:rwx, then purge: %q, want \"0 755\" and no ACL entry", got)
		}
	}
	// A directory integrityd never had is left alone.
	if got := ungrant(`chmod 0775 "$1"`); got != "0 775" {
		t.Errorf("a directory of another group: %q, want it unchanged", got)
	}
}

// TestDebBuildCallerPaths runs packaging/deb/build.sh from another
// directory with a relative --bin and no --out: the binary is the
// caller's ./integrityd, the package lands in the caller's directory
// (the script works from the checkout; both were read from there).
func TestDebBuildCallerPaths(t *testing.T) {
	for _, c := range []string{"bash", "dpkg-deb", "gzip"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skip("no " + c)
		}
	}
	script, err := filepath.Abs("../../packaging/deb/build.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fake := "#!/bin/sh\necho integrityd 1.0\n[ \"$1\" = version ] && echo go1.26.0 linux/amd64\nexit 0\n"
	if err := os.WriteFile(filepath.Join(dir, "integrityd"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script, "--bin", "./integrityd")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VERSION=1.0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh --bin ./integrityd in %s: %v\n%s", dir, err, out)
	}
	deb := filepath.Join(dir, "integrityd_1.0_amd64.deb")
	if _, err := os.Stat(deb); err != nil {
		t.Errorf("no package in the caller's directory: %v\n%s", err, out)
	}
	info, err := exec.Command("dpkg-deb", "--field", deb, "Package", "Version").CombinedOutput()
	if err != nil || !strings.Contains(string(info), "Version: 1.0") {
		t.Errorf("dpkg-deb --field %s: %v\n%s", deb, err, info)
	}
}
