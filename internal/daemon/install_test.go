package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// TestFollowConfigAppsPaths: whoever can write config.php can add an apps
// root that Nextcloud then loads apps from. When the daemon follows
// Nextcloud's configuration, a new apps_paths ends Run with
// ErrInstallChanged (the caller starts again with the new roots); a
// change that keeps the roots does not; with the roots pinned in
// integrityd's configuration, config.php does not matter.
func TestFollowConfigAppsPaths(t *testing.T) {
	t.Parallel()
	for _, follow := range []bool{true, false} {
		root := demoTree(t)
		cfg := testConfig(root, t.TempDir())
		in, err := verify.OpenInstall(root, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		cfg.AppsPaths, cfg.FollowConfig = in.AppsRoots, follow
		if !follow {
			cfg.PinnedAppsPaths = in.AppsRoots
		}
		r := start(t, cfg)
		conf := filepath.Join(root, "config", "config.php")
		// Same roots, other content: nothing to do.
		if err := os.WriteFile(conf, []byte("<?php\n$CONFIG = array('instanceid' => 'demo', 'loglevel' => 2);\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		r.waitIdle(t)
		select {
		case err := <-r.done:
			t.Fatalf("follow=%v: Run ended after a change that keeps the apps roots: %v", follow, err)
		default:
		}
		appsConf := filepath.Join(root, "config", "apps.config.php")
		handled := r.sync.expectBatch(appsConf)
		writeAppsRoots(t, appsConf, root+"/apps", filepath.Join(root, "evil_apps"))
		// Following: Run ends. Pinned: the loop handles the change's
		// batch, and Run goes on.
		var over <-chan struct{}
		if !follow {
			over = handled
		}
		select {
		case err := <-r.done:
			r.done <- err // for stop
			if !follow || !errors.Is(err, ErrInstallChanged) {
				t.Errorf("follow=%v: Run ended with %v", follow, err)
			}
		case <-over:
			// A Sync after it: the loop went on past that batch.
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			synced := make(chan error, 1)
			go func() { synced <- r.sync.Sync(ctx) }()
			select {
			case err := <-r.done:
				r.done <- err
				t.Errorf("follow=false: Run ended with %v", err)
			case err := <-synced:
				if err != nil {
					t.Errorf("follow=false: %v", err)
				}
			}
			cancel()
		case <-time.After(hangGuard):
			if follow {
				t.Errorf("Run goes on %v after config.php added an apps root", hangGuard)
			} else {
				t.Errorf("the change of apps.config.php not handled after %v", hangGuard)
			}
		}
		if follow && len(r.logs.FilterField(zap.String("message_id", kind.IDConfig)).All()) == 0 {
			t.Errorf("no alert with the configuration's MESSAGE_ID")
		}
		r.stop()
	}
}

// TestConfigRewrittenAsNextcloudDoes: Nextcloud rewrites config.php in
// place, truncating it and writing it again under an exclusive flock
// (\OC\Config::writeData). Read without the lock, the file is sometimes
// empty: 1,000 such rewrites while the daemon follows the configuration
// give no error entry. A configuration that stays unreadable is one error
// entry, and an info entry once it reads again.
func TestConfigRewrittenAsNextcloudDoes(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	cfg := followingConfig(t, root, t.TempDir())
	r := start(t, cfg)
	conf := filepath.Join(root, "config", "config.php")
	good, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	configEntries := func(level zapcore.Level) int {
		n := 0
		for _, e := range r.logs.FilterField(zap.String("message_id", kind.IDConfig)).All() {
			if e.Level == level {
				n++
			}
		}
		return n
	}
	rewrite := func(content []byte) {
		f, err := os.OpenFile(conf, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		// Two writes with a pause, as PHP's (slow) writer makes them:
		// the reader must see neither the empty file nor the first half.
		half := len(content) / 2
		time.Sleep(100 * time.Microsecond)
		if _, err := f.WriteAt(content[:half], 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond)
		if _, err := f.WriteAt(content[half:], int64(half)); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
			t.Fatal(err)
		}
	}
	for range 1000 {
		rewrite(good)
	}
	r.waitIdle(t)
	if n := configEntries(zapcore.ErrorLevel); n != 0 {
		t.Fatalf("%d error entries for 1,000 rewrites of config.php as Nextcloud makes them", n)
	}
	select {
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Run ended: %v", err)
	default:
	}

	// Broken for good: one error, once it has lasted; then readable
	// again: one info entry.
	rewrite([]byte("<?php\n$CONFIG = array (\n  'instanceid' => 'demo"))
	waitFor(t, "an error entry for a configuration that stays unreadable", func() bool {
		return configEntries(zapcore.ErrorLevel) > 0
	})
	rewrite(good)
	waitFor(t, "an info entry once the configuration reads again", func() bool {
		return configEntries(zapcore.InfoLevel) > 0
	})
	r.waitIdle(t)
	if n := configEntries(zapcore.ErrorLevel); n != 1 {
		t.Errorf("%d error entries for one unreadable spell, want 1", n)
	}
}

// TestAppsRootDroppedState: after config.php changes the apps roots so
// that apps/ is no longer one, the restarted daemon (same state
// directory) no longer checks the apps there, although they were signed:
// their findings are resolved, and the report equals a one-shot check.
func TestAppsRootDroppedState(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	stateDir := t.TempDir()
	cfg := followingConfig(t, root, stateDir)
	if err := os.Remove(filepath.Join(root, "apps", "files", "js", "files.js")); err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg)
	if n := len(r.d.Findings()); n == 0 {
		t.Fatal("no finding for the removed file")
	}

	writeAppsRoots(t, filepath.Join(root, "config", "apps.config.php"), filepath.Join(root, "other_apps"))
	waitInstallChanged(t, r, "config.php changed the apps roots")
	in, err := verify.OpenInstall(root, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.AppsPaths = in.AppsRoots
	r = start(t, cfg)
	r.waitIdle(t)
	want := checkWith(t, root, cfg.Trust, nil)
	if got, want := render(r.d.Findings()), render(want); got != want {
		t.Errorf("after the apps roots changed, the daemon reports\n%s\na one-shot check\n%s", got, want)
	}
	if len(r.logs.FilterMessageSnippet("app files is no longer checked").All()) != 1 {
		t.Errorf("no entry that the findings of app files are resolved")
	}
}

// TestConfigDirSwapped: config/ renamed away and made again with the same
// content is still followed by its path: an apps root added afterwards
// ends Run with ErrInstallChanged, after an alert.
func TestConfigDirSwapped(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	cfg := followingConfig(t, root, t.TempDir())
	r := start(t, cfg)
	conf := filepath.Join(root, "config")
	content, err := os.ReadFile(filepath.Join(conf, "config.php"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(conf, conf+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(conf, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "config.php"), content, 0o640); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	select {
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Run ended after config/ was swapped for the same content: %v", err)
	default:
	}
	writeAppsRoots(t, filepath.Join(conf, "apps.config.php"), root+"/apps", filepath.Join(root, "evil_apps"))
	waitInstallChanged(t, r, "an apps root was added in the new config/")
	if len(r.logs.FilterField(zap.String("message_id", kind.IDConfig)).All()) == 0 {
		t.Errorf("no alert with the configuration's MESSAGE_ID")
	}
}

// writeAppsRoots writes an apps.config.php at file naming roots as
// Nextcloud's apps_paths (each made if missing), the first read-only.
func writeAppsRoots(t *testing.T, file string, roots ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("<?php\n$CONFIG = array('apps_paths' => array(\n")
	for i, r := range roots {
		if err := os.MkdirAll(r, 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  array('path' => '%s', 'url' => '/%s', 'writable' => %v),\n", r, filepath.Base(r), i > 0)
	}
	b.WriteString("));\n")
	if err := os.WriteFile(file, []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
}

// waitInstallChanged waits until Run ends with ErrInstallChanged.
func waitInstallChanged(t *testing.T, r *running, what string) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for stop
		if !errors.Is(err, ErrInstallChanged) {
			t.Fatalf("Run ended with %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("Run goes on %v after %s", hangGuard, what)
	}
}

// followingConfig is testConfig for a daemon that follows Nextcloud's
// configuration, on the apps roots config.php names now.
func followingConfig(t *testing.T, root, stateDir string) Config {
	t.Helper()
	cfg := testConfig(root, stateDir)
	in, err := verify.OpenInstall(root, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.AppsPaths, cfg.FollowConfig = in.AppsRoots, true
	return cfg
}
