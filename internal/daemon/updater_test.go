package daemon

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// updaterRelease builds the demo install at root with the six entry
// points Nextcloud's updater replaces, and the next release (31.0.0: a
// file changed, one added, one removed, in core and in the files app)
// extracted into the updater's stage, both signed by the demo keys. It
// returns the stage.
func updaterRelease(t *testing.T, root string) string {
	t.Helper()
	ctx := context.Background()
	keys, err := buildDemo(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	write := func(base, rel, content string) {
		p := filepath.Join(base, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, ep := range []string{"remote.php", "public.php", "ocs/v1.php", "ocs/v2.php"} {
		write(root, ep, "<?php\n// "+ep+"\n")
	}
	if err := keys.Sign(ctx, verifyCore(root)); err != nil {
		t.Fatal(err)
	}
	stage := filepath.Join(root, "data", "updater-demo", "downloads", "nextcloud")
	copyTreeExcept(t, root, stage, func(rel string) bool { return rel == "data" || rel == "config" })
	write(stage, "version.php", "<?php\n$OC_Version = array(31,0,0,0);\n$OC_VersionString = '31.0.0';\n$OC_Channel = 'stable';\n")
	write(stage, "lib/base.php", "<?php\nclass OC { public static function handleRequest() { /* 31 */ } }\n")
	write(stage, "lib/private/New.php", "<?php\nnamespace OC;\nclass New31 {}\n")
	write(stage, "index.php", "<?php\nrequire_once __DIR__ . '/lib/base.php';\nOC::handleRequest(); // 31\n")
	write(stage, "apps/files/lib/App.php", "<?php\nnamespace OCA\\Files;\nclass App { /* 31 */ }\n")
	if err := os.Remove(filepath.Join(stage, "core/css/server.css")); err != nil {
		t.Fatal(err)
	}
	in := verify.NewInstall(stage, nil, "")
	if err := keys.Sign(ctx, in.Core()); err != nil {
		t.Fatal(err)
	}
	if err := keys.Sign(ctx, in.App("files", filepath.Join(stage, "apps", "files"))); err != nil {
		t.Fatal(err)
	}
	return stage
}

// copyTreeExcept copies src into dst, leaving out the top-level names skip
// says.
func copyTreeExcept(t *testing.T, src, dst string, skip func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if top, _, _ := strings.Cut(rel, "/"); skip(top) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// childFirst lists the entries below dir, each directory after what it
// holds (PHP's RecursiveIteratorIterator::CHILD_FIRST), as paths
// relative to dir.
func childFirst(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { // deeper first keeps a directory after its entries
		return strings.Count(out[i], "/") > strings.Count(out[j], "/")
	})
	return out
}

// excluded is the updater's rule: the first path component, or for a
// top-level entry its name, in the list.
func excluded(rel string, list []string) bool {
	top, rest, nested := strings.Cut(rel, "/")
	if nested && rest != "" {
		return slices.Contains(list, top)
	}
	return slices.Contains(list, rel)
}

// updaterSteps replays what lib/Updater.php does to the server root
// once the release is extracted into stage: replaceEntryPoints,
// deleteOldFiles, moveNewVersionInPlace, finalize (the operations, in
// its order). mid runs after deleteOldFiles and the first move (with
// core/signature.json gone, then the new files in place).
func updaterSteps(t *testing.T, root, stage string, mid func(step string)) {
	t.Helper()
	stub := updaterStub
	for _, ep := range updaterEntryPoints {
		if err := os.WriteFile(filepath.Join(root, ep), []byte(stub), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// deleteOldFiles: the shipped apps (old and new lists), then the rest.
	for _, app := range []string{"files", "dashboard"} {
		if err := os.RemoveAll(filepath.Join(root, "apps", app)); err != nil {
			t.Fatal(err)
		}
	}
	keep := []string{".well-known", "data", "index.php", "status.php", "remote.php", "public.php", "ocs/v1.php", "ocs/v2.php", "config", "themes", "apps", "updater"}
	for _, rel := range childFirst(t, root) {
		if excluded(rel, keep) {
			continue
		}
		p := filepath.Join(root, rel)
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			os.Remove(p) // fails where an excluded entry stays (ocs/): as rmdir does
		} else if err == nil {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	mid("deleteOldFiles")
	move := func(exclude []string) {
		for _, rel := range childFirst(t, stage) {
			if excluded(rel, exclude) {
				continue
			}
			from := filepath.Join(stage, rel)
			fi, err := os.Lstat(from)
			if err != nil {
				continue
			}
			if fi.IsDir() {
				os.Remove(from)
				continue
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(from, filepath.Join(root, rel)); err != nil {
				t.Fatal(err)
			}
		}
	}
	move([]string{"updater", "index.php", "status.php", "remote.php", "public.php", "ocs/v1.php", "ocs/v2.php"})
	mid("moveNewVersionInPlace")
	move([]string{"updater"})
	move(nil) // finalize
	if err := os.Remove(stage); err != nil {
		t.Fatal(err)
	}
}

// An update by Nextcloud's updater, replayed step by step between two
// signed releases: no per-file alert, no SCOPE_GONE, no TRUST_ANCHOR, and
// the end state is a one-shot check's; a backdoor written mid-update
// (after core/signature.json was deleted, then among the new files) is
// alerted, naming its file.
func TestUpdaterUpdate(t *testing.T) {
	t.Parallel()
	for _, backdoor := range []bool{false, true} {
		root := filepath.Join(t.TempDir(), "nc")
		stage := updaterRelease(t, root)
		cfg := testConfig(root, t.TempDir())
		pinned := filepath.Join(t.TempDir(), "root.crt")
		crt, err := os.ReadFile(cfg.Trust)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pinned, crt, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.Trust = pinned
		r := start(t, cfg)
		if fs := r.d.Findings(); len(fs) != 0 {
			t.Fatalf("at start: %s", render(fs))
		}
		// The updater's steps are requests of their own (the web UI's,
		// or occ's): the first one's changes are seen while the release
		// is still in the stage.
		first := r.sync.expectBatch(filepath.Join(root, "index.php"))
		updaterSteps(t, root, stage, func(step string) {
			if step == "deleteOldFiles" {
				select {
				case <-first:
				case <-time.After(hangGuard):
					t.Fatal("the entry points' change not handled")
				}
			}
			if !backdoor {
				return
			}
			switch step {
			case "deleteOldFiles": // no core manifest now
				if err := os.WriteFile(filepath.Join(root, "index.php"), []byte("<?php system($_GET['c']);\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if _, ok := r.waitAlert("core:index.php"); !ok {
					t.Fatal("no alert for a backdoor in an entry point after core/signature.json was deleted")
				}
				// Put the stub back, as the updater left it.
				if err := os.WriteFile(filepath.Join(root, "index.php"), []byte(updaterStub), 0o644); err != nil {
					t.Fatal(err)
				}
			case "moveNewVersionInPlace":
				if err := appendTo(filepath.Join(root, "lib/base.php"), "system($_GET['c']);\n"); err != nil {
					t.Fatal(err)
				}
				if _, ok := r.waitAlert("core:lib/base.php"); !ok {
					t.Fatal("no alert for a backdoor appended to a file of the new release")
				}
			}
		})
		r.waitIdle(t)
		all := alerts(r.logs, sortAlert)
		if !backdoor && len(all) != 0 {
			t.Errorf("an honest update by the updater: per-file alerts %v, want none", all)
		}
		for _, id := range []string{kind.IDScopeGone, kind.IDTrustDiffer, kind.IDException} {
			if n := r.logs.FilterField(zapString("message_id", id)).Len(); n != 0 {
				t.Errorf("backdoor %v: %d entries with MESSAGE_ID %s during the update", backdoor, n, id)
			}
		}
		if n := r.logs.FilterMessageSnippet("updated to the staged release 31.0.0").Len(); n == 0 {
			t.Errorf("backdoor %v: no entry saying core was updated to the staged release", backdoor)
		}
		assertSame(t, r, root, "after the update")
		r.stop()
	}
}

// An update by hand that removes the old manifest first, then puts the
// new signed one in place: a backdoor written after that is checked
// against the new manifest at once, not once the scope is quiet (Settle
// and MaxHold of an hour here: only the live recheck can alert).
func TestManifestRemovedThenNew(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	keys, err := buildDemo(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(root, "core/signature.json")
	was, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	// The next release's manifest: lib/base.php changed, signed.
	base := filepath.Join(root, "lib/base.php")
	old, _ := os.ReadFile(base)
	next := "<?php\nclass OC { public static function handleRequest() { /* next */ } }\n"
	if err := os.WriteFile(base, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := keys.Sign(context.Background(), verifyCore(root)); err != nil {
		t.Fatal(err)
	}
	nextManifest, _ := os.ReadFile(manifest)
	os.WriteFile(base, old, 0o644)
	os.WriteFile(manifest, was, 0o644)

	cfg := testConfig(root, t.TempDir())
	cfg.Settle, cfg.MaxHold = time.Hour, time.Hour
	r := start(t, cfg)
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removed manifest's EXCEPTION", func() bool {
		return r.logs.FilterField(zapString("message_id", kind.IDException)).Len() > 0
	})
	if err := os.WriteFile(manifest, nextManifest, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base, []byte(next), 0o644); err != nil { // the update's own file: no alert
		t.Fatal(err)
	}
	shell := filepath.Join(root, "lib/private/Server.php")
	if err := appendTo(shell, "system($_GET['c']);\n"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.waitAlert("core:lib/private/Server.php"); !ok {
		t.Fatal("no alert for a backdoor written once the new manifest was in place (the old one removed first)")
	}
	if n := alerts(r.logs, sortAlert)["core:lib/base.php"]; n != 0 {
		t.Errorf("%d alerts for lib/base.php at the new manifest's content", n)
	}
}
