package verify

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// hugeSize is the size of the sparse file of the cancel tests: 20 GiB,
// about 20 s of hashing.
const hugeSize = 20 << 30

// hangGuard bounds the waits of the cancel tests: it turns a hang
// into a failure and asserts nothing about speed (hashing all of hugeSize
// takes longer on an idle machine, but what is asserted is the work done
// after the cancel).
const hangGuard = 3 * time.Minute

// sparseFile makes path a sparse file of size bytes, or skips when the
// file system has no sparse files (then the space would really be used).
func sparseFile(tb testing.TB, path string, size int64) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		os.Remove(path)
		tb.Skipf("cannot make a %d GiB sparse file: %v", size>>30, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		tb.Fatal(err)
	}
	if allocated := st.Blocks * 512; allocated > 1<<20 {
		os.Remove(path)
		tb.Skipf("this file system has no sparse files (%d bytes allocated for %d)", allocated, size)
	}
}

// TestCancelHugeFile: a check or recheck busy hashing a 20 GiB file
// returns soon after its context is cancelled, with the context's error
// and no finding. Soon is counted in work, not time: once hashing has
// begun (Progress moves), the context is cancelled, and what is hashed
// after that must be a few buffers, not the rest of the 20 GiB.
// BenchmarkCancelHuge measures the stop latency.
func TestCancelHugeFile(t *testing.T) {
	p := newSignPKI(t)
	sc := newCoreScope(t)
	put(t, sc.Dir, map[string]string{"lib/f.php": "<?php\n"})
	p.sign(t, sc)
	sparseFile(t, filepath.Join(sc.Dir, "lib/huge.bin"), hugeSize)
	m, ex := sc.LoadManifest(p.trust)
	if ex != nil {
		t.Fatalf("manifest: %+v", ex)
	}
	exp := sc.NewExpected(m)
	prog := &Progress{}
	sc.in.Checker.Progress = prog

	recheck := func(key string) func(ctx context.Context) (int, error) {
		return func(ctx context.Context) (int, error) {
			fs, _, err := sc.Recheck(ctx, exp, key)
			return len(fs), err
		}
	}
	for _, c := range []struct {
		name string
		run  func(ctx context.Context) (findings int, err error)
	}{
		{"Check", func(ctx context.Context) (int, error) {
			res, err := sc.Check(ctx, p.trust)
			n := len(res.Findings)
			if res.Exception != nil {
				n++
			}
			return n, err
		}},
		{"Recheck file", recheck("lib/huge.bin")},
		{"Recheck directory", recheck("lib")},
		{"Recheck scope", recheck("")},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				n   int
				err error
			}
			done := make(chan result, 1)
			before := prog.Bytes()
			go func() {
				n, err := c.run(ctx)
				done <- result{n, err}
			}()
			// Hashing has begun (not only the small file).
			guard := time.Now().Add(hangGuard)
			for prog.Bytes()-before < 1<<20 && time.Now().Before(guard) {
				time.Sleep(time.Millisecond)
			}
			atCancel := prog.Bytes()
			hashed := atCancel - before
			if hashed < 1<<20 {
				cancel()
				t.Fatalf("%d bytes hashed after %v: the 20 GiB file is not being read", hashed, hangGuard)
			}
			cancel()
			start := time.Now()
			select {
			case r := <-done:
				after := prog.Bytes() - atCancel
				t.Logf("returned %v after cancel, %d KiB hashed after it (%d MiB before)",
					time.Since(start).Round(time.Microsecond), after>>10, hashed>>20)
				if limit := int64(64 << 20); after > limit {
					t.Errorf("%d MiB hashed after the cancel, want less than %d MiB: hashing does not stop when cancelled", after>>20, limit>>20)
				}
				if !errors.Is(r.err, context.Canceled) {
					t.Errorf("got error %v, want context.Canceled", r.err)
				}
				if r.n != 0 {
					t.Errorf("got %d findings from a cancelled check, want none", r.n)
				}
			case <-time.After(hangGuard):
				t.Fatalf("did not return %v after cancel (%d MiB hashed at cancel, %d MiB since): hashing is not cancellable",
					hangGuard, hashed>>20, (prog.Bytes()-atCancel)>>20)
			}
		})
	}
}
