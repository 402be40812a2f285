package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/integrityd/integrityd/internal/mountns"
)

// mountWait bounds every wait for an expected mount change: a hang guard
// (the machine is shared and slow under -race), never a speed target.
const mountWait = 2 * time.Minute

// mountinfoSamples are mount tables, real lines as the kernel wrote them
// (captured on a 6.18 kernel in mount namespaces made for it) unless said.
var mountinfoSamples = map[string]string{
	// A whole table, without optional fields (PID 1 is not systemd).
	"host": `22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334192k,nr_inodes=3083548,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683584k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683584k
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`,
	// Mount points and sources with a space, a tab, a backslash and a
	// newline, and an empty source (mount -t tmpfs "" DIR).
	"escaped": `66 46 0:40 / /tmp/micap/a\040b rw,relatime - tmpfs my\040src rw
67 46 0:41 / /tmp/micap/tab\011x rw,relatime - tmpfs integrityd rw,size=1024k,mode=755
68 46 0:42 / /tmp/micap/empty rw,relatime - tmpfs  rw
69 46 0:40 / /tmp/micap/back\134slash rw,relatime - tmpfs my\040src rw
90 70 0:40 / /tmp/micap/nl\012line rw,relatime - tmpfs nl\012src rw
`,
	// shared:, master:, unbindable, a namespace file bind-mounted (its
	// root is not a path), proc(5)'s example line, and (written by hand,
	// in the form proc(5) documents) master: with propagate_from:.
	"optional": `70 46 0:43 / /tmp/micap/shared rw,relatime shared:1 - tmpfs shared-src rw
71 46 0:43 / /tmp/micap/bind rw,relatime master:1 - tmpfs shared-src rw
72 70 0:44 / /tmp/micap/shared/sub rw,relatime shared:2 - tmpfs sub rw
73 71 0:44 / /tmp/micap/bind/sub rw,relatime shared:2 - tmpfs sub rw
36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
46 45 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
69 68 254:0 / / rw,relatime master:1 - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
66 46 0:4 net:[4026532179] /tmp/micap/netns rw shared:21 - nsfs nsfs rw
67 46 0:40 / /tmp/micap/u rw,relatime unbindable - tmpfs u rw
75 46 0:43 / /tmp/micap/slave rw,relatime master:3 propagate_from:1 - tmpfs shared-src rw
`,
	// An overlay (long super options) and a bind mount of a
	// subdirectory (its root is that directory).
	"bind-overlay": `76 46 0:45 / /tmp/micap/ov/merged rw,relatime - overlay overlay rw,lowerdir=/tmp/micap/ov/lower,upperdir=/tmp/micap/ov/upper,workdir=/tmp/micap/ov/work,uuid=on
91 70 254:0 /tmp/micap/src/dir /tmp/micap/sub rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
`,
	// Written by hand: two good lines around bad ones.
	"garbage": strings.Join([]string{
		"100 46 0:50 / /srv/nc rw,relatime - tmpfs good-first rw",
		"",                  // empty
		"not a mount table", // too few fields
		"101 46 0:51 / /srv/nc/a rw,relatime shared:1 tmpfs src rw x y", // no separator
		"x1 46 0:51 / /srv/nc/a rw,relatime - tmpfs src rw",             // id not a number
		"-5 46 0:51 / /srv/nc/a rw,relatime - tmpfs src rw",             // negative id
		"+5 46 0:51 / /srv/nc/a rw,relatime - tmpfs src rw",             // signed id
		"102 46 0-51 / /srv/nc/a rw,relatime - tmpfs src rw",            // bad major:minor
		"103 46 0:51 / srv/nc/a rw,relatime - tmpfs src rw",             // relative mount point
		"104 46 0:51 / /srv/nc/a rw,relatime - tmpfs src",               // super options missing
		"105 46 0:51 / /srv/nc/a rw,relatime  - tmpfs src rw",           // empty optional field
		"106 46 0:51 / /srv/nc/a rw,rel",                                // truncated
		"100 46 0:52 / /srv/nc/dup rw,relatime - tmpfs dup rw",          // duplicate id
		"\x01\xff\xfe \x00\x00 - - - -",                                 // binary junk
		"107 46 0:53 / /srv/nc/b rw - tmpfs good-last rw",
	}, "\n") + "\n",
}

// mountinfoFile writes a sample to a file of its own.
func mountinfoFile(t *testing.T, name string) string {
	t.Helper()
	data, ok := mountinfoSamples[name]
	if !ok {
		t.Fatalf("no sample %s", name)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseMountinfo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file    string
		entries int // lines parsed
		bad     int // lines skipped
		want    []mountEntry
	}{
		// A whole table as a kernel writes it, without optional fields
		// (the machine's PID 1 is not systemd).
		{file: "host", entries: 19, want: []mountEntry{
			{ID: 27, Parent: 1, Dev: "254:0", Root: "/", Point: "/", FSType: "ext4", Source: "/dev/vda"},
			{ID: 25, Parent: 24, Dev: "0:23", Root: "/", Point: "/dev/shm", FSType: "tmpfs", Source: "tmpfs"},
			{ID: 41, Parent: 31, Dev: "0:38", Root: "/", Point: "/sys/fs/cgroup/unified", FSType: "cgroup2", Source: "cgroup2"},
		}},
		// Mount points and sources with a space, a tab, a backslash and
		// a newline, and an empty source (mount -t tmpfs "" DIR).
		{file: "escaped", entries: 5, want: []mountEntry{
			{ID: 66, Parent: 46, Dev: "0:40", Root: "/", Point: "/tmp/micap/a b", FSType: "tmpfs", Source: "my src"},
			{ID: 67, Parent: 46, Dev: "0:41", Root: "/", Point: "/tmp/micap/tab\tx", FSType: "tmpfs", Source: "integrityd"},
			{ID: 68, Parent: 46, Dev: "0:42", Root: "/", Point: "/tmp/micap/empty", FSType: "tmpfs", Source: ""},
			{ID: 69, Parent: 46, Dev: "0:40", Root: "/", Point: `/tmp/micap/back\slash`, FSType: "tmpfs", Source: "my src"},
			{ID: 90, Parent: 70, Dev: "0:40", Root: "/", Point: "/tmp/micap/nl\nline", FSType: "tmpfs", Source: "nl\nsrc"},
		}},
		// shared:, master:, unbindable, a namespace file bind-mounted
		// (its root is not a path), proc(5)'s example, and master: with
		// propagate_from: in the form proc(5) documents.
		{file: "optional", entries: 10, want: []mountEntry{
			{ID: 70, Parent: 46, Dev: "0:43", Root: "/", Point: "/tmp/micap/shared", FSType: "tmpfs", Source: "shared-src"},
			{ID: 71, Parent: 46, Dev: "0:43", Root: "/", Point: "/tmp/micap/bind", FSType: "tmpfs", Source: "shared-src"},
			{ID: 36, Parent: 35, Dev: "98:0", Root: "/mnt1", Point: "/mnt2", FSType: "ext3", Source: "/dev/root"},
			{ID: 66, Parent: 46, Dev: "0:4", Root: "net:[4026532179]", Point: "/tmp/micap/netns", FSType: "nsfs", Source: "nsfs"},
			{ID: 67, Parent: 46, Dev: "0:40", Root: "/", Point: "/tmp/micap/u", FSType: "tmpfs", Source: "u"},
			{ID: 75, Parent: 46, Dev: "0:43", Root: "/", Point: "/tmp/micap/slave", FSType: "tmpfs", Source: "shared-src"},
		}},
		// An overlay (long super options) and a bind mount of a
		// subdirectory (its root is that directory).
		{file: "bind-overlay", entries: 2, want: []mountEntry{
			{ID: 76, Parent: 46, Dev: "0:45", Root: "/", Point: "/tmp/micap/ov/merged", FSType: "overlay", Source: "overlay"},
			{ID: 91, Parent: 70, Dev: "254:0", Root: "/tmp/micap/src/dir", Point: "/tmp/micap/sub", FSType: "ext4", Source: "/dev/vda"},
		}},
		// Good lines around bad ones: empty, too short, no separator,
		// ids that are not plain numbers, a bad major:minor, a relative
		// mount point, a missing field, an empty optional field, a
		// truncated line, a duplicate id (the first one stays) and
		// binary junk.
		{file: "garbage", entries: 2, bad: 13, want: []mountEntry{
			{ID: 100, Parent: 46, Dev: "0:50", Root: "/", Point: "/srv/nc", FSType: "tmpfs", Source: "good-first"},
			{ID: 107, Parent: 46, Dev: "0:53", Root: "/", Point: "/srv/nc/b", FSType: "tmpfs", Source: "good-last"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			table, bad := parseMountinfo([]byte(mountinfoSamples[tt.file]))
			if len(table) != tt.entries || bad != tt.bad {
				t.Errorf("got %d entries and %d bad lines, want %d and %d", len(table), bad, tt.entries, tt.bad)
			}
			for _, w := range tt.want {
				if got, ok := table[w.ID]; !ok {
					t.Errorf("mount %d: missing", w.ID)
				} else if got != w {
					t.Errorf("mount %d:\n got %+v\nwant %+v", w.ID, got, w)
				}
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`/srv/nc`, `/srv/nc`},
		{`/a\040b`, `/a b`},
		{`/a\011b\012c\134d`, "/a\tb\nc\\d"},
		{`\040\040`, `  `},
		{`/a\04`, `/a\04`},       // too short: kept
		{`/a\`, `/a\`},           // at the end
		{`/a\400`, `/a\400`},     // more than a byte
		{`/a\08x`, `/a\08x`},     // not octal
		{`/a\\040`, `/a\ `},      // a lone backslash, then an escape
		{`/\303\251`, "/\u00e9"}, // UTF-8 bytes
	}
	for _, tt := range tests {
		if got := unescapeMount(tt.in); got != tt.want {
			t.Errorf("unescapeMount(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// escapeMount escapes as the kernel does in mountinfo.
func escapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func formatMountLine(e mountEntry) string {
	return fmt.Sprintf("%d %d %s %s %s rw,relatime - %s %s rw",
		e.ID, e.Parent, e.Dev, escapeMount(e.Root), escapeMount(e.Point), escapeMount(e.FSType), escapeMount(e.Source))
}

// FuzzParseMountinfo: any input parses without panicking, every entry has
// an absolute clean mount point, no line is both counted and skipped, and
// an entry written back as the kernel would write it parses to itself.
func FuzzParseMountinfo(f *testing.F) {
	for _, data := range mountinfoSamples {
		f.Add([]byte(data))
		for _, line := range strings.Split(data, "\n") {
			f.Add([]byte(line))
		}
	}
	roots := []mountRoot{{name: "/srv/nc", paths: []string{"/srv/nc"}}, {name: "/", paths: []string{"/"}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		table, bad := parseMountinfo(data)
		lines := bytes.Count(data, []byte("\n"))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			lines++
		}
		if len(table)+bad != lines {
			t.Fatalf("%d entries + %d bad lines, but %d lines", len(table), bad, lines)
		}
		for id, e := range table {
			if e.ID != id || id < 0 {
				t.Fatalf("entry %+v under id %d", e, id)
			}
			if !strings.HasPrefix(e.Point, "/") || path.Clean(e.Point) != e.Point {
				t.Fatalf("mount point %q is not absolute and clean", e.Point)
			}
			line := formatMountLine(e)
			again, ok := parseMountLine(line)
			if !ok || again != e {
				t.Fatalf("%+v written as %q parses to %+v (%v)", e, line, again, ok)
			}
		}
		mountDiff(nil, table, roots)
		mountDiff(table, nil, roots)
	})
}

func TestMountDiff(t *testing.T) {
	t.Parallel()
	nc := mountRoot{name: "/srv/nc", paths: []string{"/srv/nc"}}
	apps := mountRoot{name: "/srv/nc/apps", paths: []string{"/srv/nc/apps"}}
	linked := mountRoot{name: "/var/www/nc", paths: []string{"/var/www/nc", "/data/www/nc"}}
	slash := mountRoot{name: "/", paths: []string{"/"}}
	ent := func(id int, point string) mountEntry {
		return mountEntry{ID: id, Parent: 1, Dev: "0:99", Root: "/", Point: point, FSType: "tmpfs", Source: "x"}
	}
	table := func(es ...mountEntry) map[int]mountEntry {
		m := map[int]mountEntry{}
		for _, e := range es {
			m[e.ID] = e
		}
		return m
	}
	ch := func(id int, point, root string, mounted bool) MountChange {
		return MountChange{Point: point, Root: root, Mounted: mounted, FSType: "tmpfs", Source: "x", ID: id}
	}
	reparented := ent(7, "/srv/nc/apps")
	reparented.Parent = 2
	base := table(ent(1, "/"), ent(2, "/srv"))
	with := func(es ...mountEntry) map[int]mountEntry {
		m := table(es...)
		for id, e := range base {
			m[id] = e
		}
		return m
	}
	tests := []struct {
		name     string
		roots    []mountRoot
		old, cur map[int]mountEntry
		want     []MountChange
	}{
		{"nothing", []mountRoot{nc}, base, base, nil},
		{"tmpfs below", []mountRoot{nc}, base, with(ent(7, "/srv/nc/apps")), []MountChange{ch(7, "/srv/nc/apps", "/srv/nc", true)}},
		{"at the root", []mountRoot{nc}, base, with(ent(7, "/srv/nc")), []MountChange{ch(7, "/srv/nc", "/srv/nc", true)}},
		{"unmount", []mountRoot{nc}, with(ent(7, "/srv/nc/apps")), base, []MountChange{ch(7, "/srv/nc/apps", "/srv/nc", false)}},
		{"sibling", []mountRoot{nc}, base, with(ent(7, "/srv/nc2"), ent(8, "/srv/nc2/apps")), nil},
		{"outside", []mountRoot{nc}, base, with(ent(7, "/mnt"), ent(8, "/srv/other")), nil},
		{"ancestor", []mountRoot{nc}, table(ent(1, "/")), base, []MountChange{ch(2, "/srv", "/srv/nc", true)}},
		{"ancestor gone", []mountRoot{nc}, base, table(ent(1, "/")), []MountChange{ch(2, "/srv", "/srv/nc", false)}},
		{"id reused", []mountRoot{nc}, with(ent(7, "/srv/nc/a")), with(ent(7, "/srv/nc/b")),
			[]MountChange{ch(7, "/srv/nc/a", "/srv/nc", false), ch(7, "/srv/nc/b", "/srv/nc", true)}},
		{"moved away", []mountRoot{nc}, with(ent(7, "/srv/nc/a")), with(ent(7, "/mnt/a")), []MountChange{ch(7, "/srv/nc/a", "/srv/nc", false)}},
		{"moved in", []mountRoot{nc}, with(ent(7, "/mnt/a")), with(ent(7, "/srv/nc/a")), []MountChange{ch(7, "/srv/nc/a", "/srv/nc", true)}},
		{"same mount, new parent", []mountRoot{nc}, with(ent(7, "/srv/nc/apps")), with(reparented), nil},
		{"unmounts first, by id", []mountRoot{nc}, with(ent(9, "/srv/nc/z"), ent(8, "/srv/nc/y")), with(ent(3, "/srv/nc/b"), ent(4, "/srv/nc/a")),
			[]MountChange{ch(8, "/srv/nc/y", "/srv/nc", false), ch(9, "/srv/nc/z", "/srv/nc", false), ch(3, "/srv/nc/b", "/srv/nc", true), ch(4, "/srv/nc/a", "/srv/nc", true)}},
		{"nested roots", []mountRoot{nc, apps}, base, with(ent(7, "/srv/nc/apps/x")),
			[]MountChange{ch(7, "/srv/nc/apps/x", "/srv/nc", true), ch(7, "/srv/nc/apps/x", "/srv/nc/apps", true)}},
		{"above one, below another", []mountRoot{nc, apps}, base, with(ent(7, "/srv/nc")),
			[]MountChange{ch(7, "/srv/nc", "/srv/nc", true), ch(7, "/srv/nc", "/srv/nc/apps", true)}},
		{"resolved root", []mountRoot{linked}, base, with(ent(7, "/data/www/nc/core")), []MountChange{ch(7, "/data/www/nc/core", "/var/www/nc", true)}},
		{"above the symlink", []mountRoot{linked}, base, with(ent(7, "/var")), []MountChange{ch(7, "/var", "/var/www/nc", true)}},
		{"above the target", []mountRoot{linked}, base, with(ent(7, "/data")), []MountChange{ch(7, "/data", "/var/www/nc", true)}},
		{"root slash", []mountRoot{slash}, base, with(ent(7, "/mnt")), []MountChange{ch(7, "/mnt", "/", true)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mountDiff(tt.old, tt.cur, tt.roots)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestMountWatcherCurrent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file   string
		roots  []string
		points []string // of Current, in order
		bad    int
	}{
		{"escaped", []string{"/tmp/micap"}, []string{"/tmp/micap/a b", "/tmp/micap/tab\tx", "/tmp/micap/empty", `/tmp/micap/back\slash`, "/tmp/micap/nl\nline"}, 0},
		{"escaped", []string{"/tmp/micap/a"}, nil, 0},     // "a b" is not below "a"
		{"escaped", []string{"/tmp/micap/a b/c"}, nil, 0}, // above it: not in Current
		{"optional", []string{"/tmp/micap/shared"}, []string{"/tmp/micap/shared", "/tmp/micap/shared/sub"}, 0},
		{"garbage", []string{"/srv/nc"}, []string{"/srv/nc", "/srv/nc/b"}, 13},
	}
	for _, tt := range tests {
		t.Run(tt.file+":"+tt.roots[0], func(t *testing.T) {
			m, err := NewMountWatcher(mountinfoFile(t, tt.file), tt.roots)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var points []string
			for _, c := range m.Current() {
				if !c.Mounted || c.Root != tt.roots[0] {
					t.Errorf("got %+v, want Mounted and Root %s", c, tt.roots[0])
				}
				points = append(points, c.Point)
			}
			if !reflect.DeepEqual(points, tt.points) {
				t.Errorf("got %q, want %q", points, tt.points)
			}
			if got := m.BadLines(); got != tt.bad {
				t.Errorf("got %d bad lines, want %d", got, tt.bad)
			}
		})
	}
}

func TestNewMountWatcherErrors(t *testing.T) {
	t.Parallel()
	if _, err := NewMountWatcher(filepath.Join(t.TempDir(), "missing"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want not exist", err)
	}
	if _, err := NewMountWatcher("", []string{""}); err == nil {
		t.Error("empty root: no error")
	}
}

// startMountWatcher runs m.Run; the returned function cancels it and
// returns how many times Run woke from poll between the cancel and its
// return (the cancel itself is one), and what it returned.
func startMountWatcher(t *testing.T, m *MountWatcher, out chan MountChange) func() (int64, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, out) }()
	stopped := false
	stop := func() (int64, error) {
		stopped = true
		before := m.wakeups.Load()
		cancel()
		select {
		case err := <-done:
			return m.wakeups.Load() - before, err
		case <-time.After(mountWait):
			t.Fatal("Run did not return after its context was cancelled")
			return 0, nil
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return stop
}

// TestMountWatcherIdle: Run sleeps in poll until the table changes or its
// context is done, and returns at once then (it wakes once for the
// cancel, not in a loop until it notices); on a file that is not
// mountinfo, and on the real one of this (shared) namespace, where other
// processes may mount now and then. The 300 ms is a window to count
// wakeups in, not a speed target: a loaded machine only wakes a busy
// loop less often.
func TestMountWatcherIdle(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"host", ""} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			t.Parallel()
			p := "" // the real one
			if name != "" {
				p = mountinfoFile(t, name)
			}
			m, err := NewMountWatcher(p, []string{t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			stop := startMountWatcher(t, m, make(chan MountChange, 16))
			time.Sleep(300 * time.Millisecond)
			if n := m.wakeups.Load(); n > 10 { // a busy loop wakes millions of times
				t.Errorf("Run woke %d times in 300 ms with nothing to do", n)
			}
			woke, err := stop()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
			if woke > 3 { // the cancel, and maybe a mount elsewhere (host)
				t.Errorf("Run woke %d times between the cancel and its return: it does not return when woken by the cancel", woke)
			}
		})
	}
}

func TestMountWatcherClose(t *testing.T) {
	t.Parallel()
	m, err := NewMountWatcher("", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background(), make(chan MountChange)) }()
	for !m.isRunning() {
		time.Sleep(time.Millisecond)
	}
	if err := m.Run(context.Background(), nil); err == nil {
		t.Error("a second Run at the same time: no error")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, done, "Run")
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := m.Run(context.Background(), nil); !errors.Is(err, errMountsClosed) {
		t.Errorf("Run after Close returned %v, want %v", err, errMountsClosed)
	}
}

func (m *MountWatcher) isRunning() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running
}

// TestMountWatcherNamespace runs TestMountWatcherInNamespace again in this
// test binary, in a mount namespace of its own, where it can mount freely.
func TestMountWatcherNamespace(t *testing.T) {
	t.Parallel()
	mountns.Run(t, "TestMountWatcherInNamespace")
}

// TestMountWatcherInNamespace mounts over a tree and checks what a
// MountWatcher reports. Run by TestMountWatcherNamespace only.
func TestMountWatcherInNamespace(t *testing.T) {
	mountns.Enter(t, "TestMountWatcherNamespace")
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "nc")
	odd := filepath.Join(root, "odd dir\twith\\back\nline") // every character mountinfo escapes
	for _, d := range []string{root + "/apps/files", root + "/core", odd, base + "/nc2", base + "/outside", base + "/plain", base + "/ov/upper", base + "/ov/work"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { unmountBelow(t, base) }) // before TempDir's removal
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	m, err := NewMountWatcher("", []string{root})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if cur := m.Current(); len(cur) != 0 {
		t.Fatalf("Current before any mount: got %+v, want none", cur)
	}
	out := make(chan MountChange, 64)
	stop := startMountWatcher(t, m, out)

	var since time.Time
	expect := func(what string, want MountChange) MountChange {
		t.Helper()
		select {
		case got := <-out:
			if got.Point != want.Point || got.Root != want.Root || got.Mounted != want.Mounted ||
				(want.FSType != "" && got.FSType != want.FSType) || (want.Source != "" && got.Source != want.Source) ||
				(want.ID != 0 && got.ID != want.ID) {
				t.Fatalf("after %s: got %+v, want %+v", what, got, want)
			}
			t.Logf("%s: reported %v after the command returned: %+v", what, time.Since(since).Round(time.Microsecond), got)
			return got
		case <-time.After(mountWait):
			t.Fatalf("after %s: no mount change within %v", what, mountWait)
			return MountChange{}
		}
	}
	do := func(args ...string) {
		t.Helper()
		run(args...)
		since = time.Now()
	}

	// Mounts outside the root, and at a sibling whose name starts like
	// it, are not reported: the first change is the mount below the root.
	do("mount", "-t", "tmpfs", "integrityd-outside", base+"/outside")
	do("mount", "-t", "tmpfs", "integrityd-sibling", base+"/nc2")
	do("mount", "-t", "tmpfs", "integrityd-apps", root+"/apps")
	apps := expect("tmpfs over apps", MountChange{Point: root + "/apps", Root: root, Mounted: true, FSType: "tmpfs", Source: "integrityd-apps"})
	// Idle, Run sleeps: it woke for the table's changes (three mounts,
	// maybe read together), not in a loop.
	if n := m.wakeups.Load(); n > 3 {
		t.Errorf("Run woke %d times for three mounts: it does not sleep while nothing changes", n)
	}
	if cur := m.Current(); len(cur) != 1 || cur[0] != apps {
		t.Errorf("Current with apps mounted: got %+v, want just %+v", cur, apps)
	}
	do("umount", root+"/apps")
	expect("umount apps", MountChange{Point: root + "/apps", Root: root, Mounted: false, ID: apps.ID})

	do("mount", "--bind", base+"/plain", root+"/core")
	core := expect("bind over core", MountChange{Point: root + "/core", Root: root, Mounted: true})
	do("umount", root+"/core")
	expect("umount core", MountChange{Point: root + "/core", Root: root, Mounted: false, ID: core.ID})

	do("mount", "-t", "tmpfs", "odd source", odd)
	expect("tmpfs over a directory with escaped characters", MountChange{Point: odd, Root: root, Mounted: true, Source: "odd source"})
	do("umount", odd)
	expect("umount it", MountChange{Point: odd, Root: root, Mounted: false})

	do("mount", "-t", "tmpfs", "integrityd-root", root)
	expect("tmpfs over the root", MountChange{Point: root, Root: root, Mounted: true, FSType: "tmpfs"})
	do("umount", root)
	expect("umount the root", MountChange{Point: root, Root: root, Mounted: false})

	ovOut, err := exec.Command("mount", "-t", "overlay", "overlay", "-o",
		"lowerdir="+root+"/apps,upperdir="+base+"/ov/upper,workdir="+base+"/ov/work", root+"/apps").CombinedOutput()
	if err != nil {
		t.Logf("no overlay mount here (%v: %s): that step is left out", err, bytes.TrimSpace(ovOut))
	} else {
		since = time.Now()
		expect("overlay over apps", MountChange{Point: root + "/apps", Root: root, Mounted: true, FSType: "overlay"})
		do("umount", root+"/apps")
		expect("umount the overlay", MountChange{Point: root + "/apps", Root: root, Mounted: false, FSType: "overlay"})
	}

	// A mount above the root changes what the root resolves to.
	do("mount", "-t", "tmpfs", "integrityd-above", base)
	expect("tmpfs over the root's parent", MountChange{Point: base, Root: root, Mounted: true, Source: "integrityd-above"})
	do("umount", base)
	expect("umount the parent", MountChange{Point: base, Root: root, Mounted: false})

	// Unmounts outside are not reported either.
	do("umount", base+"/nc2")
	do("umount", base+"/outside")
	do("mount", "-t", "tmpfs", "integrityd-last", root+"/core")
	expect("the last mount", MountChange{Point: root + "/core", Root: root, Mounted: true, Source: "integrityd-last"})
	// Nothing else is reported: the next change is a marker mounted
	// after everything above (a change left would come before it).
	do("mount", "-t", "tmpfs", "integrityd-marker", root+"/apps/files")
	expect("the marker mount, after all the others", MountChange{Point: root + "/apps/files", Root: root, Mounted: true, Source: "integrityd-marker"})

	woke, err := stop()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if woke > 1 {
		t.Errorf("Run woke %d times between the cancel and its return, want 1 (the cancel)", woke)
	}

	// Close stops a Run blocked on a consumer that does not read.
	m2, err := NewMountWatcher("", []string{root})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m2.Run(context.Background(), make(chan MountChange)) }()
	for !m2.isRunning() {
		time.Sleep(time.Millisecond)
	}
	run("umount", root+"/core")
	deadline := time.Now().Add(mountWait)
	for m2.wakeups.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, done, "Run, blocked sending,")
}

// unmountBelow detaches every mount at or below dir, deepest first.
func unmountBelow(t *testing.T, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Error(err)
		return
	}
	table, _ := parseMountinfo(data)
	var points []string
	for _, e := range table {
		if below(e.Point, dir) {
			points = append(points, e.Point)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("unmount %s: %v", p, err)
		}
	}
}

// waitClosed waits for Run's result on done after Close: errMountsClosed,
// within mountWait. what names the Run in messages.
func waitClosed(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, errMountsClosed) {
			t.Errorf("%s returned %v after Close, want %v", what, err, errMountsClosed)
		}
	case <-time.After(mountWait):
		t.Fatalf("%s did not return after Close", what)
	}
}
