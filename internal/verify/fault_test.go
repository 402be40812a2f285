package verify_test

// Fault tests: what the check does with files it cannot or must not read
// (unreadable files and directories, devices, FIFOs, sockets, symlink
// loops, links out of the tree), with very large files and with very deep
// trees. They use the demo install and its keys, as an operator's tree
// would be signed.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/asnobody"
	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// faultTree builds a signed demo install in dir and returns its keys.
func faultTree(t *testing.T, dir string) (string, *demo.Keys) {
	t.Helper()
	root := filepath.Join(dir, "nc")
	keys, err := demo.BuildWithKeys(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	return root, keys
}

// faultSign signs the scope again (core, or the app id).
func faultSign(t *testing.T, keys *demo.Keys, root, scope string) {
	t.Helper()
	in := verify.NewInstall(root, nil, "")
	sc := in.Core()
	if scope != "core" {
		sc = in.App(scope, "")
	}
	if err := keys.Sign(context.Background(), sc); err != nil {
		t.Fatalf("sign %s: %v", scope, err)
	}
}

// faultCheck is a one-shot check of core and every app, in report order.
func faultCheck(ctx context.Context, root string) ([]finding.Finding, error) {
	in := verify.NewInstall(root, nil, "")
	tr, err := verify.LoadTrust(filepath.Join(root, "resources/codesigning/root.crt"), "")
	if err != nil {
		return nil, err
	}
	apps, _, err := in.Apps()
	if err != nil {
		return nil, err
	}
	var out []finding.Finding
	for _, sc := range append([]*verify.Scope{in.Core()}, apps...) {
		res, err := sc.Check(ctx, tr)
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", sc.Name, err)
		}
		out = append(out, res.AllFindings()...)
	}
	return out, nil
}

// hangGuard bounds the waits of the verify_test tests: it only turns a
// hang into a failure, far beyond what any check takes on a loaded
// machine; no test asserts how fast something is (the benchmarks do).
const hangGuard = 3 * time.Minute

// faultWithin runs f and reports whether it returned within d (a hang is
// left behind in its goroutine: the test fails anyway).
func faultWithin(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// mustCheck runs faultCheck and fails the test when it hangs or fails.
func mustCheck(t *testing.T, root string) []finding.Finding {
	t.Helper()
	var got []finding.Finding
	var err error
	if !faultWithin(hangGuard, func() { got, err = faultCheck(context.Background(), root) }) {
		t.Fatalf("the check did not return after %v: it hangs", hangGuard)
	}
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// lines renders findings as "scope KIND path", sorted.
func lines(fs []finding.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %s", f.Scope, f.Kind, f.Path))
	}
	sort.Strings(out)
	return out
}

func wantLines(t *testing.T, what string, got []finding.Finding, want ...string) {
	t.Helper()
	sort.Strings(want)
	if want == nil {
		want = []string{}
	}
	if g := lines(got); !slices.Equal(g, want) {
		t.Errorf("%s: got findings\n  %s\nwant\n  %s\nfull: %+v", what, strings.Join(g, "\n  "), strings.Join(want, "\n  "), got)
	}
}

func findingAt(fs []finding.Finding, scope, path string) (finding.Finding, bool) {
	for _, f := range fs {
		if f.Scope == scope && f.Path == path {
			return f, true
		}
	}
	return finding.Finding{}, false
}

// manifestHashes reads a signature.json's hashes.
func manifestHashes(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Hashes map[string]string `json:"hashes"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m.Hashes
}

// recheck runs the daemon's path (Scope.Recheck) for key of scope.
func recheck(root, scope, key string) ([]finding.Finding, error) {
	in := verify.NewInstall(root, nil, "")
	tr, err := verify.LoadTrust(filepath.Join(root, "resources/codesigning/root.crt"), "")
	if err != nil {
		return nil, err
	}
	sc := in.Core()
	if scope != "core" {
		sc = in.App(scope, "")
	}
	m, ex := sc.LoadManifest(tr)
	if ex != nil {
		return nil, fmt.Errorf("manifest of %s: %s %s", scope, ex.Message, ex.Detail)
	}
	fs, _, err := sc.Recheck(context.Background(), sc.NewExpected(m), key)
	return fs, err
}

// under returns the findings of scope at key and below ("" for all).
func under(fs []finding.Finding, scope, key string) []finding.Finding {
	var out []finding.Finding
	for _, f := range fs {
		if f.Scope == scope && f.Path != "" && (key == "" || f.Path == key || strings.HasPrefix(f.Path, key+"/")) {
			out = append(out, f)
		}
	}
	return out
}

// sameFindings compares full findings (messages included), ignoring order.
func sameFindings(a, b []finding.Finding) bool {
	key := func(f finding.Finding) string { return fmt.Sprintf("%+v", f) }
	x, y := []string{}, []string{}
	for _, f := range a {
		x = append(x, key(f))
	}
	for _, f := range b {
		y = append(y, key(f))
	}
	sort.Strings(x)
	sort.Strings(y)
	return slices.Equal(x, y)
}

// ---------------------------------------------------------------------
// 1. Unreadable files and directories.

const (
	faultChildEnv = "INTEGRITYD_FAULT_CHILD"
	faultRootEnv  = "INTEGRITYD_FAULT_ROOT"
	faultMarker   = "FAULT-RESULT "
)

// unreadableResult is what the unprivileged child reports.
type unreadableResult struct {
	Check   []finding.Finding            `json:"check"`
	Recheck map[string][]finding.Finding `json:"recheck"` // "scope|key" -> findings
	Errors  []string                     `json:"errors"`
}

// unreadableRechecks are the keys the daemon would recheck.
var unreadableRechecks = []string{
	"core|", "core|core", "core|core/js", "core|core/js/login.js", "core|lib", "core|lib/private",
	"core|lib/private/Server.php", "core|lib/private/extra.php", "core|lib/base.php",
	"files|", "files|lib", "files|lib/App.php", "files|js", "files|js/files.js",
}

func runUnreadable(root string) unreadableResult {
	var r unreadableResult
	var err error
	if r.Check, err = faultCheck(context.Background(), root); err != nil {
		r.Errors = append(r.Errors, "check: "+err.Error())
	}
	r.Recheck = map[string][]finding.Finding{}
	for _, sk := range unreadableRechecks {
		scope, key, _ := strings.Cut(sk, "|")
		fs, err := recheck(root, scope, key)
		if err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("recheck %s: %v", sk, err))
			continue
		}
		r.Recheck[sk] = fs
	}
	return r
}

// unreadableTree builds a signed tree, modifies two files and makes
// files and directories unreadable, then checks it (and rechecks the keys
// of unreadableRechecks) as a user that cannot read them: as root, in a
// copy of this test binary running as uid 65534 (root reads everything).
func unreadableTree(t *testing.T) (string, unreadableResult) {
	t.Helper()
	var base string
	if os.Geteuid() == 0 {
		base = asnobody.Dir(t)
	} else {
		base = t.TempDir()
	}
	root, _ := faultTree(t, base)
	// Everything readable by others, as an install served by a web server.
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSymlink == 0 {
			if d.IsDir() {
				os.Chmod(p, 0o755)
			} else {
				os.Chmod(p, 0o644)
			}
		}
		return nil
	})
	// Modified files: the rest of the scope is still checked, and what an
	// unlistable directory hides is not looked at.
	for k, c := range map[string]string{
		"lib/base.php":           "<?php // tampered\n",
		"lib/private/extra.php":  "<?php\n",
		"apps/files/lib/App.php": "<?php // tampered behind an unlistable directory\n",
	} {
		if err := os.WriteFile(filepath.Join(root, k), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	modes := []struct {
		path string
		mode os.FileMode
	}{
		{"lib/private/Server.php", 0},                // listed file
		{"lib/private/extra.php", 0},                 // file not in the manifest
		{"core/js", 0},                               // directory: neither listable nor searchable
		{"apps/files/lib", 0o311},                    // directory: searchable, not listable
		{"apps/dashboard/appinfo/signature.json", 0}, // a manifest
	}
	for _, m := range modes {
		if err := os.Chmod(filepath.Join(root, m.path), m.mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, m := range modes {
			os.Chmod(filepath.Join(root, m.path), 0o755)
		}
	})

	if os.Geteuid() != 0 {
		if f, err := os.Open(filepath.Join(root, "lib/private/Server.php")); err == nil {
			f.Close()
			t.Skip("chmod 000 does not stop this unprivileged user from reading (CAP_DAC_OVERRIDE?): unreadable files cannot be tested")
		}
		return root, runUnreadable(root)
	}
	out := asnobody.Run(t, base, "TestFaultUnreadable", faultChildEnv+"=unreadable", faultRootEnv+"="+root)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), faultMarker); ok {
			var res unreadableResult
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Fatalf("child output: %v\n%s", err, out)
			}
			return root, res
		}
	}
	t.Fatalf("no result from the unprivileged child:\n%s", out)
	return "", unreadableResult{}
}

// TestFaultUnreadable: an unreadable file or directory is an EXCEPTION
// for its path (an unreadable file that is not in the manifest is an
// EXTRA_FILE saying why it could not be read), what an unreadable
// directory hides is neither missing nor hashed, an unreadable manifest
// fails its scope only, and the rest of every scope is still checked.
func TestFaultUnreadable(t *testing.T) {
	if os.Getenv(faultChildEnv) == "unreadable" {
		// The unprivileged child: report, the parent asserts.
		data, err := json.Marshal(runUnreadable(os.Getenv(faultRootEnv)))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("\n%s%s\n", faultMarker, data)
		return
	}
	root, res := unreadableTree(t)
	for _, e := range res.Errors {
		t.Error(e)
	}
	coreHashes := manifestHashes(t, filepath.Join(root, "core/signature.json"))
	wantLines(t, "check", res.Check,
		"core INVALID_HASH lib/base.php",
		"core EXCEPTION lib/private/Server.php",
		"core EXTRA_FILE lib/private/extra.php",
		"core EXCEPTION core/js",
		"files EXCEPTION lib",
		"dashboard EXCEPTION ",
	)
	for _, f := range res.Check {
		switch {
		case f.Kind == kind.InvalidHash:
		case f.Scope == "dashboard":
			if f.Message != verify.MsgNoSignature || !strings.Contains(f.Detail, "permission denied") {
				t.Errorf("unreadable manifest: got %+v, want %q with a detail saying permission denied", f, verify.MsgNoSignature)
			}
		default:
			if !strings.Contains(f.Message, "permission denied") {
				t.Errorf("%s %s: got message %q, want it to say permission denied", f.Scope, f.Path, f.Message)
			}
			if !f.Current.IsZero() {
				t.Errorf("%s %s: got current hash %q of a file that could not be read", f.Scope, f.Path, f.Current)
			}
		}
	}
	if f, _ := findingAt(res.Check, "core", "lib/private/Server.php"); f.Expected.String() != coreHashes["lib/private/Server.php"] || f.Expected.IsZero() {
		t.Errorf("unreadable listed file: got expected hash %q, want the manifest's %q", f.Expected, coreHashes["lib/private/Server.php"])
	}
}

// ---------------------------------------------------------------------
// 2. Files of several GB.

// zeros3GiB is the SHA-512 of 3 GiB of zero bytes.
const zeros3GiB = "bf554a61551d250585ecfe6c82b14a3e26594311f27d433280768d9d4bcd8daddbd180a661100b1dd2437d996696ee333308c19b8a519bbacc49e97b5f101648"

// TestFaultHugeFile checks a 3 GiB (sparse) file: it is hashed whole and
// in constant memory. The tree is signed while the file is small and the
// file is then grown, so that the 3 GiB are hashed once (about 4 s): the
// check must report INVALID_HASH with the SHA-512 of the 3 GiB.
func TestFaultHugeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: hashing 3 GiB takes seconds (go test ./... runs it)")
	}
	const size = 3 << 30
	root, keys := faultTree(t, t.TempDir())
	huge := filepath.Join(root, "lib/huge.bin")
	if err := os.WriteFile(huge, []byte("small"), 0o644); err != nil {
		t.Fatal(err)
	}
	faultSign(t, keys, root, "core")
	want := manifestHashes(t, filepath.Join(root, "core/signature.json"))["lib/huge.bin"]

	var fs syscall.Statfs_t
	if err := syscall.Statfs(root, &fs); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		t.Fatal(err)
	}
	f.Close()
	var st syscall.Stat_t
	if err := syscall.Stat(huge, &st); err != nil {
		t.Fatal(err)
	}
	if allocated := st.Blocks * 512; allocated > 1<<20 {
		// Not sparse here: the space is really used.
		if free := int64(fs.Bavail) * fs.Bsize; free < size+(1<<30) {
			t.Skipf("this filesystem has no sparse files (%d bytes allocated) and only %d bytes free", allocated, free)
		}
		t.Logf("not sparse: %d bytes allocated", allocated)
	}

	in := verify.NewInstall(root, nil, "")
	tr, err := verify.LoadTrust(filepath.Join(root, "resources/codesigning/root.crt"), "")
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var peakHeap, peakSys atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peakHeap.Load() {
				peakHeap.Store(m.HeapInuse)
			}
			if m.Sys > peakSys.Load() {
				peakSys.Store(m.Sys)
			}
		}
	}()
	begin := time.Now()
	var res verify.ScopeResult
	// A hang guard only: what is asserted is the memory the check uses
	// (streamed, not read whole) and the bytes it hashed.
	ok := faultWithin(hangGuard, func() { res, err = in.Core().Check(context.Background(), tr) })
	close(stop)
	wg.Wait()
	if !ok {
		t.Fatalf("checking a 3 GiB file did not finish after %v: it hangs", hangGuard)
	}
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	t.Logf("3 GiB checked in %v; allocated %d KiB, peak heap in use +%d KiB, Sys +%d KiB",
		time.Since(begin).Round(time.Millisecond), (after.TotalAlloc-before.TotalAlloc)>>10,
		(int64(peakHeap.Load())-int64(before.HeapInuse))>>10, (int64(max(peakSys.Load(), after.Sys))-int64(before.Sys))>>10)

	if len(res.Findings) != 1 || res.Exception != nil {
		t.Fatalf("got %+v, want one INVALID_HASH for lib/huge.bin", res.AllFindings())
	}
	if f := res.Findings[0]; f.Kind != kind.InvalidHash || f.Path != "lib/huge.bin" || f.Expected.String() != want || f.Current.String() != zeros3GiB {
		t.Errorf("got %+v, want INVALID_HASH lib/huge.bin, expected %.16s…, current the SHA-512 of 3 GiB of zeros %.16s…", f, want, zeros3GiB)
	}
	if res.Bytes < size {
		t.Errorf("got %d bytes hashed, want at least %d", res.Bytes, int64(size))
	}
	const limit = 64 << 20
	if d := after.TotalAlloc - before.TotalAlloc; d > limit {
		t.Errorf("the check allocated %d MiB for a 3 GiB file, want less than %d MiB: not streamed", d>>20, limit>>20)
	}
	if d := int64(peakHeap.Load()) - int64(before.HeapInuse); d > limit {
		t.Errorf("heap in use grew by %d MiB, want less than %d MiB", d>>20, limit>>20)
	}
	if d := int64(max(peakSys.Load(), after.Sys)) - int64(before.Sys); d > limit {
		t.Errorf("memory from the OS grew by %d MiB, want less than %d MiB", d>>20, limit>>20)
	}
}

// ---------------------------------------------------------------------
// 3. Deep trees and long names.

// name255 is a file name of exactly 255 bytes (NAME_MAX) ending in tag.
func name255(tag string) string {
	return strings.Repeat("n", 255-len(tag)) + tag
}

// TestFaultDeepTree signs and checks a tree 200 directories deep with
// 255-byte file and directory names on the way: no finding; then the
// deepest file is modified: exactly one INVALID_HASH with its key, from
// the full check and from the daemon's recheck of it and of a directory
// half-way up.
func TestFaultDeepTree(t *testing.T) {
	root, keys := faultTree(t, t.TempDir())
	var parts []string
	for i := 0; i < 200; i++ {
		parts = append(parts, fmt.Sprintf("%d", i%10))
	}
	parts[100] = name255("-dir") // one directory with a 255-byte name
	dir := filepath.Join(append([]string{root, "lib", "deep"}, parts...)...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, depth := range []int{1, 100, 150, 200} {
		key := strings.Join(append([]string{"lib", "deep"}, parts[:depth]...), "/") + "/" + name255(fmt.Sprintf("-%d.php", depth))
		files[key] = fmt.Sprintf("<?php // depth %d\n", depth)
		if err := os.WriteFile(filepath.Join(root, key), []byte(files[key]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deepest := strings.Join(append([]string{"lib", "deep"}, parts...), "/") + "/" + name255("-200.php")
	t.Logf("deepest key: %d bytes, absolute path %d bytes", len(deepest), len(root)+1+len(deepest))

	faultSign(t, keys, root, "core")
	hashes := manifestHashes(t, filepath.Join(root, "core/signature.json"))
	for k := range files {
		if hashes[k] == "" {
			t.Errorf("the manifest does not list %s", k)
		}
	}
	wantLines(t, "signed deep tree", mustCheck(t, root))

	if err := os.WriteFile(filepath.Join(root, deepest), []byte("<?php // tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := mustCheck(t, root)
	wantLines(t, "deepest file modified", got, "core INVALID_HASH "+deepest)
	if f, _ := findingAt(got, "core", deepest); f.Expected.String() != hashes[deepest] {
		t.Errorf("got expected hash %q, want the manifest's %q", f.Expected, hashes[deepest])
	}
	half := strings.Join(append([]string{"lib", "deep"}, parts[:120]...), "/")
	for _, key := range []string{deepest, half, "lib/deep", ""} {
		fs, err := recheck(root, "core", key)
		if err != nil {
			t.Fatalf("recheck %q: %v", key, err)
		}
		if !sameFindings(fs, got) {
			t.Errorf("Recheck(core, %.40q…) = %+v, want %+v", key, fs, got)
		}
	}
}

// ---------------------------------------------------------------------
// 4. Devices, FIFOs and sockets.

// TestFaultDevicesAndFIFOs puts character and block devices, FIFOs, a
// socket and links to them in a signed tree: none is opened (a FIFO
// opened for reading would let a writer open it; /dev/zero read would
// never end), each is reported (EXTRA_FILE when not in the manifest, an
// EXCEPTION naming its type when listed), and the check returns.
func TestFaultDevicesAndFIFOs(t *testing.T) {
	root, keys := faultTree(t, t.TempDir())
	p := func(k string) string { return filepath.Join(root, k) }
	listed := []string{"lib/listed-null", "lib/listed-zero", "lib/listed-fifo", "lib/listed-link-zero", "apps/files/js/listed-fifo.js"}
	for _, k := range listed {
		if err := os.WriteFile(p(k), []byte("was a file\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	faultSign(t, keys, root, "core")
	faultSign(t, keys, root, "files")
	for _, k := range listed {
		os.Remove(p(k))
	}

	type want struct{ line, msg string }
	var wants []want
	var fifos []string
	mkfifo := func(k string) {
		if err := syscall.Mkfifo(p(k), 0o644); err != nil {
			t.Fatal(err)
		}
		fifos = append(fifos, p(k))
	}
	symlink := func(target, k string) {
		if err := os.Symlink(target, p(k)); err != nil {
			t.Fatal(err)
		}
	}
	mkfifo("lib/listed-fifo")
	mkfifo("apps/files/js/listed-fifo.js")
	mkfifo("lib/extra-fifo")
	symlink("extra-fifo", "lib/extra-link-fifo")
	symlink("/dev/zero", "lib/listed-link-zero")
	symlink("/dev/zero", "lib/extra-link-zero")
	wants = append(wants,
		want{"core EXCEPTION lib/listed-fifo", "named pipe"},
		want{"files EXCEPTION js/listed-fifo.js", "named pipe"},
		want{"core EXTRA_FILE lib/extra-fifo", "named pipe"},
		want{"core EXTRA_FILE lib/extra-link-fifo", "named pipe"},
		want{"core EXCEPTION lib/listed-link-zero", "character device"},
		want{"core EXTRA_FILE lib/extra-link-zero", "character device"},
	)
	l, err := net.Listen("unix", p("lib/extra-sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wants = append(wants, want{"core EXTRA_FILE lib/extra-sock", "socket"})

	devices := true
	mknod := func(k string, mode uint32, major, minor int) {
		if !devices {
			return
		}
		if err := syscall.Mknod(p(k), mode|0o644, major<<8|minor); err != nil {
			if os.Geteuid() != 0 || errors.Is(err, syscall.EPERM) {
				t.Logf("device nodes not tested: mknod %s: %v (needs root with CAP_MKNOD)", k, err)
				devices = false
				return
			}
			t.Fatal(err)
		}
	}
	mknod("lib/listed-null", syscall.S_IFCHR, 1, 3)
	mknod("lib/listed-zero", syscall.S_IFCHR, 1, 5) // /dev/zero: reading it never ends
	mknod("lib/extra-zero", syscall.S_IFCHR, 1, 5)
	mknod("lib/extra-block", syscall.S_IFBLK, 7, 0)
	if devices {
		wants = append(wants,
			want{"core EXCEPTION lib/listed-null", "character device"},
			want{"core EXCEPTION lib/listed-zero", "character device"},
			want{"core EXTRA_FILE lib/extra-zero", "character device"},
			want{"core EXTRA_FILE lib/extra-block", "block device"},
		)
	} else {
		// Still listed: they are missing.
		wants = append(wants, want{"core FILE_MISSING lib/listed-null", ""}, want{"core FILE_MISSING lib/listed-zero", ""})
	}

	// A writer can open a FIFO only while a reader has it open.
	var opened atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, f := range fifos {
				if w, err := os.OpenFile(f, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					opened.Store(f)
					w.Close()
				}
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	for round := 0; round < 3; round++ {
		got := mustCheck(t, root)
		var lines []string
		for _, w := range wants {
			lines = append(lines, w.line)
		}
		wantLines(t, "check", got, lines...)
		for _, w := range wants {
			scope, rest, _ := strings.Cut(w.line, " ")
			_, path, _ := strings.Cut(rest, " ")
			f, ok := findingAt(got, scope, path)
			if !ok || !strings.Contains(f.Message, w.msg) || !f.Current.IsZero() {
				t.Errorf("%s: got %+v, want a message naming the %s and no current hash", w.line, f, w.msg)
			}
			if f.Kind == kind.Exception && f.Expected.IsZero() {
				t.Errorf("%s: got no expected hash", w.line)
			}
			// The daemon's recheck of that path says the same.
			var fs []finding.Finding
			var err error
			if !faultWithin(hangGuard, func() { fs, err = recheck(root, scope, path) }) {
				t.Fatalf("Recheck(%s, %s) did not return after %v: it hangs", scope, path, hangGuard)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameFindings(fs, under(got, scope, path)) {
				t.Errorf("Recheck(%s, %s) = %+v, want %+v", scope, path, fs, under(got, scope, path))
			}
		}
		if f, _ := opened.Load().(string); f != "" {
			t.Fatalf("the FIFO %s was opened for reading", f)
		}
	}
}

// ---------------------------------------------------------------------
// 5. Symlink loops and links out of the tree.

// TestFaultSymlinks puts symlink loops and links to directories (in the
// tree, above it, outside it, /) in a signed tree: the check returns, never
// enters a linked directory (nothing below one is reported, a listed
// directory replaced by a link to an identical copy is missing), and
// reports each loop once.
func TestFaultSymlinks(t *testing.T) {
	dir := t.TempDir()
	root, _ := faultTree(t, dir)
	p := func(k string) string { return filepath.Join(root, k) }
	outside := filepath.Join(dir, "outside")
	// Outside: files that would be findings, a FIFO, and a loop.
	for k, c := range map[string]string{"a.php": "a", "sub/b.php": "b", "js/login.js": demo.Files["core/js/login.js"]} {
		os.MkdirAll(filepath.Join(outside, filepath.Dir(k)), 0o755)
		if err := os.WriteFile(filepath.Join(outside, k), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(outside, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"lib/loop-a":                           "loop-b",
		"lib/loop-b":                           "loop-a",
		"lib/self":                             "self",
		"lib/dot":                              ".",
		"lib/private/up":                       "../..",
		"lib/slash":                            "/",
		"lib/outside":                          outside,
		"lib/outside-rel":                      "../../outside",
		"apps/files/lib/again":                 "../../files",
		filepath.Join("..", "outside", "back"): root, // a link from outside back in
	}
	for k, target := range links {
		if err := os.Symlink(target, p(k)); err != nil {
			t.Fatal(err)
		}
	}
	// A listed file replaced by a loop; a listed directory by a link to an
	// identical copy; a listed file by a link to a directory.
	replace := map[string]string{
		"lib/base.php":           "base.php",
		"core/js":                filepath.Join(outside, "js"),
		"apps/files/lib/App.php": "..",
	}
	for k, target := range replace {
		if err := os.RemoveAll(p(k)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p(k)); err != nil {
			t.Fatal(err)
		}
	}

	got := mustCheck(t, root)
	wantLines(t, "check", got,
		"core EXTRA_FILE lib/loop-a",
		"core EXTRA_FILE lib/loop-b",
		"core EXTRA_FILE lib/self",
		"core EXCEPTION lib/base.php",
		"core FILE_MISSING core/js/login.js",
		"files FILE_MISSING lib/App.php",
	)
	for _, k := range []string{"lib/loop-a", "lib/loop-b", "lib/self", "lib/base.php"} {
		if f, _ := findingAt(got, "core", k); !strings.Contains(f.Message, "too many levels of symbolic links") {
			t.Errorf("%s: got %+v, want a message saying too many levels of symbolic links", k, f)
		}
	}
	// The daemon's rechecks: the same, and nothing below a linked directory.
	for _, sk := range []string{"core|", "core|lib", "core|lib/dot", "core|lib/slash", "core|lib/outside", "core|lib/outside/a.php",
		"core|lib/private/up", "core|lib/private/up/lib/base.php", "core|core/js", "core|core/js/login.js", "core|lib/base.php",
		"files|", "files|lib", "files|lib/again", "files|lib/App.php"} {
		scope, key, _ := strings.Cut(sk, "|")
		var fs []finding.Finding
		var err error
		if !faultWithin(hangGuard, func() { fs, err = recheck(root, scope, key) }) {
			t.Fatalf("Recheck(%s, %q) did not return after %v: it hangs", scope, key, hangGuard)
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := under(got, scope, key); !sameFindings(fs, want) {
			t.Errorf("Recheck(%s, %q) = %+v, want %+v", scope, key, fs, want)
		}
	}
}

// TestFaultUnreadableRecheck: the daemon's rechecks (Scope.Recheck) of
// unreadable files and directories, and of what they hide, see exactly
// what the full check sees (the daemon compares its findings, messages
// included, and alerts again when a message changes).
func TestFaultUnreadableRecheck(t *testing.T) {
	_, res := unreadableTree(t)
	for _, e := range res.Errors {
		t.Error(e)
	}
	for _, sk := range unreadableRechecks {
		scope, key, _ := strings.Cut(sk, "|")
		got, ok := res.Recheck[sk]
		if !ok {
			continue // reported in res.Errors
		}
		if want := under(res.Check, scope, key); !sameFindings(got, want) {
			t.Errorf("Recheck(%s, %q) differs from the full check:\nrecheck: %+v\ncheck:   %+v", scope, key, got, want)
		}
	}
}

// ---------------------------------------------------------------------
// Helpers for trees whose paths are longer than PATH_MAX: the os package
// takes whole paths, so these walk down with openat.
