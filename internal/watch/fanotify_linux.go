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
	"syscall"
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
	fd int // the fanotify group
	// wait is an epoll instance with fd in it, one-shot, itself in the
	// runtime's poller (waitRC): Run waits on it for the first event of
	// a batch, and the events after that until it re-arms wake nobody
	// (the runtime's own epoll is edge-triggered on every wake-up of a
	// file it holds: on every event, were fd in it).
	wait    *os.File
	waitRC  syscall.RawConn
	mountFD int // a directory on the root's filesystem, for open_by_handle_at
	root    string
	flags   uint // the group's FAN_REPORT_* flags, FAN_REPORT_PIDFD aside
	mark    string
	mask    uint64
	// pidfd: each event carries a pidfd of its process
	// (FAN_REPORT_PIDFD), with which what /proc says is checked to be
	// that process's; noPidfd is why not, where the kernel refused it.
	pidfd   bool
	noPidfd error

	closeOnce sync.Once
	// readMu is held while the group is read: by Run, or by Lookup,
	// which reads what is queued itself when Run is not reading; when
	// Run is, it waits (at most lookupWait) until that read is recorded,
	// so that a change inotify reported, whose fanotify event the kernel
	// queued in the same system call, is recorded before it answers.
	// read is closed (and made again) after each read is recorded.
	readMu    sync.Mutex
	read      chan struct{}
	lookupBuf [16 << 10]byte
	closed    bool
	mu        sync.Mutex
	recent    ring
	procs     procCache         // pid -> what /proc said, recently
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
	quiet    *quietMarks
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
	fd, flags, pidfd, noPidfd, err := initGroup()
	if err != nil {
		return nil, err
	}
	w := &Writers{fd: fd, mountFD: -1, root: root, flags: flags, pidfd: pidfd, noPidfd: noPidfd,
		recent: newRing(capacity), procs: procCache{m: map[int]procEntry{}, limit: maxProcs}, dirs: map[string]string{}, kick: make(chan struct{}, 1), read: make(chan struct{}),
		pendCur: map[int][]string{}, pendPrev: map[int][]string{}, quiet: newQuietMarks()}
	if pidfd {
		w.procs.limit = maxProcsPidfd
	}
	if w.mark, w.mask, err = markRoot(fd, root); err != nil {
		unix.Close(fd)
		return nil, err
	}
	w.execSeen = markExec(fd, root, w.mark)
	w.mountFD, err = unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fanotify: opening %s: %w", root, err)
	}
	// The runtime's poller waits, without a thread blocked in poll(2)
	// (and sysmon kept awake).
	if w.wait, w.waitRC, err = openWait(fd); err != nil {
		w.Close()
		return nil, err
	}
	w.quiet.group, w.quiet.mountFD, w.quiet.root = fd, w.mountFD, root
	// A directory is made quiet only where a name arriving in it tells
	// its inode (the hard-link check needs it).
	w.quiet.dirOff = flags&unix.FAN_REPORT_TARGET_FID == 0
	if err := checkHandles(w.mountFD, root); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// reportFlags are the FID reporting modes tried, best first.
var reportFlags = [...]uint{unix.FAN_REPORT_DFID_NAME_TARGET, unix.FAN_REPORT_DFID_NAME | unix.FAN_REPORT_FID, unix.FAN_REPORT_DFID_NAME, unix.FAN_REPORT_FID}

// initGroup makes the group: the best FID reporting the kernel takes,
// with FAN_REPORT_PIDFD where it takes that too (Linux 5.15); noPidfd
// says why not.
func initGroup() (fd int, flags uint, pidfd bool, noPidfd, err error) {
	const base = unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK
	const open = unix.O_RDONLY | unix.O_LARGEFILE | unix.O_CLOEXEC
	for _, f := range reportFlags {
		fd, err = unix.FanotifyInit(base|f|unix.FAN_REPORT_PIDFD, open)
		if err == nil {
			return fd, f, true, nil, nil
		}
		noPidfd = fmt.Errorf("fanotify_init with FAN_REPORT_PIDFD: %w", err)
		if fd, err = unix.FanotifyInit(base|f, open); err == nil {
			return fd, f, false, noPidfd, nil
		}
	}
	return -1, 0, false, noPidfd, fmt.Errorf("fanotify: fanotify_init with FID reporting: %w", err)
}

// markRoot adds the root's mark: a filesystem mark, else a mount mark,
// each with the directory-entry events if the kernel takes them.
func markRoot(fd int, root string) (mark string, mask uint64, err error) {
	dirent := uint64(unix.FAN_CREATE | unix.FAN_MOVED_TO | unix.FAN_MOVED_FROM | unix.FAN_DELETE | unix.FAN_ONDIR)
	content := uint64(unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE | unix.FAN_ATTRIB)
	var errs [2]error // the first refusal of each sort of mark
	for i, m := range []struct {
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
			if m.flag == unix.FAN_MARK_MOUNT {
				return "mount", m.mask, nil
			}
			return "filesystem", m.mask, nil
		}
		if errs[i/2] == nil {
			errs[i/2] = err
		}
	}
	// One line: the daemon logs it as one journal entry.
	return "", 0, fmt.Errorf("fanotify: marking %s: filesystem mark: %w; mount mark: %v", root, errs[0], errs[1])
}

// markExec adds the exec marks, best effort. A write, then execve of
// another program: /proc read after it names the new program (a symlink
// named php-fpm8.2 to sleep; a setuid binary: uid 0). Exec events say
// when that happened. It reports whether the root's was added.
func markExec(fd int, root, mark string) bool {
	markFlag := uint(unix.FAN_MARK_FILESYSTEM)
	if mark == "mount" {
		markFlag = unix.FAN_MARK_MOUNT
	}
	if unix.FanotifyMark(fd, unix.FAN_MARK_ADD|markFlag, unix.FAN_OPEN_EXEC, unix.AT_FDCWD, root) != nil {
		return false
	}
	for _, p := range execDirs {
		unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_OPEN_EXEC, unix.AT_FDCWD, p) // best effort
	}
	return true
}

// checkHandles tries open_by_handle_at once on the root rather than fail
// on every event: it needs CAP_DAC_READ_SEARCH and a filesystem that can
// decode handles.
func checkHandles(mountFD int, root string) error {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, root, 0)
	if err != nil {
		return fmt.Errorf("fanotify: name_to_handle_at %s: %w", root, err)
	}
	dfd, err := unix.OpenByHandleAt(mountFD, h, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fanotify: open_by_handle_at %s: %w", root, err)
	}
	unix.Close(dfd)
	return nil
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
	if w.pidfd {
		s += ", pidfd"
	} else {
		s += ", no pidfd (" + w.noPidfd.Error() + "): a writer that exits before its event is read may be named as the process given its pid afterwards"
	}
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
		if w.wait != nil {
			w.wait.Close()
		}
		unix.Close(w.fd)
		if w.mountFD >= 0 {
			unix.Close(w.mountFD)
		}
		w.mu.Lock()
		w.procs.clear()
		w.mu.Unlock()
	})
	return nil
}

// Stats returns the counters.
func (w *Writers) Stats() WritersStats {
	w.mu.Lock()
	st := w.stats
	w.mu.Unlock()
	st.Quiet, st.QuietDirs = w.quiet.added()
	return st
}

// gather is how long Run lets events queue after the first before it
// reads them: one wake-up and one read for all of them, and the kernel
// merges repeated events of one file meanwhile. A Lookup does not wait
// for it (it reads the queue itself).
const gather = 20 * time.Millisecond

// Run reads events until ctx ends or the group is closed.
func (w *Writers) Run(ctx context.Context) error {
	w.wait.SetReadDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { w.wait.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 64<<10)
	timer := time.NewTimer(gather)
	defer timer.Stop()
	for {
		err := w.waitRC.Read(func(ep uintptr) bool {
			var evs [1]unix.EpollEvent
			n, _ := unix.EpollWait(int(ep), evs[:], 0)
			return n > 0
		})
		if err != nil {
			w.readMu.Lock()
			closed := w.closed
			w.readMu.Unlock()
			if errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil || closed {
				return nil
			}
			return fmt.Errorf("fanotify: waiting: %w", err)
		}
		timer.Reset(gather)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		w.readMu.Lock()
		err = w.drain(buf)
		if err == nil {
			err = arm(w.waitRC, w.fd, unix.EPOLL_CTL_MOD)
		}
		w.readMu.Unlock()
		if errors.Is(err, errClosed) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// openWait makes the epoll instance Run waits on, with the group fd in it.
func openWait(fd int) (*os.File, syscall.RawConn, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("fanotify: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return nil, nil, fmt.Errorf("fanotify: epoll: %w", err)
	}
	f := os.NewFile(uintptr(ep), "fanotify-epoll")
	rc, err := f.SyscallConn()
	if err == nil {
		err = arm(rc, fd, unix.EPOLL_CTL_ADD)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("fanotify: epoll: %w", err)
	}
	return f, rc, nil
}

// arm puts the group fd in the epoll instance (op EPOLL_CTL_ADD) or
// re-arms it (EPOLL_CTL_MOD: it is then ready at once if events are
// queued).
func arm(rc syscall.RawConn, fd, op int) error {
	var err error
	rc.Control(func(ep uintptr) {
		err = unix.EpollCtl(int(ep), op, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(fd)})
	})
	if err != nil {
		return fmt.Errorf("fanotify: epoll_ctl: %w", err)
	}
	return nil
}

var errClosed = errors.New("fanotify: closed")

// lookupWait bounds how long Lookup waits for Run to read what the kernel
// has queued: the loop that asks never waits longer, whatever load the
// rest of the filesystem puts on the group.
const lookupWait = 50 * time.Millisecond

// caughtUp returns once what the kernel had queued when it was called
// has been read and recorded: read here when Run is not reading, else by
// Run, waited for at most lookupWait (then counted in Stats().Late).
func (w *Writers) caughtUp() {
	deadline := time.NewTimer(lookupWait)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		read := w.read
		w.mu.Unlock()
		if w.readMu.TryLock() {
			w.drain(w.lookupBuf[:]) // a read error ends Run, which reports it
			w.readMu.Unlock()
			return
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

// drain reads and records every event queued, without blocking; readMu
// is held.
func (w *Writers) drain(buf []byte) error {
	if w.closed {
		return errClosed
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
		w.stats.Reads++
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
		if m.Vers != unix.FANOTIFY_METADATA_VERSION || int(m.Event_len) < metaSize || int(m.Event_len) > len(b) || int(m.Metadata_len) > int(m.Event_len) {
			return // not an event we understand: drop the rest of the read
		}
		ev := parseEvent(m, b[m.Metadata_len:m.Event_len])
		b = b[m.Event_len:]
		if m.Fd >= 0 {
			unix.Close(int(m.Fd)) // not in FID mode; never expected
		}
		w.mu.Lock()
		w.stats.Events++
		overflow := ev.mask&unix.FAN_Q_OVERFLOW != 0
		if overflow {
			// Events were dropped: what is recorded may not be the
			// latest writer any more. Unknown beats wrong.
			w.stats.Overflow++
			w.recent.reset()
		}
		w.mu.Unlock()
		if !overflow {
			w.event(&ev, now)
		}
		if ev.pidfd >= 0 {
			closeFast(ev.pidfd) // not kept by the /proc cache
		}
	}
}

// event is one fanotify event, parsed.
type event struct {
	mask      uint64
	pid       int
	pidfd     int    // the process's pidfd (owned), or < 0: none, or FAN_NOPIDFD/FAN_EPIDFD
	hadPidfd  bool   // the event had a pidfd record
	dirHandle []byte // fsid-free keys: type + handle bytes
	objHandle []byte
	name      string
}

// parseEvent parses an event's info records: the handles and name, and
// the pidfd (which the caller closes whatever else the records hold).
func parseEvent(m unix.FanotifyEventMetadata, info []byte) event {
	ev := event{mask: m.Mask, pid: int(m.Pid), pidfd: -1}
	for len(info) >= 4 {
		typ, l := info[0], int(binary.NativeEndian.Uint16(info[2:]))
		if l < 4 || l > len(info) {
			break
		}
		rec := info[4:l]
		info = info[l:]
		if typ == unix.FAN_EVENT_INFO_TYPE_PIDFD {
			if len(rec) >= 4 {
				ev.pidfd, ev.hadPidfd = int(int32(binary.NativeEndian.Uint32(rec))), true
			}
			continue
		}
		ev.fid(typ, rec)
	}
	return ev
}

// fid takes one FID info record (after its header): fsid, then a
// struct file_handle, then for DFID_NAME the name.
func (ev *event) fid(typ byte, rec []byte) {
	if len(rec) < 8+8 {
		return
	}
	fh := rec[8:] // after the fsid
	hb := int(binary.NativeEndian.Uint32(fh[0:]))
	if 8+hb > len(fh) {
		return
	}
	key := fh[4 : 8+hb] // handle_type and f_handle
	switch typ {
	case unix.FAN_EVENT_INFO_TYPE_DFID_NAME:
		ev.dirHandle = key
		if rest := fh[8+hb:]; len(rest) > 0 {
			if i := bytes.IndexByte(rest, 0); i >= 0 {
				rest = rest[:i]
			}
			ev.name = string(rest)
		}
	case unix.FAN_EVENT_INFO_TYPE_DFID:
		ev.dirHandle = key
	case unix.FAN_EVENT_INFO_TYPE_FID:
		ev.objHandle = key
	}
}

// execed notes that pid ran another program: what /proc said of it may
// be the new program's, so the writers recorded for it since the last
// read but one lose their exe, comm and uid (the unit stays: execve does
// not change the cgroup), and its /proc cache goes.
func (w *Writers) execed(pid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.procs.forget(pid)
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

const direntMask = unix.FAN_CREATE | unix.FAN_MOVED_TO | unix.FAN_MOVED_FROM | unix.FAN_DELETE

// event records one event.
func (w *Writers) event(ev *event, now time.Time) {
	if ev.mask&unix.FAN_OPEN_EXEC != 0 {
		w.execed(ev.pid)
		if ev.mask&^uint64(unix.FAN_OPEN_EXEC|unix.FAN_ONDIR) == 0 {
			return
		}
	}
	dirent := ev.mask&direntMask != 0
	if dirent && w.flags&unix.FAN_REPORT_TARGET_FID == 0 {
		// Without FAN_REPORT_TARGET_FID, a directory-entry event's
		// object is the directory, not the file.
		ev.objHandle = nil
	}
	full := w.fullPath(ev)
	if ev.mask&unix.FAN_ONDIR != 0 {
		w.dirChanged(ev, full)
	}
	if unrecorded(ev.mask) {
		return
	}
	path := ""
	if full != "" && below(full, w.root) {
		path = full // outside the root: kept by inode only, if tracked
	}
	tracked := w.isTracked(ev.objHandle)
	w.arrival(ev, path, tracked)
	if path == "" && !tracked {
		w.dropped(ev, full)
		return
	}
	w.record(ev, path, now)
}

// arrival tells the quiet marks of a file's name created or moved to,
// outside the root (path "") or in it, then kicks if its inode is
// tracked: a write through that name after the kick is not muted.
func (w *Writers) arrival(ev *event, path string, tracked bool) {
	arrived := ev.mask&(unix.FAN_CREATE|unix.FAN_MOVED_TO) != 0 && ev.mask&unix.FAN_ONDIR == 0
	switch {
	case arrived && path == "":
		w.quiet.arrived(ev.dirHandle, ev.objHandle, tracked)
	case arrived:
		w.quiet.entered(ev.objHandle)
	}
	if tracked {
		w.kickNow()
	}
}

// dropped counts an event outside the root (or whose directory cannot
// be resolved), on an inode no checked file shares: nothing a lookup
// will ask for. It is dropped before /proc is read: a filesystem mark
// sees every write of the filesystem, and this is most of them. A
// file's content event (maybe merged with its creation) counts towards
// making its directory or inode quiet.
func (w *Writers) dropped(ev *event, full string) {
	w.mu.Lock()
	w.stats.Dropped++
	w.mu.Unlock()
	if ev.mask&quietMask == 0 || ev.mask&unix.FAN_ONDIR != 0 || full == "" {
		return
	}
	dir := ""
	if ev.name != "" && ev.name != "." {
		dir = filepath.Dir(full)
	}
	w.quiet.dropped(ev.objHandle, ev.dirHandle, dir)
}

// unrecorded reports whether an event's mask is not one recorded: the
// name that is gone (moved_to records the new one), and a directory's
// events but its creation and arrival.
func unrecorded(mask uint64) bool {
	if mask&unix.FAN_ONDIR != 0 {
		return mask&unix.FAN_MOVED_FROM != 0 || mask&direntMask == 0
	}
	return mask&unix.FAN_MOVED_FROM != 0
}

// fullPath is the event's path as this process sees it, "" when its
// directory cannot be resolved (counted in Stats().Unresolved).
func (w *Writers) fullPath(ev *event) string {
	if ev.dirHandle == nil {
		return ""
	}
	w.mu.Lock()
	dir, ok := w.dirs[string(ev.dirHandle)]
	w.mu.Unlock()
	if !ok {
		dir, ok = w.resolve(ev.dirHandle)
	}
	if !ok || dir == "" {
		w.mu.Lock()
		w.stats.Unresolved++
		w.mu.Unlock()
		return ""
	}
	if ev.name == "" || ev.name == "." {
		return dir
	}
	return filepath.Join(dir, ev.name)
}

// dirChanged handles a directory's event: one renamed or removed where
// the root is, at or below it or above it, makes the cached paths of
// directories wrong (a new one changes nothing; one elsewhere leaves
// those outside the root outside: a directory moved into the root is a
// moved_to at or below it). A removed directory's own entry goes.
func (w *Writers) dirChanged(ev *event, full string) {
	if ev.mask&(unix.FAN_MOVED_FROM|unix.FAN_MOVED_TO|unix.FAN_DELETE) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if full == "" || below(full, w.root) || below(w.root, full) {
		clear(w.dirs)
		if ev.mask&unix.FAN_MOVED_TO != 0 {
			w.quiet.flush() // the files of a tree moved in may be quiet
		}
		return
	}
	if ev.mask&unix.FAN_DELETE != 0 && ev.objHandle != nil {
		delete(w.dirs, string(ev.objHandle))
		w.quiet.gone(ev.objHandle)
	}
}

// isTracked reports whether the inode is tracked.
func (w *Writers) isTracked(obj []byte) bool {
	if obj == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tracked["h"+string(obj)]
}

// kickNow kicks (coalesced).
func (w *Writers) kickNow() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// record reads (or recalls) who the event's process is and records it
// under the path and the inode.
func (w *Writers) record(ev *event, path string, now time.Time) {
	wr := w.proc(ev, now)
	wr.Op, wr.When = opName(ev.mask), now
	w.mu.Lock()
	defer w.mu.Unlock()
	pend := w.pendCur[wr.Pid]
	if path != "" {
		w.recent.put("p"+path, wr)
		pend = append(pend, "p"+path)
	}
	if ev.objHandle != nil && ev.mask&unix.FAN_DELETE == 0 {
		w.recent.put("h"+string(ev.objHandle), wr)
		pend = append(pend, "h"+string(ev.objHandle))
	}
	if w.execSeen && len(pend) <= maxPending && !wr.Exited {
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

// resolve turns a directory handle into its path (as this process sees
// it), and caches it.
func (w *Writers) resolve(key []byte) (string, bool) {
	p, err := resolveDir(w.mountFD, key)
	if err == nil || errors.Is(err, errGone) {
		// A directory removed stays so (its handle is never another's):
		// "" is cached, and not tried again.
		w.mu.Lock()
		if len(w.dirs) >= maxDirs {
			clear(w.dirs)
		}
		w.dirs[string(key)] = p
		w.mu.Unlock()
	}
	return p, err == nil
}

// errGone: a directory handle of a directory that was removed.
var errGone = errors.New("fanotify: directory removed")

// resolveDir turns a directory handle into its path (as this process
// sees it).
func resolveDir(mountFD int, key []byte) (string, error) {
	h := unix.NewFileHandle(int32(binary.NativeEndian.Uint32(key)), key[4:])
	fd, err := unix.OpenByHandleAt(mountFD, h, unix.O_PATH|unix.O_CLOEXEC)
	if errors.Is(err, unix.ESTALE) {
		return "", errGone
	} else if err != nil {
		return "", err
	}
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	closeFast(fd)
	switch {
	case err != nil:
		return "", err
	case strings.HasSuffix(p, " (deleted)"):
		return "", errGone
	case !strings.HasPrefix(p, "/"):
		return "", errors.New("fanotify: directory not in this process's root")
	}
	return p, nil
}

// closeFast closes fd without telling the scheduler: a pidfd or O_PATH
// descriptor's close does not block, and thousands a second of
// syscall.Close would each offer the P to another thread.
func closeFast(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// Track replaces the files whose changes Kicks reports: files with
// another name (hard links), which a write through that name changes
// without an inotify event under the install. A path that cannot be
// resolved is left out.
func (w *Writers) Track(paths []string) {
	t := make(map[string]bool, len(paths))
	keep := map[string]bool{}
	for _, p := range paths {
		if k, ok := inodeKey(p); ok {
			t[k] = true
		}
		// The directory of the file itself (a symlink's target's) is
		// never made quiet: its writes there must kick. Its other names,
		// if any, are in directories with an entry of several names,
		// never quiet either.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if k, ok := handleKey(filepath.Dir(real)); ok {
				keep[k] = true
			}
		}
	}
	w.mu.Lock()
	w.tracked = t
	w.mu.Unlock()
	// A newly tracked inode may be one made quiet, or in a directory
	// made quiet: no event would come.
	w.quiet.track(keep)
}

// Kicks receives (coalesced) when a tracked file changed, by any name.
func (w *Writers) Kicks() <-chan struct{} { return w.kick }

// inodeKey is the ring's key of the inode at path (a symlink's target's).
func inodeKey(path string) (string, bool) {
	k, ok := handleKey(path)
	if !ok {
		return "", false
	}
	return "h" + k, true
}

// handleKey is the key of the inode at path (a symlink's target's) as
// events carry it: handle type and bytes.
func handleKey(path string) (string, bool) {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return "", false
	}
	var t [4]byte
	binary.NativeEndian.PutUint32(t[:], uint32(h.Type()))
	return string(t[:]) + string(h.Bytes()), true
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

// procEntry is what /proc said of a pid, and when; pidfd (owned, or -1)
// is the process's, with which a later event of the pid is known to be
// that process's while it lives.
type procEntry struct {
	w     Writer
	at    time.Time
	pidfd int
}

// procTTL is how long what /proc said of a pid is reused: a writer
// writing many files is read once. Without a pidfd, a pid reused within
// it is unlikely; with one, the process is known to be the same.
const procTTL = 500 * time.Millisecond

// maxProcs bounds the /proc cache: with pidfds, each entry holds one
// open file.
const (
	maxProcs      = 4096
	maxProcsPidfd = 256
)

// proc describes the event's process, from the cache or /proc. With a
// pidfd, what /proc says is the event's process only if the pidfd still
// refers to a live (or zombie) process after the read: its pid cannot
// have been given to another process meanwhile. A process that had
// exited before the event was read (FAN_NOPIDFD), or that exits during
// the read, is reported as exited, with nothing but its pid; one whose
// pidfd could not be made (FAN_EPIDFD), as unknown. proc takes ev's
// pidfd when it caches it.
func (w *Writers) proc(ev *event, now time.Time) Writer {
	pid := ev.pid
	gone := false
	switch {
	case w.pidfd && ev.pidfd < 0:
		gone = ev.hadPidfd && ev.pidfd == unix.FAN_NOPIDFD
	default:
		w.mu.Lock()
		wr, ok := w.procs.get(pid, now)
		w.mu.Unlock()
		if ok {
			return wr
		}
		wr = ReadProc(pid)
		if !w.pidfd || alive(ev.pidfd) {
			w.mu.Lock()
			w.procs.put(pid, wr, now, ev.pidfd)
			w.mu.Unlock()
			ev.pidfd = -1 // the cache's now
			return wr
		}
		gone = true // /proc may have named the pid's next process
	}
	w.mu.Lock()
	if gone {
		w.stats.Exited++
	} else {
		w.stats.NoPidfd++
	}
	w.mu.Unlock()
	return Writer{Pid: pid, UID: -1, Exited: gone}
}

// procCache is what /proc said of pids, recently; with pidfds, each
// entry holds its process's.
type procCache struct {
	m     map[int]procEntry
	limit int
}

// get returns what /proc said of pid within procTTL, if its process
// is still the pid's.
func (c *procCache) get(pid int, now time.Time) (Writer, bool) {
	e, ok := c.m[pid]
	if !ok || now.Sub(e.at) >= procTTL || (e.pidfd >= 0 && !alive(e.pidfd)) {
		return Writer{}, false
	}
	return e.w, true
}

// put caches wr for pid, taking pidfd (or -1).
func (c *procCache) put(pid int, wr Writer, now time.Time, pidfd int) {
	c.forget(pid)
	if len(c.m) >= c.limit {
		for p, e := range c.m {
			if now.Sub(e.at) >= procTTL {
				c.forget(p)
			}
		}
		if len(c.m) >= c.limit {
			c.clear()
		}
	}
	c.m[pid] = procEntry{wr, now, pidfd}
}

// forget drops pid's entry, closing its pidfd.
func (c *procCache) forget(pid int) {
	if e, ok := c.m[pid]; ok {
		if e.pidfd >= 0 {
			closeFast(e.pidfd)
		}
		delete(c.m, pid)
	}
}

// clear drops every entry.
func (c *procCache) clear() {
	for p := range c.m {
		c.forget(p)
	}
}

// alive reports whether the pidfd's process has not been reaped (a
// zombie is alive: its pid is still its own).
func alive(pidfd int) bool {
	_, _, e := unix.RawSyscall6(unix.SYS_PIDFD_SEND_SIGNAL, uintptr(pidfd), 0, 0, 0, 0, 0)
	return e != unix.ESRCH
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

// quietMarks are ignore marks outside the root, on what is written again
// and again (a session store, a cache, a log elsewhere on the
// filesystem), so that the kernel stops reporting those writes to the
// group: the reader's cost is per event read, wherever the write was.
//
// A directory: after quietDirAfter content events of its files, the
// kernel is asked not to report its children's content events
// (FAN_MARK_IGNORE with FAN_EVENT_ON_CHILD, surviving modify, evictable:
// Linux 6.0, and only where the group reports the inode of a name that
// arrives, FAN_REPORT_TARGET_FID). Not a directory at or above the root,
// not the directory of a tracked file (Track), and never one with an
// entry of several names (the hard-link check, which reads its entries
// before the mark): a signed file linked from data/ is written through
// that name without an event under the install, and the group's event is
// the only one. A name of a tracked inode, or of one with several names,
// created or moved into a quiet directory (directory-entry events are
// never muted) makes it loud again before its inode is kicked, and a
// name of several links arriving in the root flushes every mark (its
// other name may be in a quiet directory). Subdirectories are not muted
// by their parent's mark (the kernel's ignore mark is of the directory's
// own entries).
//
// An inode: where its directory cannot be made quiet, after quietAfter
// events of one inode, its content events are ignored (evictable).
// Never an inode with several names (one may be at or below the root), a
// tracked one, or a directory.
//
// Track, and a directory moved into the root, remove every mark
// (FAN_MARK_FLUSH of the group's inode marks: its other marks are
// filesystem or mount marks).
type quietMarks struct {
	group, mountFD int
	root           string

	mu      sync.Mutex
	off     bool              // the kernel refused an inode's ignore mark: not tried again
	dirOff  bool              // no directory marks: refused by the kernel, or no FAN_REPORT_TARGET_FID
	seen    map[string]int    // inode key -> events dropped, since the last reset
	marked  map[string]bool   // inode keys made quiet
	count   uint64            // inode marks added
	after   uint64            // events of inodes already quiet (read before the mark took)
	dirSeen map[string]int    // directory key -> content events dropped in it
	dirs    map[string]uint64 // directory keys made quiet -> events in it read since (before the mark took)
	refused map[string]bool   // directories with an entry of several names (until a flush)
	keep    map[string]bool   // directories of tracked files: never quiet
	dirAdds uint64            // directory marks added
}

const (
	quietAfter    = 3     // events of one inode outside the root before it is made quiet
	quietDirAfter = 8     // content events in one directory outside the root before it is made quiet
	maxSeen       = 4096  // seen (dirSeen, refused) is reset when it holds as many
	maxQuiet      = 4096  // the marks are flushed when there are as many
	maxDirEntries = 16384 // a directory with more entries is not read for the hard-link check, nor made quiet
)

// quietMask is what a quiet inode's events are ignored for.
const quietMask = unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE | unix.FAN_ATTRIB

func newQuietMarks() *quietMarks {
	return &quietMarks{group: -1, mountFD: -1, seen: map[string]int{}, marked: map[string]bool{},
		dirSeen: map[string]int{}, dirs: map[string]uint64{}, refused: map[string]bool{}, keep: map[string]bool{}}
}

// flush removes every quiet mark.
func (q *quietMarks) flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.flushLocked()
}

func (q *quietMarks) flushLocked() {
	clear(q.refused)
	if len(q.marked) == 0 && len(q.dirs) == 0 {
		return
	}
	unix.FanotifyMark(q.group, unix.FAN_MARK_FLUSH, 0, unix.AT_FDCWD, "")
	clear(q.marked)
	clear(q.seen)
	clear(q.dirs)
	clear(q.dirSeen)
}

// track sets the directories never made quiet, and removes every mark.
func (q *quietMarks) track(keep map[string]bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.keep = keep
	q.flushLocked()
}

// added returns how many inode and directory marks were added.
func (q *quietMarks) added() (inodes, dirs uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count, q.dirAdds
}

// dropped counts a content event dropped on the inode obj in the
// directory dir at dirPath ("" if not known), outside the root,
// untracked, and makes the directory quiet after quietDirAfter, or else
// the inode after quietAfter.
func (q *quietMarks) dropped(obj, dir []byte, dirPath string) {
	if q.mountFD < 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.dirs[string(dir)]; ok && dir != nil {
		q.dirs[string(dir)]++
		return
	}
	if q.quietDir(dir, dirPath) {
		return
	}
	q.quietInode(obj)
}

// quietDir counts an event in dir and makes it quiet after
// quietDirAfter; it reports whether it is quiet.
func (q *quietMarks) quietDir(dir []byte, dirPath string) bool {
	if !q.mayQuietDir(dir, dirPath) {
		return false
	}
	if len(q.dirSeen) >= maxSeen {
		clear(q.dirSeen)
	}
	q.dirSeen[string(dir)]++
	if q.dirSeen[string(dir)] < quietDirAfter {
		return false
	}
	delete(q.dirSeen, string(dir))
	if len(q.marked)+len(q.dirs) >= maxQuiet {
		q.flushLocked()
	}
	err := q.markDir(dir)
	switch {
	case err == nil:
		q.dirs[string(dir)] = 0
		q.dirAdds++
		return true
	case errors.Is(err, errLinked):
		if len(q.refused) >= maxSeen {
			clear(q.refused)
		}
		q.refused[string(dir)] = true
	case kernelRefused(err):
		q.dirOff = true // an older kernel (FAN_MARK_IGNORE with FAN_EVENT_ON_CHILD: 6.0), or no room
	}
	return false
}

// mayQuietDir reports whether the directory dir at dirPath may be made
// quiet: not at or above the root, not a tracked file's, not found with
// an entry of several names.
func (q *quietMarks) mayQuietDir(dir []byte, dirPath string) bool {
	return dir != nil && dirPath != "" && !q.dirOff && !q.refused[string(dir)] && !q.keep[string(dir)] &&
		!below(q.root, dirPath) && !below(dirPath, q.root)
}

// kernelRefused: a directory's ignore mark refused as such (not for
// this directory only).
func kernelRefused(err error) bool {
	for _, e := range []error{unix.EINVAL, unix.EPERM, unix.ENOSPC, unix.ENOTDIR, unix.EISDIR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// quietInode counts an event of obj and makes it quiet after quietAfter.
func (q *quietMarks) quietInode(obj []byte) {
	if obj == nil {
		return
	}
	if q.marked[string(obj)] {
		q.after++
		return
	}
	if q.off {
		return
	}
	if len(q.seen) >= maxSeen {
		clear(q.seen)
	}
	q.seen[string(obj)]++
	if q.seen[string(obj)] < quietAfter {
		return
	}
	delete(q.seen, string(obj))
	if len(q.marked)+len(q.dirs) >= maxQuiet {
		q.flushLocked()
	}
	err := q.mark(obj, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORE_SURV|unix.FAN_MARK_EVICTABLE)
	switch {
	case errors.Is(err, errLinked):
	case err == nil:
		q.marked[string(obj)] = true
		q.count++
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC):
		q.off = true // an older kernel (FAN_MARK_IGNORE: 6.0), or no room
	}
}

// entered makes the inode of a name created or moved to at or below the
// root loud again, if it was quiet; if it has several names, one may be
// in a quiet directory: every mark goes.
func (q *quietMarks) entered(obj []byte) {
	if obj == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.dirs) > 0 && q.linked(obj) {
		q.flushLocked()
		return
	}
	if !q.marked[string(obj)] {
		return
	}
	delete(q.marked, string(obj))
	if q.mark(obj, unix.FAN_MARK_REMOVE|unix.FAN_MARK_IGNORE_SURV) != nil {
		q.flushLocked()
	}
}

// arrived handles a name created or moved to in the directory dir,
// outside the root, for the inode obj: a quiet directory is made loud
// again if the inode is tracked or has several names (one may be in the
// install), and is not made quiet again until a flush.
func (q *quietMarks) arrived(dir, obj []byte, tracked bool) {
	if dir == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.dirs[string(dir)]; !ok || (!tracked && !q.linked(obj)) {
		return
	}
	delete(q.dirs, string(dir))
	q.refused[string(dir)] = true
	fd, err := openHandle(q.mountFD, dir, unix.O_PATH)
	if err == nil {
		err = unix.FanotifyMark(q.group, unix.FAN_MARK_REMOVE|unix.FAN_MARK_IGNORE_SURV, quietMask|unix.FAN_EVENT_ON_CHILD, unix.AT_FDCWD, fdPath(fd))
		unix.Close(fd)
	}
	if err != nil {
		q.flushLocked()
	}
}

// gone forgets a directory removed.
func (q *quietMarks) gone(dir []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.dirs, string(dir))
	delete(q.dirSeen, string(dir))
	delete(q.refused, string(dir))
}

// linked reports whether the inode obj has several names, or may have
// (unknown inode, or it cannot be opened).
func (q *quietMarks) linked(obj []byte) bool {
	if obj == nil {
		return true
	}
	fd, err := openHandle(q.mountFD, obj, unix.O_PATH)
	if err != nil {
		return !errors.Is(err, unix.ESTALE) // gone: no name at all
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	return unix.Fstat(fd, &st) != nil || (st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink != 1)
}

// errLinked: an inode with several names, or a directory with an entry
// of several names (or too many entries to read), is never made quiet.
var errLinked = errors.New("fanotify: inode has several names")

// openHandle opens the inode of the handle key.
func openHandle(mountFD int, key []byte, flags int) (int, error) {
	h := unix.NewFileHandle(int32(binary.NativeEndian.Uint32(key)), key[4:])
	return unix.OpenByHandleAt(mountFD, h, flags|unix.O_CLOEXEC)
}

// fdPath names a descriptor: fanotify_mark takes no O_PATH descriptor
// as its object.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// mark adds or removes an ignore mark (quietMask) on the inode of the
// handle key.
func (q *quietMarks) mark(key []byte, flags uint) error {
	fd, err := openHandle(q.mountFD, key, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if flags&unix.FAN_MARK_ADD != 0 && (unix.Fstat(fd, &st) != nil || st.Nlink != 1) {
		// Another name may be at or below the root, where its writes
		// must be seen.
		return errLinked
	}
	return unix.FanotifyMark(q.group, flags, quietMask, unix.AT_FDCWD, fdPath(fd))
}

// markDir makes the directory of the handle key quiet, after the
// hard-link check: none of its entries but directories has several
// names. A name linked in after the check is seen arriving (arrived).
func (q *quietMarks) markDir(key []byte) error {
	fd, err := openHandle(q.mountFD, key, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unlinkedEntries(fd); err != nil {
		return err
	}
	return unix.FanotifyMark(q.group, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORE_SURV|unix.FAN_MARK_EVICTABLE,
		quietMask|unix.FAN_EVENT_ON_CHILD, unix.AT_FDCWD, fdPath(fd))
}

// unlinkedEntries reads the directory fd's entries: errLinked if one
// that is not a directory has several names (or cannot be looked at),
// or if there are more than maxDirEntries.
func unlinkedEntries(fd int) error {
	buf := make([]byte, 32<<10)
	n, names := 0, make([]string, 0, 256)
	for {
		got, err := unix.Getdents(fd, buf)
		if err != nil {
			return err
		}
		if got <= 0 {
			return nil
		}
		_, _, names = unix.ParseDirent(buf[:got], -1, names[:0])
		if n += len(names); n > maxDirEntries {
			return errLinked
		}
		for _, name := range names {
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue // removed meanwhile
				}
				return errLinked
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink != 1 {
				return errLinked
			}
		}
	}
}
