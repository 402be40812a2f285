package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/kind"
)

// stormTree is a demo install whose core has n more files, signed.
func stormTree(t testing.TB, n int) (string, []string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "nc")
	keys, err := buildDemo(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for i := 0; i < n; i++ {
		p := filepath.Join(root, "lib", "storm", fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%05d.php", i))
		if i < 50 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("<?php // %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	if err := keys.Sign(context.Background(), verifyCore(root)); err != nil {
		t.Fatal(err)
	}
	return root, files
}

// TestStorm modifies 10,000 files as fast as possible: afterwards the
// findings equal a fresh check, and each changed file was alerted once.
func TestStorm(t *testing.T) {
	t.Parallel()
	n := 10000
	if testing.Short() {
		n = 2000
	}
	root, files := stormTree(t, n)
	r := start(t, testConfig(root, t.TempDir()))
	begin := time.Now()
	for _, f := range files {
		h, err := os.OpenFile(f, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		h.Write([]byte("// tampered\n"))
		h.Close()
	}
	written := time.Since(begin)
	r.waitIdle(t)
	t.Logf("%d files modified in %v, all checked %v after the first write", n, written, time.Since(begin))
	assertSame(t, r, root, "after the storm")
	// One alert per file, or a summary counting it (more than
	// alertsPerDir in one directory at once).
	got := alerts(r.logs, sortAlert)
	if covered := len(got) + summarized(r, false); covered != n {
		t.Errorf("alerts for %d paths and summaries, %d in all, want %d", len(got), covered, n)
	}
	for p, c := range got {
		if c != 1 {
			t.Errorf("%s alerted %d times", p, c)
		}
	}
	// Heal them all: one resolved entry each (or summarized).
	for i, f := range files {
		os.WriteFile(f, []byte(fmt.Sprintf("<?php // %d\n", i)), 0o644)
	}
	r.waitIdle(t)
	assertSame(t, r, root, "after healing")
	healed := alerts(r.logs, sortResolved)
	if covered := len(healed) + summarized(r, true); covered != n {
		t.Errorf("resolved entries for %d paths and summaries, %d in all, want %d", len(healed), covered, n)
	}
}

// summarized adds up the counts of the flood summaries that
// are of resolved findings (healed) or not.
func summarized(r *running, healed bool) int {
	n := 0
	for _, e := range r.logs.FilterField(zapString("message_id", kind.IDFlood)).All() {
		if strings.HasPrefix(e.Message, "resolved ") == healed {
			n += int(e.ContextMap()["integrity_count"].(int64))
		}
	}
	return n
}

// TestNeverQuiet: a scope being updated that keeps changing is still
// reloaded after MaxHold, so what only the new manifest finds is delayed,
// not lost. Core gets a new validly signed manifest that expects another
// index.php: only once it is in force is index.php wrong (while the update
// is held, a file right under either manifest is not alerted). The new
// manifest is renamed into place again and again, which keeps the hold
// going, until the alert comes.
func TestNeverQuiet(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	keys, err := buildDemo(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	manifest, index := filepath.Join(root, "core/signature.json"), filepath.Join(root, "index.php")
	was, _ := os.ReadFile(manifest)
	code, _ := os.ReadFile(index)
	os.WriteFile(index, []byte("<?php // the next release\n"), 0o644)
	if err := keys.Sign(context.Background(), verifyCore(root)); err != nil {
		t.Fatal(err)
	}
	next, _ := os.ReadFile(manifest)
	os.WriteFile(index, code, 0o644)
	os.WriteFile(manifest, was, 0o644)
	cfg := testConfig(root, t.TempDir())
	cfg.Settle, cfg.MaxHold = 300*time.Millisecond, 1500*time.Millisecond
	r := start(t, cfg)
	if fs := r.d.Findings(); len(fs) != 0 {
		t.Fatalf("at start: %s", render(fs))
	}
	tmp := filepath.Join(t.TempDir(), "signature.json") // outside the tree, on its filesystem
	stop := time.Now().Add(hangGuard)
	seen := false
	for time.Now().Before(stop) {
		// The new manifest, renamed into place every 100 ms (each time a
		// change of the scope being updated: its hold goes on).
		if err := os.WriteFile(tmp, next, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, manifest); err != nil {
			t.Fatal(err)
		}
		if alerts(r.logs, sortAlert)["core:index.php"] > 0 {
			seen = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !seen {
		t.Fatalf("no alert on index.php while the scope kept changing for %v (MaxHold 1.5 s): %s", hangGuard, render(r.d.Findings()))
	}
	if n := r.logs.FilterMessage("scope checked after changes").Len(); n == 0 {
		t.Error("the alert came without the held scope being reloaded")
	}
	if got := alerts(r.logs, sortAlert); len(got) != 1 {
		t.Errorf("alerts: %v, want only core:index.php", got)
	}
}

func openAppend(path string) (*os.File, error) { return os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0) }

// TestBurstNotHeld: a big burst is folded into one recheck of the scope
// at once, not held until the scope is quiet (steady writes would then
// delay every finding); only updates (a new manifest) are held. Every
// file's finding is there before the scope would be checked once quiet
// (settle is a minute). Their journal entries are folded (fold.go): the
// first at once, the others at MaxHold here, still before the settle.
func TestBurstNotHeld(t *testing.T) {
	t.Parallel()
	root, files := stormTree(t, 200)
	cfg := testConfig(root, t.TempDir())
	cfg.ChurnPaths, cfg.Settle, cfg.MaxHold = 10, time.Minute, 2*time.Second
	r := start(t, cfg)
	begin := time.Now()
	for _, f := range files {
		if err := appendTo(f, "x"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, fmt.Sprintf("%d findings", len(files)), func() bool { return len(r.d.Findings()) >= len(files) })
	if n := len(alerts(r.logs, sortAlert)); n == 0 {
		t.Error("no alert when every finding is there: the first of a fold is logged at once")
	}
	waitFor(t, fmt.Sprintf("%d alerts", len(files)), func() bool { return len(alerts(r.logs, sortAlert)) >= len(files) })
	if n := len(r.logs.FilterMessage("scope checked after changes").All()); n != 0 {
		t.Fatalf("the alerts came after %d scopes were held and checked once quiet (settle is 1 min): the burst was held", n)
	}
	t.Logf("%d alerts %v after the first write", len(files), time.Since(begin))
	r.waitIdle(t)
	assertSame(t, r, root, "after the burst")
}

// TestFoldEndsBesideNoise: a fold ends once the install is quiet, however
// busy the directory above it is (the daemon watches the root's parents
// for a rename of the tree: /tmp, /var/www get events of their own). An
// event there is not a change of the install; counted as one, it kept the
// held-back alerts from coming until MaxHold (an hour here).
func TestFoldEndsBesideNoise(t *testing.T) {
	t.Parallel()
	root, files := stormTree(t, 3)
	cfg := testConfig(root, t.TempDir())
	cfg.MaxHold = time.Hour
	r := start(t, cfg)
	for _, f := range files {
		if err := appendTo(f, "x"); err != nil {
			t.Fatal(err)
		}
	}
	beside := filepath.Dir(root)
	ctx, cancel := context.WithCancel(context.Background())
	noise := make(chan struct{})
	go func() {
		defer close(noise)
		for i := 0; ctx.Err() == nil; i++ {
			p := filepath.Join(beside, fmt.Sprintf("tmp%d", i%4))
			os.WriteFile(p, []byte("x"), 0o644)
			os.Remove(p)
			time.Sleep(20 * time.Millisecond) // far below Settle (300 ms)
		}
	}()
	waitFor(t, "the held-back alerts while the parent directory is busy", func() bool {
		return len(alerts(r.logs, sortAlert)) == len(files)
	})
	cancel()
	<-noise
	if n := r.logs.FilterField(zapString("message_id", kind.IDFolded)).Len(); n != 2 {
		t.Errorf("%d fold entries, want 2 (alerts wait, the fold's sum)", n)
	}
}
