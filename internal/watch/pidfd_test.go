package watch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// openQueued opens a Writers without Run: events stay queued until a
// Lookup reads them, so what the kernel reports at that read is known.
func openQueued(t *testing.T, root string) *Writers {
	t.Helper()
	w, err := OpenWriters(root, 0)
	if err != nil {
		t.Skipf("fanotify refused here: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	if !w.pidfd {
		t.Skipf("no FAN_REPORT_PIDFD here (%s)", w.Mode())
	}
	return w
}

// writeAndExit has a shell append to path and exit; it is reaped when
// this returns, so its pid is free.
func writeAndExit(t *testing.T, path string) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `echo '// x' >> "$1"`, "sh", path)
	if err := cmd.Run(); err != nil {
		t.Skipf("no /bin/sh: %v", err)
	}
	return cmd.Process.Pid
}

// A writer that exited (and was reaped) before its event was read: the
// kernel gives no pidfd for it (FAN_NOPIDFD), and it is reported as
// exited with its pid only, /proc not read. This proves the pidfd path
// is taken; it does not by itself prove another process is not named
// (the pid is free here): TestWritersPidReused does.
func TestWritersExitedBeforeRead(t *testing.T) {
	root := t.TempDir()
	w := openQueued(t, root)
	path := filepath.Join(root, "x.php")
	pid := writeAndExit(t, path)
	wr, ok := w.Lookup(path)
	if want := (Writer{Pid: pid, UID: -1, Exited: true, Op: wr.Op, When: wr.When}); !ok || wr != want {
		t.Fatalf("Lookup(%s) = %+v, %v; want %+v (stats %+v)", path, wr, ok, want, w.Stats())
	}
	if w.Stats().Exited == 0 {
		t.Errorf("not counted as exited (stats %+v)", w.Stats())
	}
}

// The writer's pid is given to another process before the event is
// read (forced through /proc/sys/kernel/ns_last_pid, as CRIU does): the
// writer is reported as exited, never as the process that has its pid
// now. Without the pidfd, /proc/PID names that process. Skipped where
// the pid cannot be reused on purpose (not root; other processes of the
// machine taking it first every time). What it does not prove: a reuse
// during the read of /proc itself (between the kernel's pidfd and the
// check after the read), which no test can time; that path is the same
// check (alive(pidfd) after ReadProc).
func TestWritersPidReused(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep:", err)
	}
	root := t.TempDir()
	w := openQueued(t, root)
	path := filepath.Join(root, "x.php")
	pid := writeAndExit(t, path)
	// The other process runs sleep (an exec event of that pid): were
	// that event in the same read as the write's, or the next, the exec
	// marks would take back what /proc said, and the test would not
	// tell the pidfd's check from them. Filler events (new files
	// elsewhere: not merged) put the write's event in an earlier read.
	filler := t.TempDir()
	for i := range 1500 {
		if err := os.WriteFile(filepath.Join(filler, fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var other *exec.Cmd
	for range 500 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("cannot choose the next pid: %v", err)
		}
		cmd := exec.Command(sleep, "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if cmd.Process.Pid == pid {
			other = cmd
			break
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	if other == nil {
		t.Skipf("pid %d was never given to a process of this test", pid)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	// /proc/pid is the other process now, once it runs sleep.
	deadline := time.Now().Add(waitTimeout)
	for exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe != sleep; exe, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never ran %s (exe %q)", pid, sleep, exe)
		}
		time.Sleep(time.Millisecond)
	}
	if wr := ReadProc(pid); wr.Exe != sleep {
		t.Fatalf("ReadProc(%d) = %+v, want the reused pid's %s (the test proves nothing)", pid, wr, sleep)
	}
	wr, ok := w.Lookup(path)
	if !ok || wr.Pid != pid || !wr.Exited || wr.Exe != "" || wr.Comm != "" {
		t.Fatalf("Lookup(%s) = %+v, %v; want pid %d exited, with no exe or comm (never %s's)", path, wr, ok, pid, sleep)
	}
}

// fdCount is the number of this process's open descriptors.
func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Every event's pidfd is closed (or held by the bounded /proc cache
// until Close): after many events from this process and from many short
// processes, inside the root, on a tracked file outside it and on
// untracked files outside it, the process has the descriptors it had
// before. Each write inside the root and to the tracked file is read
// before the next (the kernel merges the events of one file queued
// together), so at least one event of this live process, with a pidfd,
// is read for each: more than the /proc cache holds, so that a pidfd
// leaked per event shows while running, and after Close. The untracked
// files outside the root are made quiet after a few events (quietMarks):
// their writes are not counted.
func TestWritersNoFdLeak(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "nc")
	writeOpen(t, filepath.Join(root, "a.php"))
	tracked := filepath.Join(base, "elsewhere", "tracked.php")
	writeOpen(t, tracked)
	writeOpen(t, filepath.Join(base, "elsewhere", "b.txt"))
	before := fdCount(t)
	w, err := OpenWriters(root, 0)
	if err != nil {
		t.Skipf("fanotify refused here: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	w.Track([]string{tracked})
	const writes, exits = 300, 40
	for i := range writes {
		t0 := time.Now()
		p := filepath.Join(root, fmt.Sprintf("f%d.php", i%20))
		writeOpen(t, p)
		writeOpen(t, tracked)
		writeOpen(t, filepath.Join(base, "elsewhere", fmt.Sprintf("g%d.txt", i%20)))
		waitRead(t, w, p, t0)
		waitRead(t, w, tracked, t0)
	}
	for i := range exits {
		writeAndExit(t, filepath.Join(root, fmt.Sprintf("s%d.php", i)))
		writeAndExit(t, filepath.Join(base, "elsewhere", "b.txt"))
	}
	lookup(t, w, filepath.Join(root, "a.php")) // reads what is queued
	st := w.Stats()
	// One event at least per write read apart, and per short process
	// (each its own pid: never merged).
	if want := uint64(2*writes + exits); st.Recorded < want {
		t.Errorf("%d events recorded, want at least %d (stats %+v)", st.Recorded, want, st)
	}
	if n := fdCount(t); n > before+maxProcsPidfd+8 {
		t.Errorf("%d descriptors open while running, %d before: more than the /proc cache's %d pidfds", n, before, maxProcsPidfd)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	w.Close()
	if after := fdCount(t); after != before {
		t.Errorf("%d descriptors open after Close, %d before (stats %+v)", after, before, st)
	}
}

// waitRead waits until an event of path (by name, or by its inode), read
// at t0 or later, is recorded.
func waitRead(t *testing.T, w *Writers, path string, t0 time.Time) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if wr, ok := w.Lookup(path); ok && !wr.When.Before(t0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event of %s read since %v (stats %+v)", path, t0, w.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// A file outside the root written again and again is made quiet (the
// kernel stops reporting its writes to the group); a tracked one
// outside the root never is; linked into the root, the quiet one is
// loud again and its writes there recorded.
func TestWritersQuiet(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "nc")
	writeOpen(t, filepath.Join(root, "index.php"))
	hot := filepath.Join(base, "elsewhere", "sess_1")
	tracked := filepath.Join(base, "elsewhere", "tracked.php")
	writeOpen(t, hot)
	writeOpen(t, tracked)
	w := openWriters(t, root, 0)
	if !strings.Contains(w.Mode(), "target") {
		t.Skipf("the kernel does not report the entries' inodes (%s)", w.Mode())
	}
	w.Track([]string{tracked})
	for range quietAfter + 1 {
		writeOpen(t, hot)
		lookup(t, w, root) // reads the queue
	}
	if w.Stats().Quiet == 0 {
		t.Skipf("no ignore marks here (stats %+v)", w.Stats())
	}
	after := func() uint64 {
		w.quiet.mu.Lock()
		defer w.quiet.mu.Unlock()
		return w.quiet.after
	}
	before := after()
	for range 20 {
		writeOpen(t, hot)
	}
	lookup(t, w, root)
	// (Events counts the whole filesystem's: other jobs write too.)
	if n := after() - before; n > 0 {
		t.Errorf("%d events of a quiet file for 20 writes to it", n)
	}
	for i := range 2 * quietAfter {
		writeOpen(t, tracked)
		lookup(t, w, root)
		select {
		case <-w.Kicks():
		default:
			t.Fatalf("write %d to a tracked file outside the root did not kick (stats %+v)", i, w.Stats())
		}
	}
	linked := filepath.Join(root, "linked.php")
	if err := os.Link(hot, linked); err != nil {
		t.Fatal(err)
	}
	lookup(t, w, root)
	if err := os.WriteFile(linked, []byte("<?php // x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if wr, ok := lookup(t, w, linked); !ok || (wr.Op != "modify" && wr.Op != "close_write") {
		t.Errorf("Lookup(%s) after a write through the link = %+v, %v; want this write (stats %+v)", linked, wr, ok, w.Stats())
	}
}
