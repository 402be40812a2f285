package watch

import (
	"cmp"
	"regexp"
	"strings"
	"time"
)

// Writer is who made a change, as /proc told it when the event was read.
// The process may be gone by then: what could not be read is zero (Comm,
// Exe, Unit "") or -1 (UID).
type Writer struct {
	Pid  int
	Comm string
	Exe  string
	UID  int
	Unit string // systemd unit or scope, or "docker:<id>", "libpod:<id>", "containerd:<id>"
	Op   string // what was done: "modify", "close_write", "create", "moved_to", "delete", "attrib"
	When time.Time
	// Execed: the process ran another program (execve) after the event
	// and maybe before /proc was read; Comm, Exe and UID are then left
	// unknown, since what /proc says now is not who wrote.
	Execed bool
	// Exited: the process had exited before its event was read, or
	// exited while /proc was read (the kernel's pidfd of it says so):
	// only Pid is known, since what /proc says of that pid now may be
	// another process's.
	Exited bool
}

// WritersStats counts what a Writers did.
type WritersStats struct {
	Events     uint64 // events read
	Recorded   uint64 // events recorded (unresolvable ones are not)
	Unresolved uint64 // events whose directory handle could not be opened
	Overflow   uint64 // FAN_Q_OVERFLOW: the kernel dropped events
	Late       uint64 // lookups that answered before Run had read the queue (lookupWait)
	Dropped    uint64 // events outside the root on an untracked inode, dropped unread
	Reads      uint64 // reads of the queue (Run gathers events for a while before it reads)
	Exited     uint64 // writers found exited before /proc could be tied to them (pidfd)
	NoPidfd    uint64 // writers unknown: the kernel could not make a pidfd (FAN_EPIDFD)
	Quiet      uint64 // inodes outside the root made quiet (ignore marks), see quietMarks
	QuietDirs  uint64 // directories outside the root made quiet (their files' content events ignored), see quietMarks
}

// containerRe finds a container id in a cgroup path component: docker's
// and podman's scopes (docker-<id>.scope, libpod-<id>.scope,
// cri-containerd-<id>.scope) and cgroupfs-driver paths (/docker/<id>).
var containerRe = regexp.MustCompile(`^(?:(docker|libpod|cri-containerd|crio)-)?([0-9a-f]{64})(?:\.scope)?$`)

// UnitOf returns the systemd unit or container of a /proc/PID/cgroup
// text: a container id ("docker:<12 hex>") where one is in the path, else
// the last component ending in .service or .scope, else "".
func UnitOf(cgroup string) string {
	comps := strings.Split(cgroupPath(cgroup), "/")
	if c, ok := containerOf(comps); ok {
		return c
	}
	for i := len(comps) - 1; i >= 0; i-- {
		if strings.HasSuffix(comps[i], ".service") || strings.HasSuffix(comps[i], ".scope") {
			return comps[i]
		}
	}
	return ""
}

// cgroupPath picks the path of a /proc/PID/cgroup text: cgroup v2's line
// ("0::path") wins, unless it is the root (a hybrid setup), then v1's
// name=systemd hierarchy, then any.
func cgroupPath(cgroup string) string {
	var v2, v1, first string
	for line := range strings.SplitSeq(cgroup, "\n") {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		// A writer that has exited (a zombie, or one whose unit has
		// ended) still names its cgroup, marked " (deleted)" on v2
		// once systemd has removed it: a web shell's short-lived sh.
		parts[2] = strings.TrimSuffix(parts[2], " (deleted)")
		switch {
		case parts[0] == "0" && parts[1] == "" && parts[2] != "/":
			v2 = parts[2]
		case parts[1] == "name=systemd":
			v1 = parts[2]
		case first == "":
			first = parts[2]
		}
	}
	return cmp.Or(v2, v1, first)
}

// containerOf finds the innermost container id in a cgroup path's
// components: "docker:<12 hex>", "libpod:…", "containerd:…", "crio:…".
func containerOf(comps []string) (string, bool) {
	for i := len(comps) - 1; i >= 0; i-- {
		m := containerRe.FindStringSubmatch(comps[i])
		if m == nil {
			continue
		}
		kind := m[1]
		switch kind {
		case "", "docker":
			kind = "docker"
			if i > 0 && (comps[i-1] == "libpod" || strings.HasPrefix(comps[i-1], "machine-libpod")) {
				kind = "libpod"
			}
		case "cri-containerd":
			kind = "containerd"
		}
		return kind + ":" + m[2][:12], true
	}
	return "", false
}

// ring is a fixed-size map of the latest entries: a key written again
// moves to the front, and the oldest key is dropped when it is full.
type ring struct {
	slots []ringSlot
	index map[string]int
	next  int
}

type ringSlot struct {
	key string
	w   Writer
}

func newRing(n int) ring {
	return ring{slots: make([]ringSlot, n), index: make(map[string]int, n)}
}

func (r *ring) put(key string, w Writer) {
	if old, ok := r.index[key]; ok {
		r.slots[old] = ringSlot{}
	}
	s := &r.slots[r.next]
	if s.key != "" && r.index[s.key] == r.next {
		delete(r.index, s.key)
	}
	*s = ringSlot{key, w}
	r.index[key] = r.next
	r.next = (r.next + 1) % len(r.slots)
}

func (r *ring) get(key string) (Writer, bool) {
	i, ok := r.index[key]
	if !ok {
		return Writer{}, false
	}
	return r.slots[i].w, true
}

// update changes the entry of key in place, if there is one.
func (r *ring) update(key string, f func(*Writer)) {
	if i, ok := r.index[key]; ok {
		f(&r.slots[i].w)
	}
}

func (r *ring) reset() {
	clear(r.slots)
	clear(r.index)
	r.next = 0
}

func (r *ring) len() int { return len(r.index) }
