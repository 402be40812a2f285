package state

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A second holder is refused with the first one's pid; the lock is free
// again once the first closes it.
func TestLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	l, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, LockName))
	if err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q (%v), want the pid %d", data, err, os.Getpid())
	}
	_, err = AcquireLock(dir)
	var iu *InUseError
	if !errors.As(err, &iu) || iu.PID != os.Getpid() {
		t.Fatalf("second lock: %v, want in use by pid %d", err, os.Getpid())
	}
	if want := "state directory " + dir + " is in use by another integrityd (pid " + strconv.Itoa(os.Getpid()) + ")"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// The state stays readable while it is locked.
	if err := Save(dir, &State{PID: 7}); err != nil {
		t.Fatal(err)
	}
	if st, err := Load(dir); err != nil || st.PID != 7 {
		t.Fatalf("Load while locked: %v %v", st, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := AcquireLock(dir)
	if err != nil {
		t.Fatalf("lock after the first was released: %v", err)
	}
	l2.Close()
}

// An empty lock file (a holder that died between flock and write, or an
// older integrityd) gives "pid unknown", not a wrong pid.
func TestLockPIDUnknown(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, LockName)
	if err := os.WriteFile(p, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(dir)
	if err == nil || !strings.HasSuffix(err.Error(), "(pid unknown)") {
		t.Fatalf("got %v, want in use (pid unknown)", err)
	}
}

// Modes are 0750 and 0640 whatever the umask.
func TestModesUnderStrictUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "a", "state")
	l, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := Save(dir, &State{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteControl(dir, "/run/integrityd/control.sock"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"": DirMode, FileName: FileMode, LockName: FileMode, ControlName: FileMode} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", filepath.Join(dir, name), fi.Mode().Perm(), want)
		}
	}
	// An existing directory keeps the mode its owner gave it.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := MakeDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("MakeDir changed an existing directory's mode to %v", fi.Mode().Perm())
	}
}

func TestControl(t *testing.T) {
	dir := t.TempDir()
	if s, err := ReadControl(dir); err != nil || s != "" {
		t.Fatalf("no control file: %q %v", s, err)
	}
	if err := WriteControl(dir, "/run/x/control.sock"); err != nil {
		t.Fatal(err)
	}
	if s, err := ReadControl(dir); err != nil || s != "/run/x/control.sock" {
		t.Fatalf("ReadControl = %q %v", s, err)
	}
	os.WriteFile(filepath.Join(dir, ControlName), []byte("relative.sock\n"), 0o640)
	if _, err := ReadControl(dir); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("relative name: %v", err)
	}
	RemoveControl(dir)
	if s, err := ReadControl(dir); err != nil || s != "" {
		t.Fatalf("after RemoveControl: %q %v", s, err)
	}
}

func TestMakeDirNotADirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "file")
	os.WriteFile(p, nil, 0o644)
	if err := MakeDir(p); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("MakeDir on a file: %v", err)
	}
}
