package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/mountns"
	"github.com/integrityd/integrityd/internal/verify"
)

// watchLimitEnv gives a child test the inotify watch limit of the user
// namespace runWithWatchLimit started it in.
const watchLimitEnv = "INTEGRITYD_TEST_WATCH_LIMIT"

// runWithWatchLimit runs the test named child of this test binary in a
// user namespace whose inotify watch limit is limit (as TestWatchLimit
// of cmd/integrityd does for the daemon's binary), and fails t if it
// fails. It skips t, saying why, when that cannot be done.
func runWithWatchLimit(t *testing.T, child string, limit int) {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare(1) not installed: cannot lower the inotify limit for this test only")
	}
	set := fmt.Sprintf("echo %d > /proc/sys/user/max_inotify_watches", limit)
	if out, err := exec.Command(unshare, "--user", "--map-root-user", "sh", "-c", set).CombinedOutput(); err != nil {
		t.Skipf("user namespaces with their own inotify limit are not available here: %v %s", err, out)
	}
	mountns.Rerun(t, fmt.Sprintf("with %d inotify watches (a user namespace)", limit),
		[]string{unshare, "--user", "--map-root-user", "sh", "-c", set + ` && exec "$0" "$@"`},
		[]string{watchLimitEnv + "=" + strconv.Itoa(limit)}, child)
}

// enterWatchLimit is the first call of a child test: it skips unless
// runWithWatchLimit started it, and checks that the limit is in force.
func enterWatchLimit(t *testing.T, parent string) int {
	t.Helper()
	want := os.Getenv(watchLimitEnv)
	if want == "" {
		t.Skipf("run by %s, in a user namespace with a low inotify watch limit", parent)
	}
	data, err := os.ReadFile("/proc/sys/user/max_inotify_watches")
	if got := strings.TrimSpace(string(data)); err != nil || got != want {
		t.Fatalf("inotify watch limit %q (%v), want %s", got, err, want)
	}
	n, _ := strconv.Atoi(want)
	return n
}

// mkTree makes n directories below dir, 100 to a parent.
func mkTree(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("p%02d", i/100), fmt.Sprintf("d%02d", i%100)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// bigAppTree is a signed demo install with an app directory apps/name of
// 3,000 directories below lib/ and an empty appinfo/ (neither signed nor
// shipped yet).
func bigAppTree(t *testing.T, name string) (root string, keys *demo.Keys, big string) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "nc")
	keys, err := buildDemo(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	big = filepath.Join(root, "apps", name)
	mkTree(t, filepath.Join(big, "lib"), 3000)
	if err := os.MkdirAll(filepath.Join(big, "appinfo"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root, keys, big
}

// watchBudget is the inotify watch limit of TestWatchBudget: less than
// the directories of the unsigned app, far more than the rest.
const watchBudget = 2000

func TestWatchBudget(t *testing.T) {
	t.Parallel()
	runWithWatchLimit(t, "TestWatchBudgetInUserNS", watchBudget)
}

// TestWatchBudgetInUserNS, as an attacker would: an unsigned app with
// 3,000 directories in apps/ (it sorts before the shipped apps, and apps/
// before core/ and lib/), with room for 2,000 watches. Everything that is
// checked stays watched: core, the state directory, the trust directory;
// the unsigned app costs two watches. An app that becomes signed is then
// watched whole. When the limit is reached by something else (a tree of
// 2,500 directories moved into lib/), the entry names it.
func TestWatchBudgetInUserNS(t *testing.T) {
	t.Parallel()
	limit := enterWatchLimit(t, "TestWatchBudget")
	root, keys, big := bigAppTree(t, "bigapp")
	newapp := filepath.Join(root, "apps/newapp")
	deep := filepath.Join(newapp, "lib/deep/er")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, content := range map[string]string{
		filepath.Join(big, "appinfo/info.xml"):    "<?xml version=\"1.0\"?>\n<info><id>bigapp</id></info>\n",
		filepath.Join(newapp, "appinfo/info.xml"): "<?xml version=\"1.0\"?>\n<info><id>newapp</id></info>\n",
		filepath.Join(deep, "Impl.php"):           "<?php\nnamespace OCA\\NewApp;\nclass Impl {}\n",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(root, t.TempDir())
	cfg.ReverifyPeriod = -1 // only events, and full rescans every hour
	r := start(t, cfg)
	notWatched := func() int { return len(r.logs.FilterField(zapString("message_id", kind.IDNotWatched)).All()) }
	fullScans := func() int { return len(r.logs.FilterMessage("full scan done").All()) }

	// Core is watched: a backdoor is alerted at once.
	base := filepath.Join(root, "lib/base.php")
	orig, _ := os.ReadFile(base)
	if err := os.WriteFile(base, []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	scans := fullScans()
	if _, ok := r.waitAlert("core:lib/base.php"); !ok || fullScans() != scans {
		t.Fatalf("a backdoor in lib/ not alerted by its event (alerted %v, %d full scans): core is not watched", ok, fullScans()-scans)
	}
	os.WriteFile(base, orig, 0o644)
	// The state directory is watched: a Sync goes through it.
	r.waitIdle(t)
	// The trust directory is watched: the trust anchors written again
	// (a line more: the same bytes are no change) are read again at once.
	trust, _ := os.ReadFile(cfg.Trust)
	if err := os.WriteFile(cfg.Trust, append(trust, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	if n := len(r.logs.FilterMessage("trust anchors or CRL changed; verifying every manifest again").All()); n == 0 {
		t.Fatal("the trust anchors were written and the daemon did not notice: their directory is not watched")
	}
	// The unsigned app costs two watches, so nothing hits the limit.
	dirs, degraded := r.d.Snapshot().WatchedDirs()
	if degraded != "" || notWatched() != 0 || dirs > 100 {
		t.Fatalf("with an unsigned app of 3,000 directories and %d watches: %d directories watched, degraded %q", limit, dirs, degraded)
	}
	t.Logf("%d directories watched", dirs)
	assertSame(t, r, root, "with the unsigned app")

	// The unsigned app becomes signed: it is a scope, watched whole.
	if err := keys.Sign(t.Context(), verify.NewInstall(root, nil, "").App("newapp", newapp)); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	if n := len(r.logs.FilterMessage("app to check appeared").FilterField(zapString("integrity_scope", "newapp")).All()); n != 1 {
		t.Fatalf("%d 'app to check appeared' entries for newapp once signed, want 1", n)
	}
	scans = fullScans()
	if err := os.WriteFile(filepath.Join(deep, "Impl.php"), []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.waitAlert("newapp:lib/deep/er/Impl.php"); !ok {
		dirs, _ := r.d.Snapshot().WatchedDirs()
		t.Fatalf("a backdoor deep in an app signed meanwhile not alerted (%d directories watched)", dirs)
	}
	if n := fullScans(); n != scans {
		t.Errorf("%d full scans while the backdoor was found, want none: it must be found by its event", n-scans)
	}
	r.waitIdle(t)
	assertSame(t, r, root, "after newapp was signed")

	// The limit hit by something else: 2,500 directories moved into core.
	many := filepath.Join(t.TempDir(), "many")
	mkTree(t, many, 2500)
	if err := os.Rename(many, filepath.Join(root, "lib/many")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a 'directory not watched' entry", func() bool { return notWatched() > 0 })
	entries := r.logs.FilterField(zapString("message_id", kind.IDNotWatched)).All()
	if len(entries) != 1 {
		t.Fatalf("%d 'directory not watched' entries after 2,500 directories arrived with room for %d watches, want 1", len(entries), limit)
	}
	m := entries[0].ContextMap()
	largest, hint := fmt.Sprint(m["largest"]), fmt.Sprint(m["hint"])
	t.Logf("entry: dir=%v largest=%q hint=%q", m["dir"], largest, hint)
	held := watchesHeld(t, largest)
	if first := strings.SplitN(largest, "; ", 2)[0]; !strings.HasPrefix(first, "lib: ") || !strings.HasSuffix(first, " in lib/many)") {
		t.Errorf("largest %q: want lib first, naming lib/many", largest)
	}
	if len(held) > 5 {
		t.Errorf("largest %q: %d subtrees, want five at most", largest, len(held))
	}
	if n := held["apps/bigapp"]; n > 2 {
		t.Errorf("largest %q: the unsigned app holds %d watches", largest, n)
	}
	for _, want := range []string{"max_user_watches", "sysctl", "lib/many"} {
		if !strings.Contains(hint, want) {
			t.Errorf("hint %q does not say %q", hint, want)
		}
	}
}

// watchesHeld parses the largest field of the watch-limit entry
// ("lib: 1,977 directories (1,975 in lib/many); apps/files: 4
// directories"): watches by subtree.
func watchesHeld(t *testing.T, largest string) map[string]int {
	t.Helper()
	held := map[string]int{}
	for _, e := range strings.Split(largest, "; ") {
		name, rest, ok := strings.Cut(e, ": ")
		count, _, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(strings.ReplaceAll(count, ",", ""))
		if !ok || err != nil {
			t.Fatalf("largest %q: cannot read %q", largest, e)
		}
		held[name] = n
	}
	return held
}

func TestWatchOrder(t *testing.T) {
	t.Parallel()
	runWithWatchLimit(t, "TestWatchOrderInUserNS", watchBudget)
}

// TestWatchOrderInUserNS: a signed app of 3,000 directories, first of
// the apps in name order (and apps/ before core/ and lib/), with room for
// 2,000 watches, at start: the state and trust directories and core are
// watched first, so a backdoor in core is alerted at once; the entry
// names the app as holding the most watches.
func TestWatchOrderInUserNS(t *testing.T) {
	t.Parallel()
	limit := enterWatchLimit(t, "TestWatchOrder")
	root, keys, big := bigAppTree(t, "aaabig")
	if err := os.WriteFile(filepath.Join(big, "appinfo/info.xml"), []byte("<?xml version=\"1.0\"?>\n<info><id>aaabig</id></info>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := keys.Sign(t.Context(), verify.NewInstall(root, nil, "").App("aaabig", big)); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(root, t.TempDir())
	cfg.ReverifyPeriod = -1
	r := start(t, cfg)
	entries := r.logs.FilterField(zapString("message_id", kind.IDNotWatched)).All()
	if len(entries) != 1 {
		t.Fatalf("%d 'directory not watched' entries with a signed app of 3,000 directories and %d watches, want 1", len(entries), limit)
	}
	largest := fmt.Sprint(entries[0].ContextMap()["largest"])
	t.Logf("largest=%q", largest)
	if !strings.HasPrefix(largest, "apps/aaabig: ") {
		t.Errorf("largest %q: want apps/aaabig first", largest)
	}

	base := filepath.Join(root, "lib/base.php")
	if err := os.WriteFile(base, []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	scans := r.fullScans()
	if _, ok := r.waitAlert("core:lib/base.php"); !ok || r.fullScans() != scans {
		t.Fatalf("a backdoor in lib/ not alerted by its event (alerted %v, %d full scans): core lost its watches to an app", ok, r.fullScans()-scans)
	}
	r.waitIdle(t) // through the state directory
	trust, _ := os.ReadFile(cfg.Trust)
	if err := os.WriteFile(cfg.Trust, append(trust, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	if n := len(r.logs.FilterMessage("trust anchors or CRL changed; verifying every manifest again").All()); n == 0 {
		t.Fatal("the trust anchors were written and the daemon did not notice: their directory is not watched")
	}
}
