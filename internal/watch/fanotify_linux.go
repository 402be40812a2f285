package watch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Writers learns who writes what on the install root's filesystem, through
// fanotify: the latest writer (pid, comm, exe, uid, unit) of each path and
// of each inode, among the last Capacity changes. It is an addition to the
// Watcher, never a replacement: inotify says what changed, Writers says
// who, and a Writers that cannot start leaves the check as it was.
//
// The group is FAN_CLASS_NOTIF with FAN_REPORT_DFID_NAME_TARGET (the
// directory and name the kernel reports, the inode itself, and for a
// creation, link or rename the inode of the entry), else
// FAN_REPORT_DFID_NAME|FAN_REPORT_FID (no inode for directory-entry
// events), else FAN_REPORT_DFID_NAME, else FAN_REPORT_FID; the mark is FAN_MARK_FILESYSTEM
// (every mount of the filesystem, so a write through a hard link in a
// directory inotify does not watch is seen too), else FAN_MARK_MOUNT (the
// root's mount only, and without the directory-entry events a mount mark
// cannot take on older kernels). It needs CAP_SYS_ADMIN (fanotify_init
// with FID reporting, filesystem marks) and CAP_DAC_READ_SEARCH
// (open_by_handle_at, to turn the directory handles into paths).
//
// Hard links: an event names the directory entry the writer used, so a
// write through data/x (a hard link to lib/base.php) is recorded under
// data/x, and, where the group reports the inode (FAN_REPORT_FID), under
// the inode too: Lookup("lib/base.php") finds it by the file's handle.
// Where only the directory and name are reported, a write through another
// link is found only under that link's name.
type Writers struct {
	fd      int // the fanotify group
	mountFD int // a directory on the root's filesystem, for open_by_handle_at
	root    string
	flags   uint // the group's FAN_REPORT_* flags
	mark    string
	mask    uint64

	closeOnce sync.Once
	// readMu is held while the group is read: by Run, and by Lookup
	// when Run does not read it. Lookup waits (at most lookupWait) until
	// what is queued has been read, so that a change inotify reported,
	// whose fanotify event the kernel queued in the same system call, is
	// recorded before it answers; it reads nothing itself. read is
	// closed (and made again) after each read is recorded; running says
	// Run reads.
	readMu    sync.Mutex
	read      chan struct{}
	running   bool
	lookupBuf [16 << 10]byte
	closed    bool
	mu        sync.Mutex
	recent    ring
	procs     map[int]procEntry // pid -> what /proc said, recently
	dirs      map[string]string // directory handle -> path
	tracked   map[string]bool   // inode keys whose changes kick (Track)
	kick      chan struct{}
	stats     WritersStats
	// execSeen: the group gets FAN_OPEN_EXEC on the root's filesystem
	// (and, where the kernel lets, on those of /, /usr, /tmp, /var/tmp,
	// /dev/shm and /run). pend is what was recorded, per pid, while
	// handling this read (cur) and the one before (prev): a process
	// that runs another program after its write may have been read in
	// /proc after that, and its execve's event comes in this read or
	// the next.
	execSeen bool
	pendCur  map[int][]string
	pendPrev map[int][]string
}

// DefaultWriters is how many recent changes a Writers remembers (each
// event takes one entry for its path and one for its inode).
const DefaultWriters = 65536

// OpenWriters starts fanotify on root's filesystem, remembering capacity
// recent changes (0: DefaultWriters). The error, when the kernel refuses
// (no CAP_SYS_ADMIN, an old kernel, a filesystem without file handles
// such as overlayfs), names what failed; the caller logs it once and goes
// on without writers. Call Run, then Close.
func OpenWriters(root string, capacity int) (*Writers, error) {
	if capacity <= 0 {
		capacity = DefaultWriters
	}
	root = filepath.Clean(root)
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r // the kernel's paths are resolved
	}
	var fd int
	var flags uint
	var err error
	for _, f := range []uint{unix.FAN_REPORT_DFID_NAME_TARGET, unix.FAN_REPORT_DFID_NAME | unix.FAN_REPORT_FID, unix.FAN_REPORT_DFID_NAME, unix.FAN_REPORT_FID} {
		fd, err = unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|f, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
		if err == nil {
			flags = f
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("fanotify: fanotify_init with FID reporting: %w", err)
	}
	w := &Writers{fd: fd, mountFD: -1, root: root, flags: flags,
		recent: newRing(capacity), procs: map[int]procEntry{}, dirs: map[string]string{}, kick: make(chan struct{}, 1), read: make(chan struct{}),
		pendCur: map[int][]string{}, pendPrev: map[int][]string{}}
	dirent := uint64(unix.FAN_CREATE | unix.FAN_MOVED_TO | unix.FAN_MOVED_FROM | unix.FAN_DELETE | unix.FAN_ONDIR)
	content := uint64(unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE | unix.FAN_ATTRIB)
	var fsErr, mntErr error // the first refusal of each sort of mark
	for _, m := range []struct {
		flag uint
		mask uint64
	}{
		{unix.FAN_MARK_FILESYSTEM, content | dirent},
		{unix.FAN_MARK_FILESYSTEM, content},
		{unix.FAN_MARK_MOUNT, content | dirent},
		{unix.FAN_MARK_MOUNT, content},
	} {
		err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|m.flag, m.mask, unix.AT_FDCWD, root)
		if err == nil {
			w.mark, w.mask = "filesystem", m.mask
			if m.flag == unix.FAN_MARK_MOUNT {
				w.mark = "mount"
			}
			break
		}
		if m.flag == unix.FAN_MARK_FILESYSTEM && fsErr == nil {
			fsErr = err
		} else if m.flag == unix.FAN_MARK_MOUNT && mntErr == nil {
			mntErr = err
		}
	}
	if w.mark != "" {
		// A write, then execve of another program: /proc read after it
		// names the new program (a symlink named php-fpm8.2 to sleep;
		// a setuid binary: uid 0). Exec events say when that happened.
		markFlag := uint(unix.FAN_MARK_FILESYSTEM)
		if w.mark == "mount" {
			markFlag = unix.FAN_MARK_MOUNT
		}
		w.execSeen = unix.FanotifyMark(fd, unix.FAN_MARK_ADD|markFlag, unix.FAN_OPEN_EXEC, unix.AT_FDCWD, root) == nil
		if w.execSeen {
			for _, p := range execDirs {
				unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_OPEN_EXEC, unix.AT_FDCWD, p) // best effort
			}
		}
	}
	if w.mark == "" {
		unix.Close(fd)
		// One line: the daemon logs it as one journal entry.
		return nil, fmt.Errorf("fanotify: marking %s: filesystem mark: %w; mount mark: %v", root, fsErr, mntErr)
	}
	w.mountFD, err = unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fanotify: opening %s: %w", root, err)
	}
	// open_by_handle_at needs CAP_DAC_READ_SEARCH and a filesystem that
	// can decode handles: try it once on the root rather than fail on
	// every event.
	if h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, root, 0); err != nil {
		w.Close()
		return nil, fmt.Errorf("fanotify: name_to_handle_at %s: %w", root, err)
	} else if dfd, err := unix.OpenByHandleAt(w.mountFD, h, unix.O_PATH|unix.O_CLOEXEC); err != nil {
		w.Close()
		return nil, fmt.Errorf("fanotify: open_by_handle_at %s: %w", root, err)
	} else {
		unix.Close(dfd)
	}
	return w, nil
}

// Mode describes the group and mark, for the daemon's start entry, e.g.
// "filesystem mark, directory+name+inode".
func (w *Writers) Mode() string {
	var r []string
	if w.flags&unix.FAN_REPORT_DFID_NAME == unix.FAN_REPORT_DFID_NAME {
		r = append(r, "directory+name")
	}
	if w.flags&unix.FAN_REPORT_FID != 0 {
		r = append(r, "inode")
	}
	if w.flags&unix.FAN_REPORT_TARGET_FID != 0 {
		r = append(r, "target")
	}
	s := w.mark + " mark, " + strings.Join(r, "+")
	if w.mask&unix.FAN_CREATE == 0 {
		s += ", no directory-entry events"
	}
	if !w.execSeen {
		s += ", no exec events (a writer that runs another program after its write is named as that program)"
	}
	return s
}

// Close releases the group; Run returns soon after.
func (w *Writers) Close() error {
	w.closeOnce.Do(func() {
		w.readMu.Lock()
		defer w.readMu.Unlock()
		w.closed = true
		unix.Close(w.fd)
		if w.mountFD >= 0 {
			unix.Close(w.mountFD)
		}
	})
	return nil
}

// Stats returns the counters.
func (w *Writers) Stats() WritersStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Run reads events until ctx ends or the group fails.
func (w *Writers) Run(ctx context.Context) error {
	w.setRunning(true)
	defer w.setRunning(false)
	buf := make([]byte, 64<<10)
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	for ctx.Err() == nil {
		// Poll with a timeout, so that ctx is seen within 100 ms
		// without another goroutine closing the fd under us.
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("fanotify: poll: %w", err)
		}
		if n <= 0 {
			continue
		}
		if err := w.drain(buf); errors.Is(err, errClosed) {
			return nil
		} else if err != nil {
			return err
		}
	}
	return nil
}

var errClosed = errors.New("fanotify: closed")

func (w *Writers) setRunning(on bool) {
	w.mu.Lock()
	w.running = on
	w.mu.Unlock()
}

// lookupWait bounds how long Lookup waits for Run to read what the kernel
// has queued: the loop that asks never waits longer, whatever load the
// rest of the filesystem puts on the group.
const lookupWait = 5 * time.Millisecond

// caughtUp returns once what the kernel had queued when it was called
// has been read and recorded, or after lookupWait (counted in
// Stats().Late). Without Run, it reads the queue itself.
func (w *Writers) caughtUp() {
	w.mu.Lock()
	running := w.running
	w.mu.Unlock()
	if !running {
		w.drain(nil) // a read error ends Run, which reports it
		return
	}
	deadline := time.NewTimer(lookupWait)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		read := w.read
		w.mu.Unlock()
		if w.readMu.TryLock() {
			empty := w.closed || !readable(w.fd)
			w.readMu.Unlock()
			if empty {
				return
			}
		}
		select {
		case <-read:
		case <-deadline.C:
			w.mu.Lock()
			w.stats.Late++
			w.mu.Unlock()
			return
		}
	}
}

// readable reports whether events are queued on fd.
func readable(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
}

// drain reads and records every event queued, without blocking.
func (w *Writers) drain(buf []byte) error {
	w.readMu.Lock()
	defer w.readMu.Unlock()
	if w.closed {
		return errClosed
	}
	if buf == nil {
		buf = w.lookupBuf[:]
	}
	for {
		n, err := unix.Read(w.fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("fanotify: read: %w", err)
		}
		if n <= 0 {
			return nil
		}
		w.handle(buf[:n], time.Now())
		w.mu.Lock()
		close(w.read)
		w.read = make(chan struct{})
		w.mu.Unlock()
	}
}

const metaSize = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))

// execDirs are where programs are run from, whose filesystems get an exec
// mark beside the root's: an exec from elsewhere is not seen (see
// docs/security.md).
var execDirs = [...]string{"/", "/usr", "/tmp", "/var/tmp", "/dev/shm", "/run"}

// handle records the events in b, read at now.
func (w *Writers) handle(b []byte, now time.Time) {
	w.mu.Lock()
	w.pendPrev, w.pendCur = w.pendCur, w.pendPrev
	clear(w.pendCur)
	w.mu.Unlock()
	for len(b) >= metaSize {
		var m unix.FanotifyEventMetadata
		m.Event_len = binary.NativeEndian.Uint32(b[0:])
		m.Vers = b[4]
		m.Metadata_len = binary.NativeEndian.Uint16(b[6:])
		m.Mask = binary.NativeEndian.Uint64(b[8:])
		m.Fd = int32(binary.NativeEndian.Uint32(b[16:]))
		m.Pid = int32(binary.NativeEndian.Uint32(b[20:]))
		if m.Vers != unix.FANOTIFY_METADATA_VERSION || int(m.Event_len) < metaSize || int(m.Event_len) > len(b) {
			return // not an event we understand: drop the rest of the read
		}
		ev := b[:m.Event_len]
		b = b[m.Event_len:]
		if m.Fd >= 0 {
			unix.Close(int(m.Fd)) // not in FID mode; never expected
		}
		w.mu.Lock()
		w.stats.Events++
		if m.Mask&unix.FAN_Q_OVERFLOW != 0 {
			// Events were dropped: what is recorded may not be the
			// latest writer any more. Unknown beats wrong.
			w.stats.Overflow++
			w.recent.reset()
		}
		w.mu.Unlock()
		if m.Mask&unix.FAN_Q_OVERFLOW != 0 {
			continue
		}
		w.event(m, ev[m.Metadata_len:], now)
	}
}

// execed notes that pid ran another program: what /proc said of it may
// be the new program's, so the writers recorded for it since the last
// read but one lose their exe, comm and uid (the unit stays: execve does
// not change the cgroup), and its /proc cache goes.
func (w *Writers) execed(pid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.procs, pid)
	for _, pend := range []map[int][]string{w.pendPrev, w.pendCur} {
		for _, key := range pend[pid] {
			w.recent.update(key, func(wr *Writer) {
				if wr.Pid == pid {
					wr.Comm, wr.Exe, wr.UID, wr.Execed = "", "", -1, true
				}
			})
		}
		delete(pend, pid)
	}
}

// maxPending bounds what one pid's exec can take back in one read.
const maxPending = 4096

// event records one event whose info records are info.
func (w *Writers) event(m unix.FanotifyEventMetadata, info []byte, now time.Time) {
	if m.Mask&unix.FAN_OPEN_EXEC != 0 {
		w.execed(int(m.Pid))
		if m.Mask&^uint64(unix.FAN_OPEN_EXEC|unix.FAN_ONDIR) == 0 {
			return
		}
	}
	var dirHandle, objHandle []byte // fsid-free keys: type + handle bytes
	var name string
	for len(info) >= 4 {
		typ, l := info[0], int(binary.NativeEndian.Uint16(info[2:]))
		if l < 4 || l > len(info) {
			return
		}
		rec := info[4:l]
		info = info[l:]
		if len(rec) < 8+8 {
			continue
		}
		fh := rec[8:] // after the fsid
		hb := int(binary.NativeEndian.Uint32(fh[0:]))
		if 8+hb > len(fh) {
			continue
		}
		key := fh[4 : 8+hb] // handle_type and f_handle
		switch typ {
		case unix.FAN_EVENT_INFO_TYPE_DFID_NAME:
			dirHandle = key
			if rest := fh[8+hb:]; len(rest) > 0 {
				if i := bytes.IndexByte(rest, 0); i >= 0 {
					name = string(rest[:i])
				} else {
					name = string(rest)
				}
			}
		case unix.FAN_EVENT_INFO_TYPE_DFID:
			dirHandle = key
		case unix.FAN_EVENT_INFO_TYPE_FID:
			objHandle = key
		}
	}
	dirent := m.Mask&(unix.FAN_CREATE|unix.FAN_MOVED_TO|unix.FAN_MOVED_FROM|unix.FAN_DELETE) != 0
	if dirent && w.flags&unix.FAN_REPORT_TARGET_FID == 0 {
		// Without FAN_REPORT_TARGET_FID, a directory-entry event's
		// object is the directory, not the file.
		objHandle = nil
	}
	if m.Mask&unix.FAN_ONDIR != 0 {
		if m.Mask&(unix.FAN_MOVED_FROM|unix.FAN_MOVED_TO|unix.FAN_DELETE) != 0 {
			// A directory was renamed or removed: the cached paths
			// below it may be wrong now (a new one changes nothing).
			w.mu.Lock()
			clear(w.dirs)
			w.mu.Unlock()
		}
		if m.Mask&unix.FAN_MOVED_FROM != 0 || !dirent {
			return
		}
	} else if m.Mask&unix.FAN_MOVED_FROM != 0 {
		return // the name that is gone; moved_to records the new one
	}
	path := ""
	if dirHandle != nil {
		dir, ok := w.dirPath(dirHandle)
		if !ok {
			w.mu.Lock()
			w.stats.Unresolved++
			w.mu.Unlock()
		} else if name == "" || name == "." {
			path = dir
		} else {
			path = filepath.Join(dir, name)
		}
	}
	if path != "" && path != w.root && !strings.HasPrefix(path, w.root+"/") {
		path = "" // outside the root: kept by inode only, if tracked
	}
	tracked := false
	if objHandle != nil {
		w.mu.Lock()
		tracked = w.tracked["h"+string(objHandle)]
		w.mu.Unlock()
		if tracked {
			select {
			case w.kick <- struct{}{}:
			default:
			}
		}
	}
	if path == "" && !tracked {
		// Outside the root (or a directory that cannot be resolved), on
		// an inode no checked file shares: nothing a lookup will ask
		// for. Dropped before /proc is read: a filesystem mark sees every
		// write of the filesystem, and this is most of them.
		w.mu.Lock()
		w.stats.Dropped++
		w.mu.Unlock()
		return
	}
	wr := w.proc(int(m.Pid), now)
	wr.Op, wr.When = opName(m.Mask), now
	w.mu.Lock()
	defer w.mu.Unlock()
	pend := w.pendCur[wr.Pid]
	if path != "" {
		w.recent.put("p"+path, wr)
		pend = append(pend, "p"+path)
	}
	if objHandle != nil && m.Mask&unix.FAN_DELETE == 0 {
		w.recent.put("h"+string(objHandle), wr)
		pend = append(pend, "h"+string(objHandle))
	}
	if w.execSeen && len(pend) <= maxPending {
		w.pendCur[wr.Pid] = pend
	}
	w.stats.Recorded++
}

func opName(mask uint64) string {
	for _, o := range []struct {
		bit  uint64
		name string
	}{
		{unix.FAN_DELETE, "delete"}, {unix.FAN_MOVED_TO, "moved_to"}, {unix.FAN_CREATE, "create"},
		{unix.FAN_CLOSE_WRITE, "close_write"}, {unix.FAN_MODIFY, "modify"}, {unix.FAN_ATTRIB, "attrib"},
	} {
		if mask&o.bit != 0 {
			return o.name
		}
	}
	return "change"
}

// maxDirs bounds the directory cache; it is cleared when full.
const maxDirs = 8192

// dirPath turns a directory handle into its path (as this process sees
// it), through a cache.
func (w *Writers) dirPath(key []byte) (string, bool) {
	w.mu.Lock()
	p, ok := w.dirs[string(key)]
	w.mu.Unlock()
	if ok {
		return p, true
	}
	h := unix.NewFileHandle(int32(binary.NativeEndian.Uint32(key)), key[4:])
	fd, err := unix.OpenByHandleAt(w.mountFD, h, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", false
	}
	p, err = os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	unix.Close(fd)
	if err != nil || !strings.HasPrefix(p, "/") || strings.HasSuffix(p, " (deleted)") {
		return "", false
	}
	w.mu.Lock()
	if len(w.dirs) >= maxDirs {
		clear(w.dirs)
	}
	w.dirs[string(key)] = p
	w.mu.Unlock()
	return p, true
}

// Track replaces the files whose changes Kicks reports: files with
// another name (hard links), which a write through that name changes
// without an inotify event under the install. A path that cannot be
// resolved is left out.
func (w *Writers) Track(paths []string) {
	t := make(map[string]bool, len(paths))
	for _, p := range paths {
		if k, ok := inodeKey(p); ok {
			t[k] = true
		}
	}
	w.mu.Lock()
	w.tracked = t
	w.mu.Unlock()
}

// Kicks receives (coalesced) when a tracked file changed, by any name.
func (w *Writers) Kicks() <-chan struct{} { return w.kick }

// inodeKey is the ring's key of the inode at path (a symlink's target's).
func inodeKey(path string) (string, bool) {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return "", false
	}
	var t [4]byte
	binary.NativeEndian.PutUint32(t[:], uint32(h.Type()))
	return "h" + string(t[:]) + string(h.Bytes()), true
}

// Lookup returns the latest recorded writer of path: of the path itself
// (the name written, created, renamed to or removed) or of the inode
// found at path now, whichever is later.
//
// Lookup first waits (at most lookupWait) until Run has read what the
// kernel has queued, so a change made before it was called is there,
// unless the kernel dropped events (then nothing older than the overflow
// is known) or Run was that late. The path's directory is resolved
// (symlinks), as the kernel's handles are.
func (w *Writers) Lookup(path string) (Writer, bool) {
	w.caughtUp()
	path = filepath.Clean(path)
	if dir, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		path = filepath.Join(dir, filepath.Base(path))
	}
	hkey, _ := inodeKey(path)
	w.mu.Lock()
	defer w.mu.Unlock()
	byPath, okP := w.recent.get("p" + path)
	if hkey == "" {
		return byPath, okP
	}
	byInode, okH := w.recent.get(hkey)
	switch {
	case okP && okH:
		if byInode.When.After(byPath.When) {
			return byInode, true
		}
		return byPath, true
	case okH:
		return byInode, true
	}
	return byPath, okP
}

// procEntry is what /proc said of a pid, and when.
type procEntry struct {
	w  Writer
	at time.Time
}

// procTTL is how long what /proc said of a pid is reused: a writer
// writing many files is read once, and a pid reused within it is
// unlikely.
const procTTL = 500 * time.Millisecond

// proc describes pid, from the cache or /proc.
func (w *Writers) proc(pid int, now time.Time) Writer {
	w.mu.Lock()
	e, ok := w.procs[pid]
	w.mu.Unlock()
	if ok && now.Sub(e.at) < procTTL {
		return e.w
	}
	wr := ReadProc(pid)
	w.mu.Lock()
	if len(w.procs) >= 4096 {
		for p, e := range w.procs {
			if now.Sub(e.at) >= procTTL {
				delete(w.procs, p)
			}
		}
		if len(w.procs) >= 4096 {
			clear(w.procs)
		}
	}
	w.procs[pid] = procEntry{wr, now}
	w.mu.Unlock()
	return wr
}

// ReadProc describes pid from /proc: what is gone is left zero (UID -1).
func ReadProc(pid int) Writer {
	wr := Writer{Pid: pid, UID: -1}
	dir := "/proc/" + strconv.Itoa(pid) + "/"
	if b, err := os.ReadFile(dir + "comm"); err == nil {
		wr.Comm = strings.TrimSuffix(string(b), "\n")
	}
	if p, err := os.Readlink(dir + "exe"); err == nil {
		wr.Exe = p
	}
	if f, err := os.Open(dir + "status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
				// real, effective, saved, filesystem: the effective
				// uid is the one the write was checked against.
				if fs := strings.Fields(rest); len(fs) >= 2 {
					if u, err := strconv.Atoi(fs[1]); err == nil {
						wr.UID = u
					}
				}
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile(dir + "cgroup"); err == nil {
		wr.Unit = UnitOf(string(b))
	}
	return wr
}
