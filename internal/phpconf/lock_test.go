package phpconf

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestReadWaitsForWriter: a file being rewritten under an exclusive flock
// (as \OC\Config::writeData does with config.php) is read once the writer
// is done, not empty in between.
func TestReadWaitsForWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.php")
	want := []byte("<?php\n$CONFIG = array('instanceid' => 'x');\n")
	if err := os.WriteFile(path, want, 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	type result struct {
		data []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		data, err := readFile(path)
		got <- result{data, err}
	}()
	if _, err := f.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || string(r.data) != string(want) {
		t.Fatalf("readFile = %q, %v; want the writer's whole content", r.data, r.err)
	}
}
