package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/integrityd/integrityd/internal/fsutil"
)

// The state directory is 0750 and its files 0640, whatever the umask: the
// members of the service's group (the packaged unit's Group=integrityd)
// read the state, only the daemon writes it.
const (
	DirMode  = 0o750
	FileMode = 0o640
)

// LockName is the lock file in the state directory: the daemon holds an
// exclusive flock on it for its whole life, and it holds the daemon's pid.
const LockName = "lock"

// ControlName is the file in the state directory that names the daemon's
// control socket (one line), while it listens on one.
const ControlName = "control"

// MakeDir creates dir (and its parents) if it does not exist, with mode
// DirMode set explicitly (a stricter umask is no obstacle).
func MakeDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("state directory %s: not a directory", dir)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("state directory: %w", err)
	}
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if err := os.Chmod(dir, DirMode); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return nil
}

// InUseError says another process holds the state directory's lock.
type InUseError struct {
	Dir string
	PID int // 0 if the lock file does not say
}

func (e *InUseError) Error() string {
	pid := "pid unknown"
	if e.PID > 0 {
		pid = fmt.Sprintf("pid %d", e.PID)
	}
	return fmt.Sprintf("state directory %s is in use by another integrityd (%s)", e.Dir, pid)
}

// Lock is the exclusive lock of a state directory, held until Close.
type Lock struct{ f *os.File }

// AcquireLock takes the lock of state directory dir (creating both) and
// writes this process's pid into it; when another process holds it, the
// error is an *InUseError with that process's pid. Locks are flock(2)
// locks: the kernel drops one when its holder dies, so a crashed daemon
// leaves no stale lock.
func AcquireLock(dir string) (*Lock, error) {
	if err := MakeDir(dir); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, LockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	if busy, err := tryLock(f); busy || err != nil {
		defer f.Close()
		if busy {
			return nil, &InUseError{Dir: dir, PID: readPID(f)}
		}
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	if err := stampPID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	return &Lock{f}, nil
}

// tryLock takes an exclusive flock on f without waiting: busy when
// another process holds it.
func tryLock(f *os.File) (busy bool, err error) {
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("flock %s: %w", f.Name(), err)
	}
	return false, nil
}

// stampPID makes the held lock file f say this process's pid (mode
// FileMode, whatever the umask).
func stampPID(f *os.File) error {
	if err := f.Chmod(FileMode); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}

// Close releases the lock. The file stays: removing it would let a second
// daemon lock a new file while a third still waits on the old one.
func (l *Lock) Close() error { return l.f.Close() }

// BaselineLockName is the lock file that `integrityd baseline` holds
// while it reads, changes and writes the baseline: two admins accepting
// at once would otherwise lose one's changes.
const BaselineLockName = "baseline.lock"

// LockBaseline takes the baseline lock of state directory dir, waiting
// (and saying so once through waiting) while another process holds it,
// until ctx ends.
func LockBaseline(ctx context.Context, dir string, waiting func(pid int)) (*Lock, error) {
	p := filepath.Join(dir, BaselineLockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("lock the baseline: %w", err)
	}
	for said := false; ; said = true {
		busy, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock the baseline: %w", err)
		}
		if !busy {
			break
		}
		if !said && waiting != nil {
			waiting(readPID(f))
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock the baseline %s: %w", p, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := stampPID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the baseline: %w", err)
	}
	return &Lock{f}, nil
}

func readPID(f *os.File) int {
	data, _ := io.ReadAll(io.LimitReader(f, 32))
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil {
		return 0
	}
	return pid
}

// WriteControl records in dir that the daemon's control socket is sock.
func WriteControl(dir, sock string) error {
	return fsutil.WriteAtomic(filepath.Join(dir, ControlName), FileMode, func(w io.Writer) error {
		_, err := io.WriteString(w, sock+"\n")
		return err
	})
}

// RemoveControl removes the record of the control socket.
func RemoveControl(dir string) {
	os.Remove(filepath.Join(dir, ControlName))
}

// ReadControl returns the control socket recorded in dir ("" when there
// is none).
func ReadControl(dir string) (string, error) {
	f, err := os.Open(filepath.Join(dir, ControlName))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read control socket name: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("read control socket name %s: %w", f.Name(), err)
	}
	sock := strings.TrimSpace(string(data))
	if sock != "" && !filepath.IsAbs(sock) {
		return "", fmt.Errorf("read control socket name %s: %q is not an absolute path", f.Name(), sock)
	}
	return sock, nil
}
