package daemon

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// Nextcloud updates an app (occ app:update, the app store: Installer's
// downloadApp) by extracting the archive to a temporary directory,
// removing the app's directory (Files::rmdirr: its files first, child
// first, then the directory) and copying the new one in
// (copyRecursive, in scandir's name order): for a moment the app is
// gone, and its new appinfo/signature.json arrives partway through the
// copy. So a signed app's directory that goes is SCOPE_GONE only if it
// is not back within Settle: back at the same path, it is the same app
// replaced, checked against the manifest it had (and against the new one
// once it is there), and its alerts fold as an update by hand does
// (fold.go). The wait is Settle from the removal and nothing extends it.

// goneApp is a signed app whose directory went: SCOPE_GONE at deadline
// unless it is back.
type goneApp struct {
	dir      string
	exp      *verify.Expected // the manifest it had (nil: none verified)
	deadline time.Time
}

// appGone notes the removal of the signed app s: its SCOPE_GONE waits
// until deadline, when it is clear the directory is not coming back.
func (ga *goneApps) appGone(s *scope, deadline time.Time) {
	exp := s.exp
	if exp == nil {
		exp = s.last
	}
	if ga.by == nil {
		ga.by = map[string]goneApp{}
	}
	ga.by[s.sc.Name] = goneApp{dir: s.sc.Dir, exp: exp, deadline: deadline}
}

// appBack takes s, a scope just added, as the app removed moments ago
// when it stands at the same path: it reports whether it was.
func (ga *goneApps) appBack(s *scope) bool {
	g, ok := ga.by[s.sc.Name]
	if !ok || g.dir != s.sc.Dir {
		return false
	}
	delete(ga.by, s.sc.Name)
	s.last = g.exp
	ga.log.Info(fmt.Sprintf("app %s was removed and is being copied in again (how Nextcloud updates an app): its files are checked against its last manifest and the new one once it is there",
		journal.Token(s.sc.Name)), zap.String("message_id", kind.IDUpdate), zap.String("integrity_scope", s.sc.Name), zap.String("dir", s.sc.Dir))
	return true
}

// due returns the removed apps not back by now (their directory by
// name), which it forgets: each is SCOPE_GONE (catalog.appsGone).
func (ga *goneApps) due(now time.Time) map[string]string {
	var out map[string]string
	for name, g := range ga.by {
		if now.Before(g.deadline) {
			continue
		}
		delete(ga.by, name)
		if out == nil {
			out = map[string]string{}
		}
		out[name] = g.dir
	}
	return out
}

// next is the earliest deadline of a removed app (zero: none).
func (ga *goneApps) next() time.Time {
	var next time.Time
	for _, g := range ga.by {
		if next.IsZero() || g.deadline.Before(next) {
			next = g.deadline
		}
	}
	return next
}
