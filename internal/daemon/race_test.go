package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// raceStorm is how much TestRaceReloadScrapeStorm storms once the daemon
// is ready: at least this many storm operations, reloads, rescans,
// scrapes and snapshots read (an amount of work, not a time: on an idle
// machine about 3 s, when it did storm for 4 s).
var raceStorm = struct{ ops, reloads, rescans, scrapes, snaps int64 }{2000, 30, 15, 100, 100}

// TestRaceReloadScrapeStorm is meant for -race: for a while (raceStorm),
// metrics are scraped and snapshots read in a loop (from before Run on,
// as metrics exist once New returns), reloads flip the exclusions and the
// trust file (one of the trust files is rewritten meanwhile), rescans are
// asked for, and the tree is stormed with new, renamed and removed
// directories, changed signed files and extra files. Afterwards, with a
// final configuration of no exclusions and the tree's own trust, the
// findings must equal a one-shot check.
func TestRaceReloadScrapeStorm(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	root, files := stormTree(t, 500)
	trustPEM, otherPEM := trustPair(t, root)
	trustA := filepath.Join(t.TempDir(), "root.crt") // stays as it is
	trustB := filepath.Join(t.TempDir(), "root.crt") // rewritten during the storm
	for _, p := range []string{trustA, trustB} {
		if err := os.WriteFile(p, trustPEM, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	excluded := filepath.Join(root, "lib/storm/d07")

	final := testConfig(root, t.TempDir())
	with := func(trust string, exclude ...string) Config {
		c := final
		c.Trust, c.Exclude = trust, exclude
		return c
	}
	configs := []Config{
		with(trustB),
		with(trustA, excluded),
		with(final.Trust, excluded, filepath.Join(root, "apps/dashboard/lib")),
		with(trustB, excluded),
		with(trustA),
	}
	initial := with(trustA, excluded) // d07 is not watched from the start

	core, logs := observer.New(zapcore.InfoLevel)
	d, err := New(initial, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancelRun := context.WithCancel(context.Background())
	r := &running{d: d, sync: enableSync(d), logs: logs, cancel: cancelRun, done: make(chan error, 1)}

	ctx, stopWorkers := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stopWorkers(); wg.Wait() }) // on a failure before Run
	worker := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	var scrapes, snaps, reloads, rescans, ops atomic.Int64
	scraped := make(chan struct{})

	// Metrics, before Run and all along.
	worker(func() {
		m := d.Metrics()
		for ctx.Err() == nil {
			mfs, err := m.Registry.Gather()
			if err != nil {
				t.Errorf("gather: %v", err)
				return
			}
			var b bytes.Buffer
			enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
			for _, mf := range mfs {
				if err := enc.Encode(mf); err != nil {
					t.Errorf("encode %s: %v", mf.GetName(), err)
					return
				}
			}
			if !strings.Contains(b.String(), "integrityd_scopes ") {
				t.Errorf("no integrityd_scopes in the scrape:\n%s", b.String())
				return
			}
			if scrapes.Add(1) == 1 {
				close(scraped)
			}
		}
	})
	worker(func() {
		m := d.Metrics()
		for ctx.Err() == nil {
			if _, err := testutil.GatherAndCount(m.Registry, "integrityd_findings"); err != nil {
				t.Errorf("gather and count: %v", err)
				return
			}
			testutil.ToFloat64(m.fullScans)
			testutil.CollectAndCount(stateCollector{d})
			time.Sleep(time.Millisecond)
		}
	})
	// Snapshots: each is immutable, so its accessors agree with each other.
	worker(func() {
		var last uint64
		for ctx.Err() == nil {
			s := d.Snapshot()
			if s.Seq < last {
				t.Errorf("snapshot Seq went back from %d to %d", last, s.Seq)
				return
			}
			last = s.Seq
			fs, n := s.Findings(), s.Count()
			saved := s.sorted() // what the saver writes
			if len(fs) != n || len(saved) != n {
				t.Errorf("snapshot %d: %d findings, Count %d, to save %d", s.Seq, len(fs), n, len(saved))
				return
			}
			s.WatchedDirs()
			if s.statusLine() == "" {
				t.Error("empty status line")
				return
			}
			d.Findings()
			if snaps.Add(1)%8 == 0 {
				time.Sleep(time.Millisecond) // leave the daemon some CPU
			}
		}
	})

	// Let the scrapers go before Run: the start-up path races with them.
	select {
	case <-scraped:
	case <-time.After(hangGuard):
		t.Fatalf("no scrape %v after New", hangGuard)
	}
	ready := make(chan struct{})
	go func() { r.done <- d.Run(runCtx, func() { close(ready) }) }()
	t.Cleanup(func() { stopWorkers(); wg.Wait(); r.stop() })

	// Reloads and rescans. The loop applies a reload as soon as it takes
	// it, also while a scan runs; the caller waits for the scan after
	// it. The second goroutine stops waiting after 20 ms (the reload is
	// applied anyway, most of the time), so that the configuration
	// changes many times while scans run.
	for g, wait := range []time.Duration{time.Minute, 20 * time.Millisecond} {
		worker(func() {
			for i := g; ctx.Err() == nil; i += 2 {
				rctx, cancel := context.WithTimeout(ctx, wait)
				var err error
				if i%3 == 2 {
					err = d.Rescan(rctx)
					rescans.Add(1)
				} else {
					err = d.Reload(rctx, configs[i%len(configs)])
					reloads.Add(1)
				}
				cancel()
				if err != nil && ctx.Err() == nil && !(errors.Is(err, context.DeadlineExceeded) && wait < time.Second) {
					t.Errorf("reload %d: %v", i, err)
					return
				}
			}
		})
	}
	worker(func() {
		for ctx.Err() == nil {
			if err := d.Rescan(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("rescan: %v", err)
				return
			}
			rescans.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	})
	// Trust file B: the right CA, another CA, garbage, rewritten in
	// place or replaced.
	worker(func() {
		contents := [][]byte{trustPEM, otherPEM, []byte("not a certificate\n"), trustPEM, {}}
		for i := 0; ctx.Err() == nil; i++ {
			c := contents[i%len(contents)]
			if i%2 == 0 {
				os.WriteFile(trustB, c, 0o644)
			} else {
				tmp := trustB + ".tmp"
				if os.WriteFile(tmp, c, 0o644) == nil {
					os.Rename(tmp, trustB)
				}
			}
			time.Sleep(15 * time.Millisecond)
		}
		os.WriteFile(trustB, trustPEM, 0o644)
	})

	seed := time.Now().UnixNano()
	t.Logf("storm seed %d", seed)
	// Directories: new ones with files, renamed, removed; signed ones
	// moved away and back (the excluded one too).
	worker(func() {
		rnd := rand.New(rand.NewSource(seed))
		storm := filepath.Join(root, "lib/storm")
		away := map[string]bool{}
		var made []string
		for ctx.Err() == nil {
			switch rnd.Intn(6) {
			case 0, 1:
				n := filepath.Join(storm, fmt.Sprintf("new%d", rnd.Intn(30)))
				if os.MkdirAll(filepath.Join(n, "sub"), 0o755) == nil {
					os.WriteFile(filepath.Join(n, "a.php"), []byte("<?php // new\n"), 0o644)
					os.WriteFile(filepath.Join(n, "sub", "b.js"), []byte("// new\n"), 0o644)
					made = append(made, n)
				}
			case 2:
				if len(made) > 0 {
					i := rnd.Intn(len(made))
					n := filepath.Join(storm, fmt.Sprintf("ren%d", rnd.Intn(30)))
					if os.Rename(made[i], n) == nil {
						made[i] = n
					}
				}
			case 3:
				if len(made) > 0 {
					i := rnd.Intn(len(made))
					os.RemoveAll(made[i])
					made = append(made[:i], made[i+1:]...)
				}
			case 4, 5:
				dir := filepath.Join(storm, fmt.Sprintf("d%02d", rnd.Intn(10)))
				if rnd.Intn(3) == 0 {
					dir = excluded
				}
				if away[dir] {
					if os.Rename(dir+".away", dir) == nil {
						delete(away, dir)
					}
				} else if os.Rename(dir, dir+".away") == nil {
					away[dir] = true
				}
			}
			ops.Add(1)
			time.Sleep(time.Duration(rnd.Intn(3)) * time.Millisecond)
		}
		for dir := range away {
			if err := os.Rename(dir+".away", dir); err != nil {
				t.Errorf("storm: %v", err)
			}
		}
	})
	// Files: signed ones changed and restored, extra files, a manifest
	// rewritten with the same content (the scope is held).
	worker(func() {
		rnd := rand.New(rand.NewSource(seed + 1))
		manifest := filepath.Join(root, "apps/dashboard/appinfo/signature.json")
		sig, err := os.ReadFile(manifest)
		if err != nil {
			t.Error(err)
			return
		}
		extra := []string{
			filepath.Join(root, "apps/files/js/extra.js"),
			filepath.Join(root, "apps/dashboard/lib/Extra.php"),
			filepath.Join(excluded, "extra.php"),
			filepath.Join(root, "lib/storm/d03/extra.php"),
			filepath.Join(root, "core/js/extra.js"),
		}
		for ctx.Err() == nil {
			i := rnd.Intn(len(files))
			switch rnd.Intn(8) {
			case 0, 1, 2:
				appendTo(files[i], "// tampered\n")
			case 3, 4:
				os.WriteFile(files[i], []byte(fmt.Sprintf("<?php // %d\n", i)), 0o644)
			case 5:
				os.WriteFile(extra[rnd.Intn(len(extra))], []byte("<?php // extra\n"), 0o644)
			case 6:
				os.Remove(extra[rnd.Intn(len(extra))])
			case 7:
				if rnd.Intn(50) == 0 {
					os.WriteFile(manifest, sig, 0o644)
				}
			}
			ops.Add(1)
			if rnd.Intn(4) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})

	select {
	case <-ready:
	case err := <-r.done:
		r.done <- err
		t.Fatalf("daemon stopped: %v", err)
	case <-time.After(hangGuard):
		t.Fatalf("no initial scan after %v", hangGuard)
	}
	readyAt := time.Since(begin)
	// Counted from the start: the storm before Run is start-up's share.
	waitFor(t, "the storm's work", func() bool {
		return t.Failed() || ops.Load() >= raceStorm.ops && reloads.Load() >= raceStorm.reloads && rescans.Load() >= raceStorm.rescans &&
			scrapes.Load() >= raceStorm.scrapes && snaps.Load() >= raceStorm.snaps
	})
	stopWorkers()
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d scrapes, %d snapshots read, %d reloads, %d rescans, %d storm operations",
		scrapes.Load(), snaps.Load(), reloads.Load(), rescans.Load(), ops.Load())
	stormed := time.Since(begin)
	defer func() {
		t.Logf("tree and start %v, storm until %v, final check done %v", readyAt, stormed, time.Since(begin))
	}()

	fctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := d.Reload(fctx, final); err != nil {
		t.Fatalf("final reload: %v", err)
	}
	if err := r.sync.Sync(fctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
	assertSame(t, r, root, "after the storm and the final reload")
}

// TestReloadUnexcluded: once a reload stops excluding a directory that
// was excluded at start (so never watched), changes in it are checked
// like anywhere else, also in a directory created while it was excluded.
func TestReloadUnexcluded(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	if err := buildDemoTree(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	excluded := filepath.Join(root, "lib/private")
	cfg := testConfig(root, t.TempDir())
	cfg.Exclude = []string{excluded}
	r := start(t, cfg)
	if err := os.MkdirAll(filepath.Join(excluded, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := r.d.Reload(ctx, testConfig(root, cfg.StateDir)); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	assertSame(t, r, root, "after the reload")
	os.WriteFile(filepath.Join(excluded, "Server.php"), []byte("<?php // tampered\n"), 0o644)
	os.WriteFile(filepath.Join(excluded, "new", "x.php"), []byte("<?php // extra\n"), 0o644)
	r.waitIdle(t)
	assertSame(t, r, root, "after changes in "+excluded+", excluded at start, not since the reload")
}

// TestReloadTrustWatched: after a reload points the trust anchors to a
// file in another directory, a change of that file makes the daemon
// verify every manifest again, as a change of the trust file it started
// with does.
func TestReloadTrustWatched(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	if err := buildDemoTree(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	trustPEM, otherPEM := trustPair(t, root)
	trustA := filepath.Join(t.TempDir(), "root.crt")
	trustB := filepath.Join(t.TempDir(), "root.crt")
	for _, p := range []string{trustA, trustB} {
		if err := os.WriteFile(p, trustPEM, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(root, t.TempDir())
	cfg.Trust = trustA
	r := start(t, cfg)
	for _, trust := range []string{trustA, trustB} {
		cfg.Trust = trust
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		err := r.d.Reload(ctx, cfg)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, content := range [][]byte{otherPEM, trustPEM} {
			tmp := trust + ".tmp"
			if err := os.WriteFile(tmp, content, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, trust); err != nil {
				t.Fatal(err)
			}
			r.waitIdle(t)
			got, want := render(r.d.Findings()), render(checkWith(t, root, trust, r.d.Snapshot().meta.Signed))
			if got != want {
				t.Fatalf("trust %s (started with %s) rewritten after a reload to it: findings differ from a one-shot check with it\ndaemon:\n%s\ncheck:\n%s", trust, trustA, got, want)
			}
		}
	}
}

// trustPair returns the tree's trust anchor and another certificate to
// use as one: the dashboard's leaf (no new key needed).
func trustPair(t testing.TB, root string) (trust, other []byte) {
	t.Helper()
	trust, err := os.ReadFile(filepath.Join(root, "resources/codesigning/root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	var sig struct{ Certificate string }
	if data, err := os.ReadFile(filepath.Join(root, "apps/dashboard/appinfo/signature.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(data, &sig); err != nil || sig.Certificate == "" {
		t.Fatalf("dashboard certificate: %v", err)
	}
	return trust, []byte(sig.Certificate)
}
