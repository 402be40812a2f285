package watch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// MountChange is a mount or unmount at or below one of the watched roots,
// or at one of their ancestors (then Point is not Root and not below it).
type MountChange struct {
	Point   string // mount point (absolute, unescaped: mountinfo escapes space, tab, newline, backslash as \040 etc.)
	Root    string // the watched root it is at or below (or above), as given to NewMountWatcher
	Mounted bool   // true: appeared; false: went away
	FSType  string // e.g. "tmpfs", "overlay", "ext4"
	Source  string // mount source
	ID      int    // mount ID
}

// MountWatcher reports mounts and unmounts at or below roots.
//
// A bind, tmpfs or overlay mount over a directory of the install hides the
// real files, and inotify sees nothing of it: no event is sent on either
// the hidden or the new tree. The kernel instead marks an open
// /proc/self/mountinfo with POLLPRI|POLLERR whenever the mount table of
// the process's mount namespace changes (proc(5)). Run blocks in poll(2)
// on it, reads the whole table again after each change and reports the
// difference, keyed by mount ID: a mount ID reused by another mount, or a
// mount moved elsewhere (mount --move), is an unmount and a mount. A
// remount (new options, same mount) is not reported.
//
// "At or below a root" is path-component aware: /srv/nc2 is not below
// /srv/nc. A mount at an ancestor of a root (a mount on /srv over
// /srv/nc) is reported too, with Root set to that root, since it changes
// what the root resolves to; Current leaves those out, since every root
// lies below at least the mount of "/". A root is matched both as given
// (made absolute) and with its symlinks resolved, as the kernel lists
// mount points with symlinks resolved. A mount that concerns several
// roots (nested roots, or an ancestor of several) is reported once per
// root.
//
// A MountWatcher sees the mount namespace (and root directory) of its own
// process only: a mount made in another namespace that does not
// propagate into this one is not seen. A mount that appears and goes
// away again between two reads of the table is not seen either.
type MountWatcher struct {
	path  string // the mountinfo file, for errors
	fd    int    // the open mountinfo file, polled for POLLPRI
	wake  int    // eventfd that wakes Run: its context is done, or Close
	roots []mountRoot

	mu      sync.Mutex
	table   map[int]mountEntry // the last table read
	bad     int                // lines skipped in the last table read
	closed  bool
	closing chan struct{} // closed by Close
	running bool
	exited  chan struct{} // closed when the running Run returns

	buf     []byte       // Run's read buffer
	wakeups atomic.Int64 // times poll returned (an idle watcher must not wake)
}

// mountRoot is a watched root.
type mountRoot struct {
	name  string   // as given: MountChange.Root
	paths []string // absolute and clean; and with symlinks resolved when that differs
}

// mountEntry is one line of mountinfo.
type mountEntry struct {
	ID, Parent int
	Dev        string // major:minor of the filesystem
	Root       string // the directory of that filesystem mounted here (a bind mount's source)
	Point      string // absolute, clean, unescaped
	FSType     string
	Source     string // may be empty
}

// same reports whether e and o are the same mount at the same place:
// a differing entry under one ID is an ID reused, or a mount moved.
func (e mountEntry) same(o mountEntry) bool {
	return e.Point == o.Point && e.Dev == o.Dev && e.Root == o.Root && e.FSType == o.FSType && e.Source == o.Source
}

// defaultMountinfo is the table of the process's own mount namespace.
const defaultMountinfo = "/proc/self/mountinfo"

// maxMountinfo bounds one read of the mount table (a host with 10,000
// mounts has about 2 MB of it).
const maxMountinfo = 64 << 20

// errMountsClosed is what Run returns after Close.
var errMountsClosed = errors.New("mount watcher closed")

// NewMountWatcher opens /proc/self/mountinfo (path is a parameter for
// tests: "" means /proc/self/mountinfo) and reads the current table. A
// relative root is made absolute.
func NewMountWatcher(path string, roots []string) (*MountWatcher, error) {
	if path == "" {
		path = defaultMountinfo
	}
	rs := make([]mountRoot, 0, len(roots))
	for _, r := range roots {
		if r == "" {
			return nil, errors.New("mount watcher: empty root")
		}
		abs, err := filepath.Abs(r)
		if err != nil {
			return nil, fmt.Errorf("mount watcher: root %s: %v", r, err)
		}
		mr := mountRoot{name: r, paths: []string{abs}}
		if res, err := filepath.EvalSymlinks(abs); err == nil && res != abs {
			mr.paths = append(mr.paths, res)
		}
		rs = append(rs, mr)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	m := &MountWatcher{path: path, fd: fd, wake: wake, roots: rs, closing: make(chan struct{})}
	// The kernel noted the table's generation at open: a change from now
	// on, even before this first read, makes the next poll return.
	table, bad, err := m.readTable()
	if err != nil {
		unix.Close(fd)
		unix.Close(wake)
		return nil, err
	}
	m.table, m.bad = table, bad
	return m, nil
}

// Current returns the mounts at or below the roots now (for the daemon's
// start: a mount already over a signed directory is reported too), as of
// the last read of the table: NewMountWatcher's, then Run's, which sends
// what changed after updating it. Mounts at the roots' ancestors are not
// listed. Sorted by mount ID; every change has Mounted set.
func (m *MountWatcher) Current() []MountChange {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []MountChange
	for _, id := range sortedIDs(m.table) {
		e := m.table[id]
		for _, r := range m.roots {
			if at, _ := r.relation(e.Point); at {
				out = append(out, e.change(r.name, true))
			}
		}
	}
	return out
}

// BadLines returns the number of lines of the last table read that could
// not be parsed, and were skipped (none, from a kernel).
func (m *MountWatcher) BadLines() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bad
}

// Run polls until ctx is done or the watcher is closed, and sends the
// changes of the table on out (unmounts first, then mounts, each by mount
// ID); it returns ctx.Err(), a read error, or an error after Close. At
// most one Run runs at a time.
//
// It blocks in poll(2) without a timeout, on the mountinfo file
// (POLLPRI) and on an eventfd that a context.AfterFunc and Close write
// to: an idle watcher never wakes, and cancellation is seen at once.
// Sending on out blocks until the consumer takes the change (or ctx is
// done); changes meanwhile wait in the kernel's table, read afterwards.
func (m *MountWatcher) Run(ctx context.Context, out chan<- MountChange) error {
	if err := m.begin(); err != nil {
		return err
	}
	defer m.end()
	drainEventfd(m.wake) // a previous Run's context may have written
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(woken)
		signalEventfd(m.wake)
	})
	defer func() { // before m.exited is closed: Close closes m.wake after that
		if !stop() {
			<-woken
		}
	}()

	fds := []unix.PollFd{
		{Fd: int32(m.fd), Events: unix.POLLPRI},
		{Fd: int32(m.wake), Events: unix.POLLIN},
	}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) { // the Go runtime's preemption signals
				continue
			}
			return &os.PathError{Op: "poll", Path: m.path, Err: err}
		}
		m.wakeups.Add(1)
		if fds[1].Revents != 0 {
			if err := m.woken(ctx); err != nil {
				return err
			}
			continue
		}
		changed, err := m.tableEvent(fds[0].Revents)
		if err != nil {
			return err
		}
		if changed {
			if err := m.reread(ctx, out); err != nil {
				return err
			}
		}
	}
}

// begin marks Run running, or says why it cannot run.
func (m *MountWatcher) begin() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return errMountsClosed
	case m.running:
		return errors.New("mount watcher: Run is already running")
	}
	m.running, m.exited = true, make(chan struct{})
	return nil
}

// end marks Run returned.
func (m *MountWatcher) end() {
	m.mu.Lock()
	m.running = false
	close(m.exited)
	m.mu.Unlock()
}

// woken handles a write to the eventfd: ctx's error or errMountsClosed
// when Run is to return, else nil (a previous context's wake-up).
func (m *MountWatcher) woken(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-m.closing:
		return errMountsClosed
	default:
	}
	drainEventfd(m.wake)
	return nil
}

// tableEvent tells what poll's revents on the mountinfo file mean: the
// table changed, nothing, or an error.
func (m *MountWatcher) tableEvent(ev int16) (bool, error) {
	switch {
	case ev&unix.POLLNVAL != 0:
		return false, &os.PathError{Op: "poll", Path: m.path, Err: unix.EBADF}
	case ev&unix.POLLHUP != 0: // not from mountinfo; would wake forever
		return false, &os.PathError{Op: "poll", Path: m.path, Err: errors.New("hang up")}
	}
	return ev&(unix.POLLPRI|unix.POLLERR) != 0, nil
}

// reread reads the table again and sends what changed on out.
func (m *MountWatcher) reread(ctx context.Context, out chan<- MountChange) error {
	table, bad, err := m.readTable()
	if err != nil {
		return err
	}
	m.mu.Lock()
	old := m.table
	m.table, m.bad = table, bad
	m.mu.Unlock()
	for _, c := range mountDiff(old, table, m.roots) {
		select {
		case out <- c:
		case <-ctx.Done():
			return ctx.Err()
		case <-m.closing:
			return errMountsClosed
		}
	}
	return nil
}

// Close stops a running Run (it returns an error) and releases the file.
func (m *MountWatcher) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.closing)
	running, exited := m.running, m.exited
	if running {
		signalEventfd(m.wake)
	}
	m.mu.Unlock()
	if running {
		<-exited
	}
	err := unix.Close(m.fd)
	if werr := unix.Close(m.wake); err == nil {
		err = werr
	}
	if err != nil {
		return &os.PathError{Op: "close", Path: m.path, Err: err}
	}
	return nil
}

func signalEventfd(fd int) {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(fd, one[:]) // EAGAIN only when the counter is full: it is readable then
}

func drainEventfd(fd int) {
	var b [8]byte
	unix.Read(fd, b[:]) // non-blocking: EAGAIN when there was nothing
}

// readTable reads the whole table from the start. NewMountWatcher and
// Run call it, never at the same time.
func (m *MountWatcher) readTable() (map[int]mountEntry, int, error) {
	if _, err := unix.Seek(m.fd, 0, io.SeekStart); err != nil {
		return nil, 0, &os.PathError{Op: "seek", Path: m.path, Err: err}
	}
	buf := m.buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, 64<<10)...)[:len(buf)]
		}
		n, err := unix.Read(m.fd, buf[len(buf):cap(buf)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, 0, &os.PathError{Op: "read", Path: m.path, Err: err}
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
		if len(buf) > maxMountinfo {
			return nil, 0, &os.PathError{Op: "read", Path: m.path, Err: fmt.Errorf("mount table larger than %d bytes", maxMountinfo)}
		}
	}
	m.buf = buf
	table, bad := parseMountinfo(buf)
	return table, bad, nil
}

// parseMountinfo parses a mount table; it returns the entries by mount ID
// and the number of lines it skipped: lines that are not mountinfo, and
// lines whose mount ID came already.
func parseMountinfo(data []byte) (map[int]mountEntry, int) {
	table := map[int]mountEntry{}
	bad := 0
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		e, ok := parseMountLine(string(line))
		if !ok {
			bad++
			continue
		}
		if _, dup := table[e.ID]; dup {
			bad++
			continue
		}
		table[e.ID] = e
	}
	return table, bad
}

// parseMountLine parses one line of mountinfo (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// mount ID, parent ID, major:minor, root, mount point, mount options,
// optional fields (zero or more) ended by "-", filesystem type, mount
// source (may be empty), super options. Fields are separated by single
// spaces; the kernel escapes space, tab, newline and backslash in them.
func parseMountLine(line string) (mountEntry, bool) {
	f := strings.Split(line, " ")
	if len(f) < 10 {
		return mountEntry{}, false
	}
	sep := mountSeparator(f)
	if sep < 0 || len(f)-sep-1 < 3 {
		return mountEntry{}, false
	}
	id, parent, ok := mountIDs(f)
	if !ok || f[3] == "" || f[5] == "" || f[sep+1] == "" {
		return mountEntry{}, false
	}
	point := unescapeMount(f[4])
	if !strings.HasPrefix(point, "/") {
		return mountEntry{}, false
	}
	return mountEntry{
		ID:     id,
		Parent: parent,
		Dev:    f[2],
		Root:   unescapeMount(f[3]), // not always a path: "net:[4026532282]" for a namespace
		Point:  path.Clean(point),
		FSType: unescapeMount(f[sep+1]),
		Source: unescapeMount(f[sep+2]),
	}, true
}

// mountSeparator returns the index of the "-" that ends a mountinfo
// line's optional fields, or -1 (none, or an empty optional field).
func mountSeparator(f []string) int {
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			return i
		}
		if f[i] == "" { // optional fields are tag[:value]
			return -1
		}
	}
	return -1
}

// mountIDs parses a mountinfo line's mount ID and parent ID, and checks
// its major:minor.
func mountIDs(f []string) (id, parent int, ok bool) {
	i, err1 := strconv.ParseUint(f[0], 10, 31)
	p, err2 := strconv.ParseUint(f[1], 10, 31)
	major, minor, ok := strings.Cut(f[2], ":")
	_, err3 := strconv.ParseUint(major, 10, 32)
	_, err4 := strconv.ParseUint(minor, 10, 32)
	if err1 != nil || err2 != nil || !ok || err3 != nil || err4 != nil {
		return 0, 0, false
	}
	return int(i), int(p), true
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space). A
// backslash not followed by three octal digits (the kernel writes its own
// as \134) is kept as it is.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// below reports whether p is dir or lies below it, by path components.
func below(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// relation tells whether a mount point is at or below the root (at), or
// else at one of its ancestors (above).
func (r mountRoot) relation(point string) (at, above bool) {
	for _, p := range r.paths {
		if below(point, p) {
			return true, false
		}
	}
	for _, p := range r.paths {
		if below(p, point) {
			above = true
		}
	}
	return false, above
}

func (e mountEntry) change(root string, mounted bool) MountChange {
	return MountChange{Point: e.Point, Root: root, Mounted: mounted, FSType: e.FSType, Source: e.Source, ID: e.ID}
}

// mountDiff returns what changed from table old to table cur that
// concerns the roots: unmounts first, then mounts, each by mount ID and
// then in the order of the roots.
func mountDiff(old, cur map[int]mountEntry, roots []mountRoot) []MountChange {
	var gone, came []MountChange
	report := func(into *[]MountChange, e mountEntry, mounted bool) {
		for _, r := range roots {
			if at, above := r.relation(e.Point); at || above {
				*into = append(*into, e.change(r.name, mounted))
			}
		}
	}
	for _, id := range sortedIDs(old) {
		if n, ok := cur[id]; !ok || !n.same(old[id]) {
			report(&gone, old[id], false)
		}
	}
	for _, id := range sortedIDs(cur) {
		if o, ok := old[id]; !ok || !o.same(cur[id]) {
			report(&came, cur[id], true)
		}
	}
	return append(gone, came...)
}

func sortedIDs(t map[int]mountEntry) []int {
	ids := make([]int, 0, len(t))
	for id := range t {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}
