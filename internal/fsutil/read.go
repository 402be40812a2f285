package fsutil

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// OpenRegular opens path for reading only if it is a regular file on a
// real file system. It opens non-blocking, so a FIFO put in its place
// cannot hang the caller, and checks the type of what it opened and the
// file system it is on (a signature.json linked to a procfs or tracefs
// file is not read).
func OpenRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, ModeName(fi.Mode()))
	}
	if err := CheckRealFS(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return f, nil
}

// ReadLimited reads the regular file at path (opened by OpenRegular)
// whole; a file larger than limit bytes is an error naming it.
func ReadLimited(path string, limit int64) ([]byte, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// pseudoFSError marks a file on a pseudo file system (procfs, sysfs...):
// never read, whatever its type says.
type pseudoFSError struct{ fs string }

func (e *pseudoFSError) Error() string { return "on " + e.fs + " (not a real file system): not read" }

// CheckRealFS returns an error when f is on a pseudo file system (see
// pseudoFS), or when that cannot be told.
func CheckRealFS(f *os.File) error {
	name, err := pseudoFSOf(f)
	if err != nil {
		return err
	}
	if name != "" {
		return &pseudoFSError{name}
	}
	return nil
}

// CheckRealFSAt is CheckRealFS for the file at path (followed), so that
// a symlink's target there is not even opened (opening some control
// files does something).
func CheckRealFSAt(path string) error {
	name, err := pseudoFSAt(path)
	if err != nil {
		return err
	}
	if name != "" {
		return &pseudoFSError{name}
	}
	return nil
}

// ModeName names the type of a file that is not a regular one.
func ModeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "irregular file"
}
