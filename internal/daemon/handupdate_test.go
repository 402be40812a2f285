package daemon

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/integrityd/integrityd/internal/expect"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// handRelease builds the demo install at root and the next release
// (updaterRelease's: files changed, added and removed in core and in the
// files app, signed) in a directory of its own, out of the updater's
// stage: nothing tells the daemon that an update comes.
func handRelease(t *testing.T, root string) string {
	t.Helper()
	stage := updaterRelease(t, root)
	next := filepath.Join(t.TempDir(), "nextcloud")
	if err := os.Rename(stage, next); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "data", "updater-demo")); err != nil {
		t.Fatal(err)
	}
	return next
}

// rsyncOver does what rsync -a --delete SRC/ DST/ does to DST: directory
// by directory in name order, the entries SRC lacks deleted first, then
// each changed file written to a temporary ".NAME.XXXXXX" beside it and
// renamed over it; mid runs after half of the files, with the last file
// written. With manifestsLast, the signature.json files are copied at
// the end, after it ran (as a tool that copies in another order does).
func rsyncOver(t *testing.T, src, dst string, keep []string, manifestsLast func(), mid func(rel string)) {
	t.Helper()
	var manifests []string
	rnd := rand.New(rand.NewSource(1))
	total, done := countFiles(t, src), 0
	var walk func(rel string)
	var copyOne func(rel string)
	walk = func(rel string) {
		sents, err := os.ReadDir(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		has := map[string]bool{}
		for _, e := range sents {
			has[e.Name()] = true
		}
		dents, _ := os.ReadDir(filepath.Join(dst, rel))
		for _, e := range dents {
			if !has[e.Name()] && !(rel == "" && excluded(e.Name(), keep)) {
				if err := os.RemoveAll(filepath.Join(dst, rel, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, e := range sents {
			r := filepath.Join(rel, e.Name())
			if e.IsDir() {
				if err := os.MkdirAll(filepath.Join(dst, r), 0o755); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if manifestsLast != nil && e.Name() == "signature.json" {
				manifests = append(manifests, r)
				continue
			}
			copyOne(r)
			if done++; done >= total/2 && strings.HasSuffix(r, ".php") {
				mid(r) // the first PHP file from halfway on
			}
		}
		for _, e := range sents {
			if e.IsDir() {
				walk(filepath.Join(rel, e.Name()))
			}
		}
	}
	copyOne = func(r string) {
		data, err := os.ReadFile(filepath.Join(src, r))
		if err != nil {
			t.Fatal(err)
		}
		if old, err := os.ReadFile(filepath.Join(dst, r)); err != nil || !bytes.Equal(old, data) {
			tmp := filepath.Join(dst, filepath.Dir(r), fmt.Sprintf(".%s.%06x", filepath.Base(r), rnd.Intn(1<<24)))
			if err := os.WriteFile(tmp, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dst, r)); err != nil {
				t.Fatal(err)
			}
		}
	}
	walk("")
	if manifestsLast != nil {
		manifestsLast()
	}
	for _, r := range manifests {
		copyOne(r)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// tarOver extracts an archive of src over dst with the system's tar, as
// an admin does who unpacks a release over the tree; mid runs while tar
// still writes (tar reads its archive from a pipe that mid's half waits
// for).
func tarOver(t *testing.T, src, dst string, mid func(rel string)) {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "next.tar")
	if out, err := exec.Command("tar", "-C", src, "-cf", archive, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar -c: %v: %s", err, out)
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tar", "-C", dst, "-xf", "-")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	half := len(data) / 2
	if _, err := in.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	first := firstMember(t, archive, src)
	want, _ := os.ReadFile(filepath.Join(src, first))
	waitFor(t, "tar to extract "+first, func() bool {
		got, err := os.ReadFile(filepath.Join(dst, first))
		return err == nil && bytes.Equal(got, want)
	})
	mid(first)
	if _, err := in.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tar -x: %v: %s", err, stderr.String())
	}
}

// firstMember is the archive's first regular file that the release
// changes (PHP, so that a backdoor appended to it is code).
func firstMember(t *testing.T, archive, src string) string {
	t.Helper()
	out, err := exec.Command("tar", "-tf", archive).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range strings.Split(string(out), "\n") {
		rel := strings.TrimPrefix(m, "./")
		if fi, err := os.Stat(filepath.Join(src, rel)); err == nil && fi.Mode().IsRegular() && strings.HasSuffix(rel, ".php") {
			return rel
		}
	}
	t.Fatal("no PHP file in the archive")
	return ""
}

// warningsByScope counts the entries at warning level or above, by
// scope, leaving out those about the paths in not.
func (r *running) warningsByScope(not map[string]bool) map[string][]string {
	out := map[string][]string{}
	for _, e := range r.logs.All() {
		if e.Level < zapcore.WarnLevel {
			continue
		}
		m := e.ContextMap()
		scope, _ := m["integrity_scope"].(string)
		path, _ := m["integrity_path"].(string)
		if not[scope+":"+path] {
			continue
		}
		out[scope] = append(out[scope], e.Message)
	}
	return out
}

// TestHandUpdate: an update by hand between two signed releases, by
// rsync -a --delete and by tar -x over the tree, with nothing staged:
// at most one warning per scope for the update's own files; with the
// release staged first by expect-release ("+expected"), none; a backdoor
// written halfway through (in a file the update does not change)
// alerted by name, and the end state a one-shot check's.
func TestHandUpdate(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar on this machine: the tar case needs the real one")
	}
	for _, how := range []string{"rsync", "tar", "manifests-last", "rsync+expected", "tar+expected"} {
		for _, backdoor := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/backdoor=%v", how, backdoor), func(t *testing.T) {
				t.Parallel()
				way, expected := strings.CutSuffix(how, "+expected")
				root := filepath.Join(t.TempDir(), "nc")
				next := handRelease(t, root)
				cfg := testConfig(root, t.TempDir())
				r := start(t, cfg)
				if fs := r.d.Findings(); len(fs) != 0 {
					t.Fatalf("at start: %s", render(fs))
				}
				if expected {
					expectRelease(t, r, cfg, next)
				}
				// The backdoor goes into a file the update has written
				// already: nothing the update does later heals it.
				shell := ""
				mid := func(rel string) {
					if backdoor && shell == "" {
						shell = scopeKey(r, root, rel)
						if err := appendTo(filepath.Join(root, rel), "<?php system($_GET['c']);\n"); err != nil {
							t.Fatal(err)
						}
					}
				}
				switch way {
				case "rsync":
					rsyncOver(t, next, root, []string{"config", "data"}, nil, mid)
				case "manifests-last":
					// The manifests come once the daemon has seen the
					// update's other files.
					seen := r.sync.expectBatch(filepath.Join(root, "lib/base.php"))
					rsyncOver(t, next, root, []string{"config", "data"}, func() {
						select {
						case <-seen:
						case <-time.After(hangGuard):
							t.Fatal("lib/base.php's change not handled")
						}
					}, mid)
				case "tar":
					tarOver(t, next, root, mid)
				}
				r.waitIdle(t)
				assertSame(t, r, root, "after the update")
				// What is left wrong at the end (tar leaves the file the
				// new release removed: Nextcloud reports it too) and the
				// backdoor are alerted as they must be; the rest of the
				// update gets at most one warning per scope.
				left := map[string]bool{}
				for _, f := range r.d.Findings() {
					left[f.Scope+":"+f.Path] = true
				}
				most := 1
				if expected {
					most = 0
				}
				for scope, ws := range r.warningsByScope(left) {
					if len(ws) > most {
						sort.Strings(ws)
						t.Errorf("%s: %d warnings for an honest update by hand, want at most %d:\n%s", scope, len(ws), most, strings.Join(ws, "\n"))
					}
				}
				if n := alerts(r.logs, sortAlert)[shell]; backdoor && n == 0 {
					t.Errorf("no alert for the backdoor written halfway through in %s", shell)
				}
				if n := r.logs.FilterMessageSnippet("their alerts wait").Len(); expected && n != 0 {
					t.Errorf("%d folds begun with the release expected: its files are update steps", n)
				}
				if backdoor && !left[shell] {
					t.Errorf("the backdoor is not a finding at the end")
				}
				if way == "rsync" && !backdoor && len(left) != 0 {
					t.Errorf("findings after an honest rsync update: %v", left)
				}
				if n := r.logs.FilterField(zapString("message_id", kind.IDFolded)).Len(); way == "manifests-last" && n == 0 {
					t.Errorf("no entry summing up the folded alerts")
				}
				if t.Failed() {
					for _, e := range r.logs.All() {
						t.Logf("%s %s %v", e.Level, e.Message, e.ContextMap()["integrity_path"])
					}
				}
			})
		}
	}
}

// expectRelease stages next as expect-release does and waits until the
// daemon has taken it in.
func expectRelease(t *testing.T, r *running, cfg Config, next string) {
	t.Helper()
	tr, err := verify.LoadTrust(cfg.Trust, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := expect.Stage(cfg.StateDir, next, tr, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the expected release taken in", func() bool {
		return r.logs.FilterMessageSnippet("a release expected by expect-release").Len() > 0
	})
}

// scopeKey is "scope:key" of the file at rel below root.
func scopeKey(r *running, root, rel string) string {
	if app, rest, ok := strings.Cut(rel, "/"); ok && app == "apps" {
		name, key, _ := strings.Cut(rest, "/")
		return name + ":" + key
	}
	return "core:" + rel
}

// appUpdateAsNextcloud replaces the app directory dir by src as
// Nextcloud's Installer::downloadApp does (33.0.1): Files::rmdirr (the
// entries child first, then the directory), mkdir, then copyRecursive in
// scandir's (sorted) order; removed runs between the removal and the
// mkdir, mid with each file copied.
func appUpdateAsNextcloud(t *testing.T, src, dir string, removed func(), mid func(rel string)) {
	t.Helper()
	for _, rel := range childFirst(t, dir) {
		if err := os.Remove(filepath.Join(dir, rel)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	removed()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var copyRecursive func(rel string)
	copyRecursive = func(rel string) {
		ents, err := os.ReadDir(filepath.Join(src, rel)) // sorted, as scandir
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			r := filepath.Join(rel, e.Name())
			if e.IsDir() {
				if err := os.Mkdir(filepath.Join(dir, r), 0o755); err != nil {
					t.Fatal(err)
				}
				copyRecursive(r)
				continue
			}
			data, err := os.ReadFile(filepath.Join(src, r))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, r), data, 0o644); err != nil {
				t.Fatal(err)
			}
			mid(r)
		}
	}
	copyRecursive("")
}

// TestAppUpdate: an app updated as Nextcloud does it (its directory
// removed, the new one copied in, its manifest arriving partway): no
// SCOPE_GONE, at most one warning for the app, a backdoor written into a
// file already copied (once the new manifest is there) alerted by name,
// and the end state a one-shot check's.
func TestAppUpdate(t *testing.T) {
	t.Parallel()
	for _, backdoor := range []bool{false, true} {
		t.Run(fmt.Sprintf("backdoor=%v", backdoor), func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "nc")
			next := handRelease(t, root)
			r := start(t, testConfig(root, t.TempDir()))
			if fs := r.d.Findings(); len(fs) != 0 {
				t.Fatalf("at start: %s", render(fs))
			}
			manifest, shell := false, ""
			// The daemon sees the app gone before it is back (a busy
			// machine can let it see that between rmdir and mkdir).
			gone := r.sync.expectBatch(filepath.Join(root, "apps/files"))
			appUpdateAsNextcloud(t, filepath.Join(next, "apps/files"), filepath.Join(root, "apps/files"), func() {
				select {
				case <-gone:
				case <-time.After(hangGuard):
					t.Fatal("the app's removal not handled")
				}
			}, func(rel string) {
				manifest = manifest || rel == "appinfo/signature.json"
				if backdoor && manifest && shell == "" && strings.HasSuffix(rel, ".php") {
					shell = "files:" + rel
					if err := appendTo(filepath.Join(root, "apps/files", rel), "<?php system($_GET['c']);\n"); err != nil {
						t.Fatal(err)
					}
				}
			})
			if backdoor && shell == "" {
				t.Fatal("no PHP file copied after the manifest: the test's release is not what it expects")
			}
			r.waitIdle(t)
			assertSame(t, r, root, "after the app update")
			if n := r.logs.FilterField(zapString("message_id", kind.IDScopeGone)).Len(); n != 0 {
				t.Errorf("%d SCOPE_GONE for an app updated as Nextcloud does", n)
			}
			left := map[string]bool{}
			for _, f := range r.d.Findings() {
				left[f.Scope+":"+f.Path] = true
			}
			for scope, ws := range r.warningsByScope(left) {
				if len(ws) > 1 {
					t.Errorf("%s: %d warnings for an honest app update, want at most 1:\n%s", scope, len(ws), strings.Join(ws, "\n"))
				}
			}
			if backdoor && alerts(r.logs, sortAlert)[shell] == 0 {
				t.Errorf("no alert for the backdoor in %s", shell)
			}
			if !backdoor && len(left) != 0 {
				t.Errorf("findings after an honest app update: %v", left)
			}
			if t.Failed() {
				for _, e := range r.logs.All() {
					t.Logf("%s %s %v", e.Level, e.Message, e.ContextMap()["integrity_path"])
				}
			}
		})
	}
}

// TestAppRemoved: a signed app's directory removed for good is
// SCOPE_GONE, once it is clear it is not coming back (Settle).
func TestAppRemoved(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	r := start(t, testConfig(root, t.TempDir()))
	if err := os.RemoveAll(filepath.Join(root, "apps/files")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SCOPE_GONE files", func() bool {
		return r.logs.FilterField(zapString("message_id", kind.IDScopeGone)).Len() == 1
	})
	r.waitIdle(t)
	assertSame(t, r, root, "after the app's removal")
}

// TestExpectedHeldScope: with a release expected, core held (its
// version.php changed) is checked whole once quiet against the manifest
// in force; the files the update wrote before that check began match only
// the expected release, and are no alert (a live recheck's rule, kept by
// the whole check). The end state, once the new manifest is in, is a
// one-shot check's.
func TestExpectedHeldScope(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	next := handRelease(t, root)
	cfg := testConfig(root, t.TempDir())
	r := start(t, cfg)
	expectRelease(t, r, cfg, next)
	for _, rel := range []string{"version.php", "lib/base.php", "lib/private/New.php", "index.php"} {
		data, err := os.ReadFile(filepath.Join(next, rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.waitIdle(t)
	if n := r.logs.FilterMessage("scope checked after changes").Len(); n == 0 {
		t.Fatal("core was not held and checked whole: the test does not test what it says")
	}
	if ws := r.warningsByScope(nil); len(ws) != 0 {
		t.Errorf("warnings for files the expected release signs: %v", ws)
	}
	if fs := r.d.Findings(); len(fs) != 0 {
		t.Errorf("findings for files the expected release signs: %s", render(fs))
	}
	// The rest of the update: the new manifests, then the end state,
	// with a file the new manifest lists missing from the copy (a
	// mirrored tree lacks big files): a finding at the end, as in
	// Nextcloud's check, though a missing file is an update step while
	// the update goes on.
	if err := os.Remove(filepath.Join(next, "lib/private/New.php")); err != nil {
		t.Fatal(err)
	}
	rsyncOver(t, next, root, []string{"config", "data"}, nil, func(string) {})
	r.waitIdle(t)
	assertSame(t, r, root, "after the update")
	if fs := r.d.Findings(); len(fs) != 1 || fs[0].Kind != kind.FileMissing {
		t.Errorf("findings at the end %s, want lib/private/New.php missing", render(fs))
	}
}

// TestExpectedLeftovers: tar over the tree with the release expected,
// then the admin's cleanup of what the new release no longer has (as
// after tar or cp): the file of the release before, an EXTRA_FILE once the
// new manifest is adopted, waits for the cleanup and is no alert; left
// there, it is alerted once the install is quiet.
func TestExpectedLeftovers(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar on this machine: the test needs the real one")
	}
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprintf("cleanup=%v", clean), func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "nc")
			next := handRelease(t, root)
			cfg := testConfig(root, t.TempDir())
			cfg.Settle = 10 * time.Second // the cleanup comes within it, however busy the machine
			r := start(t, cfg)
			expectRelease(t, r, cfg, next)
			tarOver(t, next, root, func(string) {})
			waitFor(t, "core's expected release adopted", func() bool {
				return r.logs.FilterMessageSnippet("core updated to the expected release").Len() > 0
			})
			if clean {
				if err := os.Remove(filepath.Join(root, "core/css/server.css")); err != nil {
					t.Fatal(err)
				}
			}
			r.waitIdle(t)
			assertSame(t, r, root, "after the update")
			n := alerts(r.logs, sortAlert)["core:core/css/server.css"]
			if clean && n != 0 {
				t.Errorf("the release before's file, removed by the cleanup, alerted %d times", n)
			}
			if !clean && n != 1 {
				t.Errorf("the release before's file left there alerted %d times, want 1", n)
			}
			if clean {
				if ws := r.warningsByScope(nil); len(ws) != 0 {
					t.Errorf("warnings for an announced update: %v", ws)
				}
			}
		})
	}
}

// TestExpectedMissingBefore: a file missing before an announced update
// (and after it: the copy lacks it too) stays one finding through the
// update: alerted once, never resolved in between (a file removed is an
// update step only for files that were there).
func TestExpectedMissingBefore(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	next := handRelease(t, root)
	const gone = "lib/private/Server.php" // in both releases' manifests
	for _, dir := range []string{root, next} {
		if err := os.Remove(filepath.Join(dir, gone)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(root, t.TempDir())
	r := start(t, cfg)
	expectRelease(t, r, cfg, next)
	// version.php first: core is held and checked whole against the
	// manifest in force, before the rest of the update comes.
	data, err := os.ReadFile(filepath.Join(next, "version.php"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "version.php"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	if n := r.logs.FilterMessage("scope checked after changes").Len(); n == 0 {
		t.Fatal("core was not held and checked whole: the test does not test what it says")
	}
	rsyncOver(t, next, root, []string{"config", "data"}, nil, func(string) {})
	r.waitIdle(t)
	assertSame(t, r, root, "after the update")
	if n := alerts(r.logs, sortAlert)["core:"+gone]; n != 1 {
		t.Errorf("%s alerted %d times, want once (at start)", gone, n)
	}
	if n := alerts(r.logs, sortResolved)["core:"+gone]; n != 0 {
		t.Errorf("%s resolved %d times while it never came back", gone, n)
	}
}
