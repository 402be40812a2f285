package state

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
)

// listDir returns the names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// tempFiles returns the names in dir that look like Save's temporary files.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var tmp []string
	for _, n := range listDir(t, dir) {
		if strings.Contains(n, ".tmp-") {
			tmp = append(tmp, n)
		}
	}
	return tmp
}

// sameState compares two states; times are compared with Equal because
// JSON drops the monotonic reading and may change the location.
func sameState(t *testing.T, got, want *State) {
	t.Helper()
	if got == nil {
		t.Fatal("Load returned nil state")
	}
	if !got.Updated.Equal(want.Updated) {
		t.Errorf("Updated = %v, want %v", got.Updated, want.Updated)
	}
	if !got.LastFullScan.Equal(want.LastFullScan) {
		t.Errorf("LastFullScan = %v, want %v", got.LastFullScan, want.LastFullScan)
	}
	g, w := *got, *want
	g.Updated, w.Updated = time.Time{}, time.Time{}
	g.LastFullScan, w.LastFullScan = time.Time{}, time.Time{}
	if len(g.Findings) == 0 && len(w.Findings) == 0 {
		g.Findings, w.Findings = nil, nil // null and [] mean the same
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("round trip:\n got %+v\nwant %+v", g, w)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	now := time.Now() // has a monotonic reading and the local zone
	tests := []struct {
		name string
		s    State
	}{
		{"zero", State{}},
		{"empty findings", State{Findings: []finding.Finding{}}},
		{"full", State{
			PID:     4242,
			Updated: now,
			Findings: []finding.Finding{
				{Scope: "core", Kind: kind.InvalidHash, Path: "lib/base.php", Expected: hashOf("aa"), Current: hashOf("bb")},
				{Scope: "app:files", Kind: kind.FileMissing, Path: "appinfo/info.xml", Expected: hashOf("cc")},
				{Scope: "core", Kind: kind.ExtraFile, Path: "evil.php", Current: hashOf("dd")},
				{Scope: "app:x", Kind: kind.Exception, Class: "Exception", Message: "bad signature", Detail: "line1\nline2 \"quoted\" é \u2028"},
			},
			Complete:         true,
			LastFullScan:     time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC),
			LastFullDuration: 90*time.Second + 17*time.Nanosecond,
			Files:            23456,
			Scopes:           87,
			WatchedDirs:      5000,
			Degraded:         "inotify limit reached (fs.inotify.max_user_watches=8192 is exhausted)",
		}},
		{"incomplete, not degraded", State{
			Updated:  time.Date(1999, 12, 31, 12, 0, 0, 0, time.FixedZone("X", 5*3600+1800)),
			Findings: []finding.Finding{{Scope: "core", Kind: kind.ExtraFile, Path: "a/b/c with space/ü.php"}},
			Complete: false,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			in := tt.s
			if err := Save(dir, &in); err != nil {
				t.Fatalf("Save: %v", err)
			}
			if in.Version != formatVersion {
				t.Errorf("Save did not set Version: %d", in.Version)
			}
			got, err := Load(dir)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := tt.s
			want.Version = formatVersion
			sameState(t, got, &want)
			if names := listDir(t, dir); !reflect.DeepEqual(names, []string{FileName}) {
				t.Errorf("directory holds %q, want only %s", names, FileName)
			}
			fi, err := os.Stat(Path(dir))
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm&0o007 != 0 {
				t.Errorf("state file is world-accessible: %v", perm)
			}
		})
	}
}

func TestSaveOverwrites(t *testing.T) {
	dir := t.TempDir()
	first := &State{Findings: []finding.Finding{{Scope: "core", Kind: kind.ExtraFile, Path: "x"}}, Complete: true}
	if err := Save(dir, first); err != nil {
		t.Fatal(err)
	}
	second := &State{Files: 7}
	if err := Save(dir, second); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, got, &State{Version: formatVersion, Files: 7})
}

func TestSaveCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "state")
	if err := Save(dir, &State{Scopes: 3}); err != nil {
		t.Fatalf("Save into a missing directory: %v", err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Scopes != 3 {
		t.Fatalf("Load = %+v", got)
	}
}

func TestLoadMissing(t *testing.T) {
	for _, dir := range []string{
		t.TempDir(), // empty directory
		filepath.Join(t.TempDir(), "no", "such", "dir"), // missing directory
	} {
		s, err := Load(dir)
		if s != nil || err != nil {
			t.Errorf("Load(%s) = %v, %v; want nil, nil", dir, s, err)
		}
	}
}

func TestLoadCorrupt(t *testing.T) {
	valid, err := json.Marshal(&State{Version: formatVersion, PID: 1, Findings: []finding.Finding{{Scope: "core", Kind: kind.ExtraFile, Path: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr string // besides the path
	}{
		{"empty file", nil, "corrupt"},
		{"truncated", valid[:len(valid)/2], "corrupt"},
		{"truncated by one byte", valid[:len(valid)-1], "corrupt"},
		{"garbage", []byte("\x00\x01\x02 not json at all \xff"), "corrupt"},
		{"trailing garbage", append(append([]byte(nil), valid...), "}}"...), "corrupt"},
		{"wrong type", []byte(`{"version":1,"findings":"nope"}`), "corrupt"},
		{"array", []byte(`[1,2,3]`), "corrupt"},
		{"null", []byte(`null`), "version 0"},
		{"no version", []byte(`{"pid":3}`), "version 0"},
		{"old version", []byte(`{"version":0,"pid":3}`), "version 0"},
		{"newer version", []byte(`{"version":2,"pid":3}`), "version 2"},
		{"negative version", []byte(`{"version":-1}`), "version -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := Path(dir)
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Load(dir)
			if err == nil {
				t.Fatalf("Load succeeded on %q: %+v", tt.data, s)
			}
			if s != nil {
				t.Errorf("Load returned a state with its error: %+v", s)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
		})
	}
}

// TestLoadUnreadable: a state "file" that cannot be read (here a
// directory, which works as root too) is an error naming it, not "no state".
func TestLoadUnreadable(t *testing.T) {
	t.Run("state file is a directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(Path(dir), 0o700); err != nil {
			t.Fatal(err)
		}
		s, err := Load(dir)
		if err == nil || s != nil {
			t.Fatalf("Load = %v, %v; want an error", s, err)
		}
		if !strings.Contains(err.Error(), Path(dir)) {
			t.Errorf("error %q does not name %s", err, Path(dir))
		}
	})
	t.Run("state dir is a file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(dir, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Load(dir)
		if err == nil || s != nil {
			t.Fatalf("Load = %v, %v; want an error", s, err)
		}
		if !strings.Contains(err.Error(), dir) {
			t.Errorf("error %q does not name %s", err, dir)
		}
	})
	t.Run("unreadable permissions", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root: file permissions do not stop root from reading, so chmod 000 cannot make the file unreadable")
		}
		dir := t.TempDir()
		if err := Save(dir, &State{}); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(Path(dir), 0); err != nil {
			t.Fatal(err)
		}
		s, err := Load(dir)
		if err == nil || s != nil {
			t.Fatalf("Load = %v, %v; want an error", s, err)
		}
		if !strings.Contains(err.Error(), Path(dir)) {
			t.Errorf("error %q does not name %s", err, Path(dir))
		}
	})
}

// TestLoadTooLarge uses a sparse file just over the limit: it costs no disk
// space, and Load refuses it from its size, without reading it.
func TestLoadTooLarge(t *testing.T) {
	dir := t.TempDir()
	p := Path(dir)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// Valid JSON at the start, so that only the size can make Load fail.
	if _, err := f.WriteString(`{"version":1}`); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxSize + 1); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Load(dir)
	if err == nil || s != nil {
		t.Fatalf("Load = %v, %v; want an error", s, err)
	}
	if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), fmt.Sprint("larger than ", maxSize)) {
		t.Errorf("error %q does not name %s and the limit", err, p)
	}
}

func TestSaveErrors(t *testing.T) {
	t.Run("state dir is a regular file", func(t *testing.T) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "state")
		if err := os.WriteFile(dir, []byte("not a dir"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := Save(dir, &State{Files: 1})
		if err == nil {
			t.Fatal("Save into a regular file succeeded")
		}
		if !strings.Contains(err.Error(), dir) {
			t.Errorf("error %q does not name %s", err, dir)
		}
		if names := listDir(t, parent); !reflect.DeepEqual(names, []string{"state"}) {
			t.Errorf("Save left %q in %s", names, parent)
		}
		if data, _ := os.ReadFile(dir); string(data) != "not a dir" {
			t.Errorf("Save changed the file in the way: %q", data)
		}
	})
	t.Run("a parent of the state dir is a regular file", func(t *testing.T) {
		parent := t.TempDir()
		file := filepath.Join(parent, "f")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(file, "state")
		err := Save(dir, &State{})
		if err == nil {
			t.Fatal("Save below a regular file succeeded")
		}
		if !strings.Contains(err.Error(), file) {
			t.Errorf("error %q does not name %s", err, file)
		}
		if names := listDir(t, parent); !reflect.DeepEqual(names, []string{"f"}) {
			t.Errorf("Save left %q in %s", names, parent)
		}
	})
	t.Run("state file is a directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(Path(dir), 0o700); err != nil {
			t.Fatal(err)
		}
		err := Save(dir, &State{})
		if err == nil {
			t.Fatal("Save over a directory succeeded")
		}
		if !strings.Contains(err.Error(), Path(dir)) {
			t.Errorf("error %q does not name %s", err, Path(dir))
		}
		if tmp := tempFiles(t, dir); len(tmp) != 0 {
			t.Errorf("Save left temporary files: %q", tmp)
		}
	})
	t.Run("unwritable dir", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root: directory permissions do not stop root from writing, so chmod 500 cannot make Save fail")
		}
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		err := Save(dir, &State{})
		if err == nil {
			t.Fatal("Save into a read-only directory succeeded")
		}
		if !strings.Contains(err.Error(), Path(dir)) {
			t.Errorf("error %q does not name %s", err, Path(dir))
		}
	})
}

func TestCleanTemp(t *testing.T) {
	dir := t.TempDir()
	remove := []string{
		"." + FileName + ".tmp-123456",
		"." + FileName + ".tmp-",
		"." + FileName + ".tmp-abc.def",
	}
	keep := []string{
		FileName,
		"." + FileName,
		"." + FileName + ".tmp", // no dash: not CreateTemp's pattern
		FileName + ".tmp-123",   // no leading dot
		".other.json.tmp-123",
		"x." + FileName + ".tmp-1",
		".sync-1-2",
		"notes.txt",
	}
	if err := Save(dir, &State{Files: 5}); err != nil { // writes FileName
		t.Fatal(err)
	}
	for _, n := range append(append([]string(nil), remove...), keep[1:]...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory that merely matches the pattern must not lose its contents.
	sub := filepath.Join(dir, "."+FileName+".tmp-dir")
	if err := os.MkdirAll(filepath.Join(sub, "inner"), 0o700); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, filepath.Base(sub))

	CleanTemp(dir)

	want := append([]string(nil), keep...)
	sort.Strings(want)
	if got := listDir(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("after CleanTemp:\n got %q\nwant %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(sub, "inner")); err != nil {
		t.Errorf("CleanTemp touched the contents of a directory: %v", err)
	}
	s, err := Load(dir)
	if err != nil || s == nil || s.Files != 5 {
		t.Errorf("state after CleanTemp: %+v, %v", s, err)
	}

	// A missing or unreadable directory is not an error (and no panic).
	CleanTemp(filepath.Join(dir, "missing"))
	CleanTemp(Path(dir))
}

// TestCleanTempAfterSave: the temporary files Save uses are the ones
// CleanTemp removes (the pattern is shared by fsutil.WriteFileAtomic).
func TestCleanTempMatchesSave(t *testing.T) {
	dir := t.TempDir()
	// What an interrupted Save leaves: a temporary file made the same way.
	f, err := os.CreateTemp(dir, "."+FileName+".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := Save(dir, &State{}); err != nil {
		t.Fatal(err)
	}
	if tmp := tempFiles(t, dir); len(tmp) != 1 {
		t.Fatalf("temporary files before CleanTemp: %q", tmp)
	}
	CleanTemp(dir)
	if got := listDir(t, dir); !reflect.DeepEqual(got, []string{FileName}) {
		t.Errorf("after CleanTemp: %q", got)
	}
}

// TestSaveAtomic saves many times while other goroutines load: a reader
// must always see a complete state (never a missing, empty or half-written
// file), and Save must leave no temporary file behind.
func TestSaveAtomic(t *testing.T) {
	dir := t.TempDir()
	big := make([]finding.Finding, 300) // ~40 kB
	for i := range big {
		big[i] = finding.Finding{Scope: "core", Kind: kind.InvalidHash, Path: fmt.Sprintf("lib/private/file%05d.php", i), Expected: hashOf("e"), Current: hashOf("c")}
	}
	if err := Save(dir, &State{PID: 0, Findings: big}); err != nil {
		t.Fatal(err)
	}

	const saves = 200
	var (
		stop  atomic.Bool
		loads atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		errs  []string
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := -1
			for !stop.Load() {
				s, err := Load(dir)
				loads.Add(1)
				switch {
				case err != nil:
					fail("Load: %v", err)
				case s == nil:
					fail("Load saw no state file")
				case len(s.Findings) != len(big) || s.Findings[len(big)-1] != big[len(big)-1]:
					fail("Load saw %d findings, want %d", len(s.Findings), len(big))
				case s.PID < last:
					fail("Load went back in time: PID %d after %d", s.PID, last)
				default:
					last = s.PID
				}
			}
		}()
	}
	for i := 1; i <= saves; i++ {
		if err := Save(dir, &State{PID: i, Findings: big}); err != nil {
			t.Errorf("Save %d: %v", i, err)
			break
		}
	}
	// Let the readers see the last version at least once.
	for n := loads.Load(); loads.Load() < n+4; {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	t.Logf("%d saves, %d concurrent loads", saves, loads.Load())

	s, err := Load(dir)
	if err != nil || s == nil || s.PID != saves {
		t.Fatalf("final Load = %+v, %v; want PID %d", s, err, saves)
	}
	if got := listDir(t, dir); !reflect.DeepEqual(got, []string{FileName}) {
		t.Errorf("after %d saves the directory holds %q", saves, got)
	}
}

func hashOf(s string) finding.Hash { return finding.Hash(sha512.Sum512([]byte(s))) }
