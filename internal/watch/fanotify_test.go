package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/tamperhelper"
)

// probeEnv makes the test binary a probe for a unit (the who-data
// drop-in under a real systemd): it starts Writers on the directory the
// variable names and prints who writes its probe.php, or why it cannot.
const probeEnv = "INTEGRITYD_WRITERS_PROBE"

func TestMain(m *testing.M) {
	tamperhelper.Main()
	if p := os.Getenv(probeEnv); p != "" {
		os.Exit(probe(p))
	}
	os.Exit(m.Run())
}

func probe(dir string) int {
	w, err := OpenWriters(dir, 0)
	if err != nil {
		fmt.Println("writers unknown:", err)
		return 1
	}
	fmt.Println("writers known:", w.Mode())
	go w.Run(context.Background())
	for range 600 {
		if wr, ok := w.Lookup(filepath.Join(dir, "probe.php")); ok {
			fmt.Printf("probe.php: %+v\n", wr)
			return 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Println("probe.php: no writer in 60 s")
	return 1
}

// openWriters starts a Writers on root, or skips the test with the
// kernel's reason when fanotify is refused here (an unprivileged
// namespace, an old kernel, overlayfs).
func openWriters(t *testing.T, root string, capacity int) *Writers {
	t.Helper()
	w, err := OpenWriters(root, capacity)
	if err != nil {
		if os.Geteuid() == 0 && os.Getenv("INTEGRITYD_REQUIRE_FANOTIFY") != "" {
			t.Fatal(err)
		}
		t.Skipf("fanotify refused here, writers cannot be tested: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("Run did not end after its context was cancelled")
		}
		w.Close()
	})
	t.Logf("writers: %s", w.Mode())
	return w
}

// waitWriter polls Lookup until it finds a writer with pid.
func waitWriter(t *testing.T, w *Writers, path string, pid int) Writer {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		wr, ok := w.Lookup(path)
		if ok && wr.Pid == pid {
			return wr
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lookup(%s) = %+v, %v; want the helper's pid %d (stats %+v)", path, wr, ok, pid, w.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// lookup is Lookup as the tests assert it: an answer given before Run
// had read the queue (counted late: on a busy machine Run's read of
// other jobs' events on the filesystem can outlast lookupWait) is asked
// again, so that the answer returned is that of a lookup that was not
// late, which has seen every event queued before it was called.
func lookup(t *testing.T, w *Writers, path string) (Writer, bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		late := w.Stats().Late
		wr, ok := w.Lookup(path)
		if w.Stats().Late == late {
			return wr, ok
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lookup(%s) late again and again (stats %+v)", path, w.Stats())
		}
	}
}

func writeOpen(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("<?php\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
}

func checkHelper(t *testing.T, wr Writer, bin string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	want := Writer{Pid: wr.Pid, Comm: "tamper-helper", Exe: bin, UID: 33, Unit: UnitOf(string(b)), Op: wr.Op, When: wr.When}
	if wr != want {
		t.Errorf("writer = %+v, want %+v", wr, want)
	}
	if wr.Op != "modify" && wr.Op != "close_write" {
		t.Errorf("op = %q, want modify or close_write", wr.Op)
	}
}

func TestWritersHelper(t *testing.T) {
	base := tamperhelper.Dir(t)
	root := filepath.Join(base, "nextcloud")
	file := filepath.Join(root, "lib", "base.php")
	other := filepath.Join(root, "lib", "other.php")
	writeOpen(t, file)
	writeOpen(t, other)
	bin := tamperhelper.Binary(t, base)
	w := openWriters(t, root, 0)

	cmd, _ := tamperhelper.Start(t, bin, file)
	// No waiting: Lookup reads what the kernel queued during the
	// helper's write before it answers (a late answer, counted so, is
	// asked again: lookup).
	wr, ok := lookup(t, w, file)
	if !ok || wr.Pid != cmd.Process.Pid {
		t.Fatalf("Lookup(%s) right after the write = %+v, %v; want the helper's pid %d (stats %+v)", file, wr, ok, cmd.Process.Pid, w.Stats())
	}
	checkHelper(t, wr, bin)
	if _, ok := lookup(t, w, other); ok {
		t.Errorf("Lookup(%s) found a writer; nothing wrote it since the mark", other)
	}
}

// A write through a hard link in a directory nobody watches is
// attributed to the file by its inode.
func TestWritersHardLink(t *testing.T) {
	base := tamperhelper.Dir(t)
	root := filepath.Join(base, "nextcloud")
	file := filepath.Join(root, "lib", "base.php")
	writeOpen(t, file)
	link := filepath.Join(root, "data", "admin", "files", "x")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(file, link); err != nil {
		t.Fatal(err)
	}
	bin := tamperhelper.Binary(t, base)
	w := openWriters(t, root, 0)
	if !strings.Contains(w.Mode(), "inode") {
		t.Skipf("the kernel does not report inodes (%s): a write through another link is found only under that link's name", w.Mode())
	}
	cmd, _ := tamperhelper.Start(t, bin, link)
	wr := waitWriter(t, w, file, cmd.Process.Pid)
	checkHelper(t, wr, bin)
	if byLink := waitWriter(t, w, link, cmd.Process.Pid); byLink.Comm != "tamper-helper" {
		t.Errorf("Lookup(link) = %+v", byLink)
	}
}

// The writer is gone before /proc is read: the pid is kept, the rest is
// unknown.
func TestWritersGonePid(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Skip("no /bin/true:", err)
	}
	wr := ReadProc(cmd.Process.Pid)
	if want := (Writer{Pid: cmd.Process.Pid, UID: -1}); wr != want {
		t.Errorf("ReadProc(gone pid) = %+v, want %+v", wr, want)
	}
	self := ReadProc(os.Getpid())
	if self.Comm == "" || self.Exe == "" || self.UID != os.Geteuid() {
		t.Errorf("ReadProc(self) = %+v", self)
	}
}

// The writer has exited but is not reaped yet, and its unit has ended
// (systemd removed its cgroup): a web shell's short sh -c. Its name, uid
// and unit are still known; cgroup v2 marks the cgroup " (deleted)".
func TestWritersExitedUnit(t *testing.T) {
	var base string // a hybrid host's v2 mount, or a v2-only host's
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err == nil {
		base = "/sys/fs/cgroup/unified"
	} else if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		base = "/sys/fs/cgroup"
	} else {
		t.Skip("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	}
	cg := filepath.Join(base, fmt.Sprintf("integrityd-test-%d.service", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("cannot make a cgroup (needs root and a writable cgroup v2): %v", err)
	}
	defer os.Remove(cg)
	dir, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start /bin/true in a cgroup: %v", err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	for i := 0; ; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		if _, rest, _ := strings.Cut(string(b), ") "); strings.HasPrefix(rest, "Z") {
			break
		}
		if i == 500 {
			t.Fatalf("pid %d never exited: %s", pid, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.Remove(cg); err != nil {
		t.Fatalf("remove the ended unit's cgroup: %v", err)
	}
	wr := ReadProc(pid)
	if want := (Writer{Pid: pid, Comm: "true", UID: os.Geteuid(), Unit: filepath.Base(cg)}); wr != want {
		t.Errorf("ReadProc(exited pid, cgroup removed) = %+v, want %+v", wr, want)
	}
}

// Deletes, creations and renames are recorded under the name.
func TestWritersDirent(t *testing.T) {
	base := tamperhelper.Dir(t)
	root := filepath.Join(base, "nextcloud")
	writeOpen(t, filepath.Join(root, "lib", "gone.php"))
	w := openWriters(t, root, 0)
	if !strings.Contains(w.Mode(), "directory+name") || strings.Contains(w.Mode(), "no directory-entry") {
		t.Skipf("no directory-entry events with names here (%s)", w.Mode())
	}
	gone, created, renamed := filepath.Join(root, "lib", "gone.php"), filepath.Join(root, "themes", "shell.php"), filepath.Join(root, "lib", "moved.php")
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	writeOpen(t, created)
	tmp := filepath.Join(root, "lib", ".tmp")
	writeOpen(t, tmp)
	if err := os.Rename(tmp, renamed); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		ops  []string
	}{
		{gone, []string{"delete"}},
		{created, []string{"create", "modify", "close_write", "attrib"}},
		{renamed, []string{"moved_to", "modify", "close_write", "attrib", "create"}},
	} {
		wr := waitWriter(t, w, c.path, os.Getpid())
		ok := false
		for _, o := range c.ops {
			ok = ok || wr.Op == o
		}
		if !ok || wr.Comm == "" {
			t.Errorf("Lookup(%s) = %+v, want one of %v", c.path, wr, c.ops)
		}
	}
}

func TestWritersRefused(t *testing.T) {
	_, err := OpenWriters(filepath.Join(t.TempDir(), "absent"), 0)
	if err == nil || !strings.HasPrefix(err.Error(), "fanotify: ") || strings.Contains(err.Error(), "\n") || !errors.Is(err, syscall.ENOENT) && !strings.Contains(err.Error(), "fanotify_init") {
		t.Errorf("OpenWriters(absent) = %v, want a fanotify: error naming the problem", err)
	}
}

func TestRing(t *testing.T) {
	r := newRing(3)
	put := func(k string, pid int) { r.put(k, Writer{Pid: pid}) }
	put("a", 1)
	put("b", 2)
	put("c", 3)
	put("a", 4) // a moves to the front; b is now the oldest
	put("d", 5) // drops b
	for k, want := range map[string]int{"a": 4, "b": 0, "c": 3, "d": 5} {
		w, ok := r.get(k)
		if ok != (want != 0) || w.Pid != want {
			t.Errorf("get(%s) = %d, %v; want %d", k, w.Pid, ok, want)
		}
	}
	if r.len() != 3 {
		t.Errorf("len = %d, want 3", r.len())
	}
	for i := range 10 {
		put(fmt.Sprint(i), i+10)
	}
	if r.len() != 3 {
		t.Errorf("len after 10 more = %d, want 3", r.len())
	}
}

func TestUnitOf(t *testing.T) {
	const id = "4f9e1a0b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccdde"
	for _, c := range []struct{ cgroup, want string }{
		{"0::/system.slice/php8.2-fpm.service\n", "php8.2-fpm.service"},
		{"0::/user.slice/user-1000.slice/session-3.scope\n", "session-3.scope"},
		{"0::/system.slice/docker-" + id + ".scope\n", "docker:" + id[:12]},
		{"0::/machine.slice/libpod-" + id + ".scope/container\n", "libpod:" + id[:12]},
		{"0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-" + id + ".scope\n", "containerd:" + id[:12]},
		{"12:devices:/docker/" + id + "\n1:name=systemd:/docker/" + id + "\n", "docker:" + id[:12]},
		{"1:name=systemd:/system.slice/cron.service\n0::/\n", "cron.service"},
		{"0::/system.slice/tamper-helper.service (deleted)\n", "tamper-helper.service"},
		{"0::/\n", ""},
		{"", ""},
		{"garbage", ""},
	} {
		if got := UnitOf(c.cgroup); got != c.want {
			t.Errorf("UnitOf(%q) = %q, want %q", c.cgroup, got, c.want)
		}
	}
}

// Close ends Run (and a Lookup after it answers from what was recorded).
func TestWritersClose(t *testing.T) {
	root := t.TempDir()
	w, err := OpenWriters(root, 0)
	if err != nil {
		t.Skipf("fanotify refused here: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	writeOpen(t, filepath.Join(root, "a.php"))
	if _, ok := lookup(t, w, filepath.Join(root, "a.php")); !ok {
		t.Error("Lookup(a.php) found nothing")
	}
	w.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Close = %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not end after Close")
	}
	if _, ok := w.Lookup(filepath.Join(root, "a.php")); !ok {
		t.Error("Lookup(a.php) after Close found nothing")
	}
}

// Making a hard link is recorded under the inode, where the kernel
// reports the entry's inode (FAN_REPORT_TARGET_FID).
func TestWritersLinkCreated(t *testing.T) {
	base := tamperhelper.Dir(t)
	root := filepath.Join(base, "nextcloud")
	file := filepath.Join(root, "lib", "base.php")
	writeOpen(t, file)
	if err := os.MkdirAll(filepath.Join(root, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := openWriters(t, root, 0)
	if !strings.Contains(w.Mode(), "target") {
		t.Skipf("no FAN_REPORT_TARGET_FID here (%s)", w.Mode())
	}
	if _, ok := lookup(t, w, file); ok {
		t.Fatal("a writer before any write")
	}
	if err := os.Link(file, filepath.Join(root, "data", "x")); err != nil {
		t.Fatal(err)
	}
	if wr, ok := lookup(t, w, file); !ok || wr.Op != "create" || wr.Pid != os.Getpid() {
		t.Errorf("Lookup(%s) after a link = %+v, %v; want create by this process", file, wr, ok)
	}
	if _, ok := lookup(t, w, filepath.Join(root, "lib")); ok {
		t.Error("the directory of the linked file got a writer")
	}
}

// A directory renamed: what is written in it afterwards has its new path.
func TestWritersDirRenamed(t *testing.T) {
	root := t.TempDir()
	writeOpen(t, filepath.Join(root, "apps", "old", "a.php"))
	w := openWriters(t, root, 0)
	writeOpen(t, filepath.Join(root, "apps", "old", "a.php")) // caches apps/old
	if _, ok := lookup(t, w, filepath.Join(root, "apps", "old", "a.php")); !ok {
		t.Fatal("no writer for apps/old/a.php")
	}
	if err := os.Rename(filepath.Join(root, "apps", "old"), filepath.Join(root, "apps", "new")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "apps", "new", "b.php"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := lookup(t, w, filepath.Join(root, "apps", "new", "b.php")); !ok {
		t.Errorf("no writer for apps/new/b.php after the rename (stats %+v)", w.Stats())
	}
	if wr, ok := w.recentGet("p" + filepath.Join(root, "apps", "old", "b.php")); ok {
		t.Errorf("b.php recorded under the old directory: %+v", wr)
	}
}

// A tracked file changed through another name kicks; an untracked one
// does not.
func TestWritersTrack(t *testing.T) {
	root := t.TempDir()
	file, other := filepath.Join(root, "lib", "base.php"), filepath.Join(root, "lib", "other.php")
	writeOpen(t, file)
	writeOpen(t, other)
	link := filepath.Join(root, "data", "x")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(file, link); err != nil {
		t.Fatal(err)
	}
	w := openWriters(t, root, 0)
	if !strings.Contains(w.Mode(), "inode") {
		t.Skipf("the kernel does not report inodes (%s)", w.Mode())
	}
	w.Track([]string{file, filepath.Join(root, "absent")})
	kicked := func() bool {
		lookup(t, w, root) // drains the queue
		select {
		case <-w.Kicks():
			return true
		default:
			return false
		}
	}
	writeOpen(t, other)
	if kicked() {
		t.Error("a write to an untracked file kicked")
	}
	if err := os.WriteFile(link, []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !kicked() {
		t.Error("a write through the link to a tracked file did not kick")
	}
	if kicked() {
		t.Error("kicks are not coalesced")
	}
	w.Track(nil)
	if err := os.WriteFile(link, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if kicked() {
		t.Error("an untracked file kicked after Track(nil)")
	}
}

// TestWritersExecAfterWrite: a process writes, then runs another program
// (here through a symlink named php-fpm8.2 to sleep). /proc, read after
// that, names the new program: the writer is then recorded as having run
// another program, its exe, comm and uid unknown, never as php-fpm8.2 or
// sleep.
func TestWritersExecAfterWrite(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep:", err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	root := t.TempDir()
	w := openWriters(t, root, 0)
	if !w.execSeen {
		t.Skipf("no exec events here (%s)", w.Mode())
	}
	fake := filepath.Join(t.TempDir(), "php-fpm8.2")
	if err := os.Symlink(sleep, fake); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(root, "base.php")
	writeOpen(t, target)
	cmd := exec.Command(sh, "-c", `echo '// backdoor' >> "$1"; exec "$2" 30`, "sh", target, fake)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	// Wait until the process runs sleep: a /proc read now tells a lie.
	deadline := time.Now().Add(waitTimeout)
	for {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe != "" && !strings.HasSuffix(exe, "/sh") && !strings.HasSuffix(exe, "/dash") && !strings.HasSuffix(exe, "/bash") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the helper never ran sleep")
		}
		time.Sleep(time.Millisecond)
	}
	wr := waitWriter(t, w, target, pid)
	// Two true answers: Run read /proc before the exec (the shell), or
	// after it, and the exec's event marks what it read as unknown. Never
	// the program run afterwards.
	shell := strings.HasSuffix(wr.Exe, "/sh") || strings.HasSuffix(wr.Exe, "/dash") || strings.HasSuffix(wr.Exe, "/bash")
	switch {
	case wr.Execed && (wr.Exe != "" || wr.Comm != "" || wr.UID != -1):
		t.Errorf("writer = %+v; marked as having run another program, but exe, comm or uid kept", wr)
	case !wr.Execed && (!shell || wr.Comm != "sh"):
		t.Errorf("writer = %+v; want the shell that wrote, or marked as having run another program", wr)
	}
}

// Lookup right after a write, with Run reading the group: it reads what
// is queued itself, or waits for Run's read when Run is reading, so the
// writer is there, or the lookup was late and counted as such.
func TestWritersLookupWaitsForRun(t *testing.T) {
	root := t.TempDir()
	w := openWriters(t, root, 0)
	for i := range 20 {
		p := filepath.Join(root, fmt.Sprintf("f%d.php", i))
		late := w.Stats().Late
		writeOpen(t, p)
		wr, ok := w.Lookup(p)
		if ok && wr.Pid != os.Getpid() {
			t.Fatalf("Lookup(%s) = %+v: another pid than this test's %d", p, wr, os.Getpid())
		}
		if !ok && w.Stats().Late == late {
			t.Fatalf("Lookup(%s) right after the write: no writer, and not counted late (stats %+v)", p, w.Stats())
		}
	}
}

// A write outside the root, on a file no checked file shares an inode
// with, is dropped before /proc is read; one on a tracked inode is kept.
func TestWritersDropOutside(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "nc")
	outside := filepath.Join(base, "elsewhere.txt")
	tracked := filepath.Join(base, "tracked.php")
	writeOpen(t, filepath.Join(root, "index.php"))
	writeOpen(t, tracked)
	w := openWriters(t, root, 0)
	if !strings.Contains(w.Mode(), "inode") {
		t.Skipf("the kernel does not report inodes (%s)", w.Mode())
	}
	w.Track([]string{tracked})
	before := w.Stats().Dropped
	writeOpen(t, outside)
	writeOpen(t, tracked)
	inside := filepath.Join(root, "index.php")
	writeOpen(t, inside)
	waitWriter(t, w, inside, os.Getpid())
	waitWriter(t, w, tracked, os.Getpid())
	if w.Stats().Dropped == before {
		t.Errorf("a write outside the root on an untracked inode was not dropped (stats %+v)", w.Stats())
	}
	if wr, ok := lookup(t, w, outside); ok {
		t.Errorf("Lookup(%s) = %+v: a dropped event was recorded", outside, wr)
	}
}
