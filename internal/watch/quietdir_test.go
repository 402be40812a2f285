package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// quietDirTree is a root with lib/base.php and, beside it, a directory
// data/ outside the root; a Writers runs on the root.
func quietDirTree(t *testing.T) (w *Writers, root, data string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "nc")
	data = filepath.Join(base, "data")
	writeOpen(t, filepath.Join(root, "lib", "base.php"))
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	w = openWriters(t, root, 0)
	if !strings.Contains(w.Mode(), "target") {
		t.Skipf("the kernel does not report the entries' inodes (%s): no directory marks", w.Mode())
	}
	return w, root, data
}

// busy writes n new files in dir, each once (no inode is written often
// enough to be made quiet by itself), each read before the next.
func busy(t *testing.T, w *Writers, root, dir, prefix string, n int) {
	t.Helper()
	for i := range n {
		writeOpen(t, filepath.Join(dir, fmt.Sprintf("%s%d", prefix, i)))
		lookup(t, w, root)
	}
}

// quietDir reports whether the directory at path is quiet, and how many
// content events of its files were read since (other jobs' directories
// on the filesystem are made quiet too).
func (w *Writers) quietDir(t *testing.T, path string) (late uint64, quiet bool) {
	t.Helper()
	k, ok := handleKey(path)
	if !ok {
		t.Fatalf("no handle for %s", path)
	}
	w.quiet.mu.Lock()
	defer w.quiet.mu.Unlock()
	late, quiet = w.quiet.dirs[k]
	return late, quiet
}

func (w *Writers) isQuietDir(t *testing.T, path string) bool {
	t.Helper()
	_, quiet := w.quietDir(t, path)
	return quiet
}

// A directory outside the root whose files are written, each once, is
// made quiet: the content events of new files in it are not delivered
// any more (their creations still are). No inode mark could do that.
func TestWritersQuietDir(t *testing.T) {
	w, root, data := quietDirTree(t)
	busy(t, w, root, data, "f", quietDirAfter+2)
	before, quiet := w.quietDir(t, data)
	if !quiet {
		if w.quiet.dirOff {
			t.Skipf("directory marks refused here (stats %+v)", w.Stats())
		}
		t.Fatalf("%s not made quiet after %d files written in it (stats %+v)", data, quietDirAfter+2, w.Stats())
	}
	for i := range 50 {
		writeOpen(t, filepath.Join(data, fmt.Sprintf("new%d", i)))
	}
	lookup(t, w, root)
	if n, _ := w.quietDir(t, data); n > before {
		t.Errorf("%d content events of files in the quiet %s for 50 new files written (stats %+v)", n-before, data, w.Stats())
	}
}

// The hard-link check: a directory outside the root with a hard link to
// a file of the root in it is never made quiet, however busy; a write
// through the link is recorded under the file, and kicks (tracked, as
// the daemon tracks a file with several names).
func TestWritersQuietDirLinked(t *testing.T) {
	w, root, data := quietDirTree(t)
	file, link := filepath.Join(root, "lib", "base.php"), filepath.Join(data, "x")
	if err := os.Link(file, link); err != nil {
		t.Fatal(err)
	}
	w.Track([]string{file})
	busy(t, w, root, data, "f", 3*quietDirAfter)
	if w.isQuietDir(t, data) {
		t.Errorf("%s, holding a hard link to %s, made quiet (stats %+v)", data, file, w.Stats())
	}
	select {
	case <-w.Kicks():
	default:
	}
	writeThrough(t, w, file, link)
}

// writeThrough writes file through its other name link, and wants the
// write recorded under file's inode, and a kick.
func writeThrough(t *testing.T, w *Writers, file, link string) {
	t.Helper()
	t0 := time.Now()
	if err := os.WriteFile(link, []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wr, ok := lookup(t, w, file)
	if !ok || wr.Pid != os.Getpid() || wr.When.Before(t0) || (wr.Op != "modify" && wr.Op != "close_write") {
		t.Errorf("Lookup(%s) after a write through %s = %+v, %v; want this write by this process (stats %+v)", file, link, wr, ok, w.Stats())
	}
	select {
	case <-w.Kicks():
	default:
		t.Errorf("a write through %s to the tracked %s did not kick (stats %+v)", link, file, w.Stats())
	}
}

// A quiet directory into which a name of a tracked file is linked is
// loud again before the kick: a write through the new name is recorded.
func TestWritersQuietDirLinkedLater(t *testing.T) {
	w, root, data := quietDirTree(t)
	file, link := filepath.Join(root, "lib", "base.php"), filepath.Join(data, "x")
	w.Track([]string{file})
	busy(t, w, root, data, "f", quietDirAfter+2)
	if !w.isQuietDir(t, data) {
		t.Skipf("%s not made quiet here (stats %+v)", data, w.Stats())
	}
	if err := os.Link(file, link); err != nil {
		t.Fatal(err)
	}
	lookup(t, w, root) // the link's creation is read
	if w.isQuietDir(t, data) {
		t.Errorf("%s still quiet after a link to a tracked file arrived in it", data)
	}
	select {
	case <-w.Kicks():
	default:
		t.Errorf("the link to the tracked %s did not kick", file)
	}
	writeThrough(t, w, file, link)
}

// A file of a quiet directory linked into the root: its name in the
// quiet directory must not stay muted (the daemon tracks it once it
// finds it): every mark goes.
func TestWritersQuietDirLinkedIn(t *testing.T) {
	w, root, data := quietDirTree(t)
	busy(t, w, root, data, "f", quietDirAfter+2)
	if !w.isQuietDir(t, data) {
		t.Skipf("%s not made quiet here (stats %+v)", data, w.Stats())
	}
	in := filepath.Join(root, "lib", "f0.php")
	if err := os.Link(filepath.Join(data, "f0"), in); err != nil {
		t.Fatal(err)
	}
	lookup(t, w, in)
	if w.isQuietDir(t, data) {
		t.Errorf("%s still quiet after a file of it was linked into the root", data)
	}
	w.Track([]string{in})
	select {
	case <-w.Kicks():
	default:
	}
	writeThrough(t, w, in, filepath.Join(data, "f0"))
}

// Never quiet: the directory of a tracked file outside the root (a
// symlink's target, nlink 1), and the root's parents.
func TestWritersQuietDirKept(t *testing.T) {
	w, root, data := quietDirTree(t)
	target := filepath.Join(data, "config.php")
	writeOpen(t, target)
	if err := os.Symlink(target, filepath.Join(root, "config.php")); err != nil {
		t.Fatal(err)
	}
	w.Track([]string{filepath.Join(root, "config.php")})
	busy(t, w, root, data, "f", 3*quietDirAfter)
	busy(t, w, root, filepath.Dir(root), "g", 3*quietDirAfter) // the root's parent
	for _, d := range []string{data, filepath.Dir(root)} {
		if w.isQuietDir(t, d) {
			t.Errorf("%s made quiet (stats %+v)", d, w.Stats())
		}
	}
	select {
	case <-w.Kicks():
	default:
	}
	writeThrough(t, w, target, target)
}
