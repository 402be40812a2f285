package daemon

import (
	"crypto/sha256"
	"crypto/sha512"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/expect"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// Nextcloud's updater (lib/Updater.php) extracts the new release into
// its stage (verify.Install.UpdaterStage) before it touches the server
// root; then it replaces the entry points with a 503 stub, deletes the
// old files (core/signature.json and the shipped apps among them) and
// renames the new ones into place. While a stage holds a release whose
// manifests verify (the same trust rules: core's certificate for core,
// each app's for its app), what the loop sees of an update is an update
// step, not an alert: a file whose content matches the staged manifest,
// a file removed, an entry point holding exactly the updater's stub, a
// manifest removed, a shipped app's directory removed. Content that
// matches neither the manifest in force nor the staged one is alerted at
// once, as always, and the scope's whole check once quiet decides the
// end state (FILE_MISSING then is a finding).

// updaterStub is what replaceEntryPoints writes into the entry points.
const updaterStub = "<?php\nhttp_response_code(503);\ndie('Update in process.');"

// updaterEntryPoints are the files replaceEntryPoints replaces.
var updaterEntryPoints = [...]string{"index.php", "status.php", "remote.php", "public.php", "ocs/v1.php", "ocs/v2.php"}

// stageTTL is how long a verified staged release counts after it was
// last seen in the stage (moveNewVersionInPlace renames its files away).
const stageTTL = time.Hour

// staged is the loop's view of a staged release: the updater's stage,
// or the release an admin staged with expect-release for an update by
// hand (expected).
type staged struct {
	dir      string                       // the stage ("" when the configuration cannot say)
	expected bool                         // staged by expect-release: counts until until, apps matched by name wherever they are
	until    time.Time                    // when an expected release stops counting
	stamp    stageStamp                   // of the staged core manifest (expected: of its until file) when it was read
	seen     time.Time                    // when the stage last held it
	version  string                       // the staged release
	exps     map[string]*verify.Expected  // by scope: the staged manifest, for the files of the server root
	sums     map[string][sha256.Size]byte // ... and the manifest's SHA-256
	gone     map[string]bool              // shipped apps whose removal was logged as an update step
	apps     map[string]bool              // the apps the staged release ships
	stub     finding.Hash
}

// expectDir is where expect-release stages a release for the daemon of
// stateDir ("" without one).
func expectDir(stateDir string) string {
	if stateDir == "" {
		return ""
	}
	return expect.Dir(stateDir)
}

// stageStamp tells one staged core manifest from another without reading
// it.
type stageStamp struct {
	id    treeID
	size  int64
	mtime time.Time
}

func stampOf(p string) (stageStamp, bool) {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return stageStamp{}, false
	}
	var st stageStamp
	st.size, st.mtime = fi.Size(), fi.ModTime()
	st.id = idOf(fi)
	return st, true
}

// refreshStage looks at the updater's stage and at the release
// expect-release staged (one stat each when nothing changed), and reads
// a new staged release's manifests.
func (l *loop) refreshStage() {
	l.refreshStaged(&l.stage)
	l.refreshStaged(&l.expect)
}

// refreshStaged looks at one stage.
func (l *loop) refreshStaged(st *staged) {
	if st.dir == "" {
		return
	}
	now := time.Now()
	stamp, ok := l.stagedStamp(st, now)
	if !ok {
		if st.exps != nil && (st.expected || now.Sub(st.seen) > stageTTL) {
			if st.expected {
				l.log.Info("expected release no longer counts: removed, or its time (until "+st.until.Format(time.RFC3339)+") is over", zap.String("dir", st.dir))
			} else {
				l.log.Info("staged release no longer counts: an hour since it left the updater's stage", zap.String("dir", st.dir))
			}
			st.exps, st.sums, st.apps = nil, nil, nil
		}
		return
	}
	st.seen = now
	if st.exps != nil && stamp == st.stamp {
		return
	}
	st.stamp = stamp
	in := verify.NewInstall(st.dir, nil, "")
	exps, sums := map[string]*verify.Expected{}, map[string][sha256.Size]byte{}
	if m, ex := in.Core().LoadManifest(l.trust); ex == nil {
		if core := l.scopes["core"]; core != nil {
			exps["core"], sums["core"] = core.sc.NewExpected(m), m.Sum()
		}
	} else if !st.expected {
		return // being extracted, or not a signed release: no update steps
	}
	apps := l.stagedApps(st, in, exps, sums)
	st.exps, st.sums, st.apps, st.gone = exps, sums, apps, map[string]bool{}
	st.version = verify.ReadVersion(st.dir).String
	if st.expected {
		l.log.Info("a release expected by expect-release, whose manifests verify: its files are update steps, not alerts, until "+st.until.Format(time.RFC3339),
			zap.String("message_id", kind.IDUpdate), zap.String("dir", st.dir), zap.String("release", st.version),
			zap.Int("scopes", len(exps)), zap.Time("until", st.until))
		return
	}
	l.log.Info("Nextcloud's updater staged a release whose manifests verify: its files are update steps, not alerts",
		zap.String("message_id", kind.IDUpdate), zap.String("dir", st.dir), zap.String("release", st.version),
		zap.Int("scopes", len(exps)))
}

// stagedStamp tells whether st holds a release now (false: none, or an
// expected one whose time is over) and which.
func (l *loop) stagedStamp(st *staged, now time.Time) (stageStamp, bool) {
	if !st.expected {
		return stampOf(filepath.Join(st.dir, "core", "signature.json"))
	}
	stateDir := filepath.Dir(filepath.Dir(st.dir))
	until, ok := expect.Until(stateDir)
	if !ok || !now.Before(until) {
		return stageStamp{}, false
	}
	st.until = until
	return stampOf(filepath.Join(filepath.Dir(st.dir), "until"))
}

// stagedApps reads the manifests of the apps st ships into exps and
// sums, for the apps the loop checks: the updater replaces ROOT/apps
// only; an expected app is the scope of its name wherever it is.
func (l *loop) stagedApps(st *staged, in *verify.Install, exps map[string]*verify.Expected, sums map[string][sha256.Size]byte) map[string]bool {
	apps := map[string]bool{}
	ents, _ := os.ReadDir(filepath.Join(st.dir, "apps"))
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		apps[e.Name()] = true
		s := l.scopes[e.Name()]
		if s == nil || e.Name() == "core" || !st.expected && s.sc.Dir != filepath.Join(l.in.Root, "apps", e.Name()) {
			continue
		}
		am, aex := in.App(e.Name(), filepath.Join(st.dir, "apps", e.Name())).LoadManifest(l.trust)
		if aex == nil {
			exps[e.Name()], sums[e.Name()] = s.sc.NewExpected(am), am.Sum()
		}
	}
	return apps
}

// stagedExp is the staged manifest for s (nil: none): the updater's,
// else the expected release's.
func (l *loop) stagedExp(s *scope) *verify.Expected {
	if e := l.stage.exps[s.sc.Name]; e != nil {
		return e
	}
	return l.expect.exps[s.sc.Name]
}

// updateSteps drops from fresh, what a recheck of s found, what the
// updater does while it installs the staged release: files removed, and
// entry points holding exactly its stub.
func (l *loop) updateSteps(s *scope, fresh []finding.Finding) []finding.Finding {
	if l.stagedExp(s) == nil {
		return fresh
	}
	if l.stage.stub.IsZero() {
		l.stage.stub = finding.Hash(sha512.Sum512([]byte(updaterStub)))
	}
	return slices.DeleteFunc(fresh, func(f finding.Finding) bool {
		switch {
		case f.Kind == kind.FileMissing:
			return true
		case f.Kind == kind.InvalidHash && s.sc.Name == "core" && f.Current == l.stage.stub && l.stage.exps["core"] != nil:
			return slices.Contains(updaterEntryPoints[:], f.Path)
		}
		return false
	})
}

// stagedGone reports whether the removal of the signed app name is an
// update step (the staged release ships it); it logs that once.
func (l *loop) stagedGone(name string) bool {
	for _, st := range []*staged{&l.stage, &l.expect} {
		if st.exps == nil || !st.apps[name] {
			continue
		}
		if !st.gone[name] {
			st.gone[name] = true
			l.log.Info("app "+finding.EscapeControl(name)+" removed by the update: the staged release ships it", zap.String("message_id", kind.IDUpdate),
				zap.String("integrity_scope", name))
		}
		return true
	}
	return false
}

// stagedManifestGone handles the manifest of s removed or unverifiable
// while a staged release has one for it (deleteOldFiles removes
// core/signature.json before the new one is moved in): the scope keeps
// being checked against the manifest in force and the staged one, and
// is checked whole once quiet. It reports false when no staged release
// covers s.
func (l *loop) stagedManifestGone(s *scope) bool {
	if l.stagedExp(s) == nil || s.exp == nil {
		return false
	}
	l.hold(s)
	return true
}

// stagedDone notes that s adopted a manifest; when it is the staged one,
// the scope's update is done: one entry says so, and the update's rules
// end for it.
func (l *loop) stagedDone(s *scope, sum [sha256.Size]byte) {
	name := s.sc.Name
	for _, st := range []*staged{&l.stage, &l.expect} {
		if st.exps[name] == nil || st.sums[name] != sum {
			continue
		}
		what := "the staged release "
		if st.expected {
			what = "the expected release "
		}
		l.log.Info(finding.EscapeControl(name)+" updated to "+what+finding.EscapeControl(st.version), zap.String("message_id", kind.IDUpdate),
			zap.String("integrity_scope", name), zap.String("release", st.version))
		delete(st.exps, name)
	}
}
