//go:build linux

package verify_test

// No blind windows: files on pseudo file systems (procfs, sysfs...) are
// never read, whether a symlink points there or one is mounted in the
// tree; files on tmpfs are; and a file of a scope with more than one
// name (hard links) is a finding, because a write through the other
// name is invisible to inotify.

import (
	"crypto/sha512"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// blindWant is one finding a case expects: "scope KIND path", its exact
// message, and its current hash ("" for none, "expected" for the
// manifest's).
type blindWant struct {
	line, msg, current string
}

// blindCase sets up one situation in a shared signed tree: pre runs
// before signing (what it writes is in the manifests), post after. Either
// returns a reason to skip the case (then it changed nothing). want lists
// the case's findings; keys are paths (scope|key) that must have none.
type blindCase struct {
	name      string
	pre, post func(t *testing.T) string
	want      []blindWant
	clean     []string
}

func sha512Hex(s string) string {
	h := sha512.Sum512([]byte(s))
	return hex.EncodeToString(h[:])
}

// firstRegular returns the first of paths that stat (following links)
// says is a regular file, and its file system's name as given.
func firstRegular(cands [][2]string) (string, string) {
	for _, c := range cands {
		if fi, err := os.Stat(c[0]); err == nil && fi.Mode().IsRegular() {
			return c[0], c[1]
		}
	}
	return "", ""
}

func pseudoMsg(fs string) string { return "on " + fs + " (not a real file system): not read" }

const links2 = "file has 2 links: a write through another name is not seen"

// TestFaultPseudoFilesAndHardLinks: each case's findings from the full
// check, with exact messages and hashes, and the daemon's rechecks of
// each path, of its directory and of the whole scope see the same.
func TestFaultPseudoFilesAndHardLinks(t *testing.T) {
	dir := t.TempDir()
	root, keys := faultTree(t, dir)
	p := func(k string) string { return filepath.Join(root, k) }
	outside := filepath.Join(dir, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(t *testing.T, path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(t *testing.T, old, new string) {
		t.Helper()
		if err := os.Link(old, new); err != nil {
			t.Fatal(err)
		}
	}
	symlinkTo := func(target, k string) func(t *testing.T) string {
		return func(t *testing.T) string {
			if _, err := os.Stat(target); err != nil {
				return target + " is absent here: " + err.Error()
			}
			os.Remove(p(k))
			if err := os.Symlink(target, p(k)); err != nil {
				t.Fatal(err)
			}
			return ""
		}
	}
	writeFile := func(k, content string) func(t *testing.T) string {
		return func(t *testing.T) string { write(t, p(k), content); return "" }
	}
	// mount mounts what on dir and unmounts it at the end (before the
	// temporary directory is removed: cleanups run last first).
	mount := func(t *testing.T, source, dir, fstype string, flags uintptr, data string) string {
		if os.Geteuid() != 0 {
			return "not root: cannot mount " + fstype
		}
		if err := syscall.Mount(source, dir, fstype, flags, data); err != nil {
			return "mount " + fstype + " on " + dir + ": " + err.Error() + " (needs CAP_SYS_ADMIN)"
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		return ""
	}

	sysFile, sysFS := firstRegular([][2]string{
		{"/sys/kernel/address_bits", "sysfs"}, {"/sys/kernel/profiling", "sysfs"},
		{"/sys/kernel/mm/transparent_hugepage/enabled", "sysfs"}, {"/sys/devices/system/cpu/online", "sysfs"},
	})
	cgFile, cgFS := firstRegular([][2]string{
		{"/sys/fs/cgroup/cgroup.controllers", "cgroup2"}, {"/sys/fs/cgroup/unified/cgroup.controllers", "cgroup2"},
		{"/sys/fs/cgroup/pids/cgroup.procs", "cgroup"}, {"/sys/fs/cgroup/memory/cgroup.procs", "cgroup"},
	})
	traceFile, traceFS := firstRegular([][2]string{
		{"/sys/kernel/tracing/trace_pipe", "tracefs"}, {"/sys/kernel/debug/tracing/trace_pipe", "tracefs"},
	})
	absent := func(what string) func(*testing.T) string {
		return func(*testing.T) string { return "no " + what + " here" }
	}
	orAbsent := func(path, what, k string) func(*testing.T) string {
		if path == "" {
			return absent(what)
		}
		return symlinkTo(path, k)
	}

	var shmDir string
	cases := []blindCase{
		{name: "symlink to /proc/self/pagemap", post: symlinkTo("/proc/self/pagemap", "lib/pagemap.php"),
			want: []blindWant{{"core EXTRA_FILE lib/pagemap.php", pseudoMsg("procfs"), ""}}},
		{name: "listed file replaced by a symlink to /proc/self/status",
			pre: writeFile("lib/status.php", "<?php\n"), post: symlinkTo("/proc/self/status", "lib/status.php"),
			want: []blindWant{{"core EXCEPTION lib/status.php", pseudoMsg("procfs"), ""}}},
		{name: "symlink to /proc/self/ns/net (nsfs through a magic link)", post: symlinkTo("/proc/self/ns/net", "lib/ns.php"),
			want: []blindWant{{"core EXTRA_FILE lib/ns.php", pseudoMsg("nsfs"), ""}}},
		{name: "symlink to a sysfs file", post: orAbsent(sysFile, "regular sysfs file", "lib/sys.php"),
			want: []blindWant{{"core EXTRA_FILE lib/sys.php", pseudoMsg(sysFS), ""}}},
		{name: "symlink to a cgroup file", post: orAbsent(cgFile, "cgroup file", "apps/files/js/cg.js"),
			want: []blindWant{{"files EXTRA_FILE js/cg.js", pseudoMsg(cgFS), ""}}},
		{name: "symlink to tracefs trace_pipe (a read blocks)", post: orAbsent(traceFile, "tracefs mounted", "lib/trace.php"),
			want: []blindWant{{"core EXTRA_FILE lib/trace.php", pseudoMsg(traceFS), ""}}},
		{name: "symlink to /dev/zero", post: symlinkTo("/dev/zero", "lib/zero.php"),
			want: []blindWant{{"core EXTRA_FILE lib/zero.php", "not a regular file (character device)", ""}}},
		{name: "procfs file bind-mounted on a listed file (walked, not a symlink: fstatfs of the fd)",
			pre: writeFile("lib/bound.php", "<?php\n"),
			post: func(t *testing.T) string {
				return mount(t, "/proc/self/status", p("lib/bound.php"), "", syscall.MS_BIND, "")
			},
			want: []blindWant{{"core EXCEPTION lib/bound.php", pseudoMsg("procfs"), ""}}},
		{name: "files on a tmpfs mounted in the tree are hashed",
			pre: func(t *testing.T) string {
				d := p("lib/tmpfs")
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if why := mount(t, "tmpfs", d, "tmpfs", 0, "size=1m,mode=0755"); why != "" {
					os.Remove(d)
					return why
				}
				write(t, d+"/ok.php", "<?php // ok\n")
				write(t, d+"/mod.php", "<?php // signed\n")
				return ""
			},
			post:  writeFile("lib/tmpfs/mod.php", "<?php // tampered on tmpfs\n"),
			want:  []blindWant{{"core INVALID_HASH lib/tmpfs/mod.php", "", sha512Hex("<?php // tampered on tmpfs\n")}},
			clean: []string{"core|lib/tmpfs/ok.php"}},
		{name: "symlink to a file on /dev/shm (tmpfs) is hashed",
			pre: func(t *testing.T) string {
				var st syscall.Statfs_t
				if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != 0x01021994 {
					return "/dev/shm is not a tmpfs here"
				}
				d, err := os.MkdirTemp("/dev/shm", "integrityd-test-")
				if err != nil {
					return "cannot write /dev/shm: " + err.Error()
				}
				t.Cleanup(func() { os.RemoveAll(d) })
				shmDir = d
				write(t, d+"/f.php", "<?php // on shm\n")
				return symlinkTo(d+"/f.php", "lib/shm.php")(t)
			},
			post: func(t *testing.T) string {
				write(t, shmDir+"/f.php", "<?php // changed on shm\n")
				return ""
			},
			want: []blindWant{{"core INVALID_HASH lib/shm.php", "", sha512Hex("<?php // changed on shm\n")}}},
		{name: "hard link inside the tree",
			pre: func(t *testing.T) string {
				write(t, p("lib/hl-a.php"), "<?php // twice\n")
				link(t, p("lib/hl-a.php"), p("lib/private/hl-b.php"))
				return ""
			},
			want: []blindWant{
				{"core HARD_LINK lib/hl-a.php", links2, "expected"},
				{"core HARD_LINK lib/private/hl-b.php", links2, "expected"},
			}},
		{name: "listed file hard-linked from data/",
			post: func(t *testing.T) string { link(t, p("lib/base.php"), p("data/base.php")); return "" },
			want: []blindWant{{"core HARD_LINK lib/base.php", links2, "expected"}}},
		{name: "app file hard-linked from data/, three names",
			post: func(t *testing.T) string {
				link(t, p("apps/files/js/files.js"), p("data/files.js"))
				link(t, p("apps/files/js/files.js"), filepath.Join(outside, "files.js"))
				return ""
			},
			want: []blindWant{{"files HARD_LINK js/files.js", "file has 3 links: a write through another name is not seen", "expected"}}},
		{name: "root .htaccess hard-linked from data/",
			post: func(t *testing.T) string { link(t, p(".htaccess"), p("data/ht")); return "" },
			want: []blindWant{{"core HARD_LINK .htaccess", links2, "expected"}}},
		{name: "hard-linked and modified: INVALID_HASH saying so",
			post: func(t *testing.T) string {
				write(t, p("lib/private/Server.php"), "<?php // tampered\n")
				link(t, p("lib/private/Server.php"), p("data/Server.php"))
				return ""
			},
			want: []blindWant{{"core INVALID_HASH lib/private/Server.php", links2, sha512Hex("<?php // tampered\n")}}},
		{name: "extra file hard-linked from data/: EXTRA_FILE saying so",
			post: func(t *testing.T) string {
				write(t, p("data/evil.php"), "<?php system($_GET['c']);\n")
				link(t, p("data/evil.php"), p("core/evil.php"))
				return ""
			},
			want: []blindWant{{"core EXTRA_FILE core/evil.php", links2, sha512Hex("<?php system($_GET['c']);\n")}}},
		{name: "symlink to a file outside that gets a second name: the target's count",
			pre: func(t *testing.T) string {
				write(t, filepath.Join(outside, "target.php"), "<?php // outside\n")
				return symlinkTo(filepath.Join(outside, "target.php"), "lib/symhl.php")(t)
			},
			post: func(t *testing.T) string {
				link(t, filepath.Join(outside, "target.php"), filepath.Join(outside, "other.php"))
				return ""
			},
			want: []blindWant{{"core HARD_LINK lib/symhl.php", links2, "expected"}}},
	}

	skipped := make([]string, len(cases))
	for i, c := range cases {
		if c.pre != nil {
			skipped[i] = c.pre(t)
		}
	}
	faultSign(t, keys, root, "core")
	faultSign(t, keys, root, "files")
	for i, c := range cases {
		if c.post != nil && skipped[i] == "" {
			skipped[i] = c.post(t)
		}
	}
	hashes := map[string]map[string]string{
		"core":  manifestHashes(t, p("core/signature.json")),
		"files": manifestHashes(t, p("apps/files/appinfo/signature.json")),
	}

	begin := time.Now()
	got := mustCheck(t, root)
	t.Logf("full check: %v", time.Since(begin).Round(time.Millisecond))
	var all []string
	for i, c := range cases {
		if skipped[i] == "" {
			for _, w := range c.want {
				all = append(all, w.line)
			}
		}
	}
	wantLines(t, "check", got, all...)

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if skipped[i] != "" {
				t.Skip(skipped[i])
			}
			type sk struct{ scope, key string }
			var keys []sk
			for _, w := range c.want {
				parts := strings.SplitN(w.line, " ", 3)
				scope, kind, path := parts[0], kind.Kind(parts[1]), parts[2]
				keys = append(keys, sk{scope, path})
				f, ok := findingAt(got, scope, path)
				if !ok {
					continue // reported by wantLines
				}
				if f.Kind != kind || f.Message != w.msg {
					t.Errorf("%s: got %s with message %q, want %s with %q", path, f.Kind, f.Message, kind, w.msg)
				}
				want := w.current
				if want == "expected" {
					want = hashes[scope][path]
				}
				if f.Current.String() != want {
					t.Errorf("%s: got current hash %.16q, want %.16q", path, f.Current, want)
				}
				if listed := hashes[scope][path]; f.Expected.String() != listed {
					t.Errorf("%s: got expected hash %.16q, want the manifest's %.16q", path, f.Expected, listed)
				}
			}
			for _, c := range c.clean {
				scope, key, _ := strings.Cut(c, "|")
				if f, ok := findingAt(got, scope, key); ok {
					t.Errorf("%s: got %+v, want no finding", key, f)
				}
				keys = append(keys, sk{scope, key})
			}
			// The daemon's rechecks of the path, its directory and the
			// whole scope see what the full check saw.
			for _, k := range keys {
				for _, key := range []string{k.key, parentKey(k.key), ""} {
					var fs []finding.Finding
					var err error
					if !faultWithin(hangGuard, func() { fs, err = recheck(root, k.scope, key) }) {
						t.Fatalf("Recheck(%s, %q) did not return after %v: it hangs", k.scope, key, hangGuard)
					}
					if err != nil {
						t.Fatal(err)
					}
					if want := under(got, k.scope, key); !sameFindings(fs, want) {
						t.Errorf("Recheck(%s, %q) = %+v, want %+v", k.scope, key, fs, want)
					}
				}
			}
		})
	}
}

// parentKey is the key of the directory holding key ("" at the top).
func parentKey(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return ""
}

// TestFaultManifestOnPseudoFS: a signature.json linked to a procfs file
// is not read: the scope's EXCEPTION says where it is.
func TestFaultManifestOnPseudoFS(t *testing.T) {
	root, _ := faultTree(t, t.TempDir())
	m := filepath.Join(root, "apps/dashboard/appinfo/signature.json")
	os.Remove(m)
	if err := os.Symlink("/proc/self/status", m); err != nil {
		t.Fatal(err)
	}
	got := mustCheck(t, root)
	wantLines(t, "check", got, "dashboard EXCEPTION ")
	f, _ := findingAt(got, "dashboard", "")
	if f.Message != verify.MsgNoSignature || !strings.HasSuffix(f.Detail, m+": "+pseudoMsg("procfs")) {
		t.Errorf("got %+v, want %q with a detail ending %q", f, verify.MsgNoSignature, m+": "+pseudoMsg("procfs"))
	}
}
