package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/journal"
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
		evil := filepath.Join(root, "evil_apps")
		if err := os.MkdirAll(evil, 0o755); err != nil {
			t.Fatal(err)
		}
		appsConf := filepath.Join(root, "config", "apps.config.php")
		handled := r.sync.expectBatch(appsConf)
		if err := os.WriteFile(appsConf, []byte("<?php\n$CONFIG = array('apps_paths' => array(\n"+
			"  array('path' => '"+root+"/apps', 'url' => '/apps', 'writable' => false),\n"+
			"  array('path' => '"+evil+"', 'url' => '/evil', 'writable' => true)));\n"), 0o640); err != nil {
			t.Fatal(err)
		}
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
		if follow && len(r.logs.FilterField(zap.String("message_id", journal.IDConfig)).All()) == 0 {
			t.Errorf("no alert with the configuration's MESSAGE_ID")
		}
		r.stop()
	}
}
