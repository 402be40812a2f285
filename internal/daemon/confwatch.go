package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/kind"
)

// confWatch is how reading Nextcloud's configuration goes: the install's
// config/ directory (not part of any scope, but its config.php and
// *.config.php say where the apps are, apps_paths, and the admin's mime
// type files change the expected core/js/mimetypelist.js), since when it
// cannot be read (zero: it can), when to try again (zero: on its next
// change only), and whether the error was logged. Only the loop touches
// it.
type confWatch struct {
	dir          string
	since, retry time.Time
	logged       bool
	seen         string // config/'s files as they were at the last failure (stamp)
}

// Reading Nextcloud's configuration is retried every confRetryEvery
// while it fails, and the failure is an error entry once it has lasted
// confGrace. Nextcloud rewrites config.php in place (truncate, then write,
// under an exclusive flock that readFile waits for, boundedly): a read
// can still see it empty or half written, and that is no error.
const (
	confGrace      = 3 * time.Second
	confRetryEvery = 200 * time.Millisecond
)

// isConfigFile reports whether p is a file Nextcloud reads its
// configuration from (config.php, *.config.php), or config/ itself.
func (c *confWatch) isConfigFile(p string) bool {
	if p == c.dir {
		return true
	}
	if filepath.Dir(p) != c.dir {
		return false
	}
	name := filepath.Base(p)
	return name == "config.php" || strings.HasSuffix(name, ".config.php")
}

// readable notes that the configuration was read.
func (c *confWatch) readable(log *zap.Logger) {
	if c.logged {
		log.Info("Nextcloud's configuration can be read again", zap.String("message_id", kind.IDConfig))
	}
	c.since, c.retry, c.logged, c.seen = time.Time{}, time.Time{}, false, ""
}

// unreadable notes that the configuration could not be read at now
// (err), logging it once it has stayed so for confGrace, and schedules
// the next try; once logged, the next change of the configuration tries
// again.
func (c *confWatch) unreadable(log *zap.Logger, err error, now time.Time) {
	// The time counts from the last change: a file rewritten again and
	// again (each write read half done, the lock not won) is being
	// written, not broken; one that stays as it is and fails is.
	if stamp := c.stamp(); c.since.IsZero() || stamp != c.seen {
		c.since, c.seen = now, stamp
	}
	c.retry = now.Add(confRetryEvery)
	if c.logged {
		c.retry = time.Time{}
		return
	}
	if now.Sub(c.since) < confGrace {
		return
	}
	c.logged, c.retry = true, time.Time{}
	log.Error(fmt.Sprintf("Nextcloud's configuration cannot be read (for %s); still checking the apps roots read before", now.Sub(c.since).Round(time.Second)),
		zap.String("message_id", kind.IDConfig), zap.Error(err))
}

// stamp says what config/'s configuration files are now (name, size,
// mtime, inode of each), to tell a file still being written from one that
// stays unreadable.
func (c *confWatch) stamp() string {
	var b strings.Builder
	ents, _ := os.ReadDir(c.dir)
	for _, e := range ents {
		p := filepath.Join(c.dir, e.Name())
		if !c.isConfigFile(p) {
			continue
		}
		if fi, err := os.Lstat(p); err == nil {
			var ino uint64
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				ino = st.Ino
			}
			fmt.Fprintf(&b, "%s %d %d %d\n", e.Name(), fi.Size(), fi.ModTime().UnixNano(), ino)
		}
	}
	return b.String()
}
