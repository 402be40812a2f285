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

// stages are the staged releases the loop knows: the updater's, and the
// one an admin announced with expect-release for an update by hand. Each
// method asks both.
type stages struct {
	updater, expected staged
}

// staged is the loop's view of one staged release: the updater's stage,
// or the release expect-release staged (expected).
type staged struct {
	log      *zap.Logger
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

// newStages are the stages of an install whose updater stages in
// updaterDir, for a daemon whose state directory is stateDir.
func newStages(log *zap.Logger, updaterDir, stateDir string) stages {
	st := stages{updater: staged{log: log, dir: updaterDir}, expected: staged{log: log, expected: true}}
	if stateDir != "" {
		st.expected.dir = expect.Dir(stateDir)
	}
	return st
}

// refresh looks at both stages.
func (st *stages) refresh(trust *verify.Trust, scopes map[string]*scope, root string) {
	st.updater.refresh(trust, scopes, root)
	st.expected.refresh(trust, scopes, root)
}

// exp is the staged manifest for s: the updater's, else the expected
// release's (nil: none).
func (st *stages) exp(s *scope) *verify.Expected {
	if e := st.updater.exp(s); e != nil {
		return e
	}
	return st.expected.exp(s)
}

// updateSteps drops from fresh what either staged release's update does;
// missing reports whether a file was missing already (a finding before
// the update: it stays one).
func (st *stages) updateSteps(s *scope, fresh []finding.Finding, missing func(key string) bool) []finding.Finding {
	return st.expected.updateSteps(s, st.updater.updateSteps(s, fresh, missing), missing)
}

// shipped reports whether either staged release ships the signed app
// name (its removal is an update step).
func (st *stages) shipped(name string) bool {
	return st.updater.shipped(name) || st.expected.shipped(name)
}

// covers reports whether either staged release covers the manifest of s
// removed or unverifiable (staged.covers).
func (st *stages) covers(s *scope) bool { return st.updater.covers(s) || st.expected.covers(s) }

// accounted drops from fs, a whole check's findings of s under the
// manifest of SHA-256 sum (a held scope's, a full scan's: under the
// manifest in force alone), what a
// staged release accounts for: content it signs at that path, and the
// update's own steps. A live recheck has the staged manifest as an
// alternative already (rechecker.recheck).
func (st *stages) accounted(s *scope, sum [sha256.Size]byte, fs []finding.Finding, missing func(key string) bool) []finding.Finding {
	e := st.exp(s)
	if e == nil || st.staged(s, sum) {
		return fs // none, or checked against the staged manifest itself: its findings are the end state's
	}
	fs = slices.DeleteFunc(slices.Clone(fs), func(f finding.Finding) bool {
		return (f.Kind == kind.InvalidHash || f.Kind == kind.ExtraFile) && e.Covers(&f)
	})
	return st.updateSteps(s, fs, missing)
}

// staged reports whether the manifest of SHA-256 sum is the staged or
// expected one of s.
func (st *stages) staged(s *scope, sum [sha256.Size]byte) bool {
	name := s.sc.Name
	return st.updater.exps[name] != nil && st.updater.sums[name] == sum || st.expected.exps[name] != nil && st.expected.sums[name] == sum
}

// adopted tells both staged releases that s adopted a manifest.
func (st *stages) adopted(s *scope, sum [sha256.Size]byte) {
	st.updater.adopted(s, sum)
	st.expected.adopted(s, sum)
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

// refresh looks at the stage (one stat when nothing changed) and reads
// a new staged release's manifests.
func (sg *staged) refresh(trust *verify.Trust, scopes map[string]*scope, root string) {
	if sg.dir == "" {
		return
	}
	now := time.Now()
	stamp, ok := sg.stampNow(now)
	if !ok {
		if sg.exps != nil && (sg.expected || now.Sub(sg.seen) > stageTTL) {
			if sg.expected {
				sg.log.Info("expected release no longer counts: removed, or its time (until "+sg.until.Format(time.RFC3339)+") is over", zap.String("dir", sg.dir))
			} else {
				sg.log.Info("staged release no longer counts: an hour since it left the updater's stage", zap.String("dir", sg.dir))
			}
			sg.exps, sg.sums, sg.apps = nil, nil, nil
		}
		return
	}
	sg.seen = now
	if sg.exps != nil && stamp == sg.stamp {
		return
	}
	sg.stamp = stamp
	in := verify.NewInstall(sg.dir, nil, "")
	exps, sums := map[string]*verify.Expected{}, map[string][sha256.Size]byte{}
	if m, ex := in.Core().LoadManifest(trust); ex == nil {
		if core := scopes["core"]; core != nil {
			exps["core"], sums["core"] = core.sc.NewExpected(m), m.Sum()
		}
	} else if !sg.expected {
		return // being extracted, or not a signed release: no update steps
	}
	apps := sg.readApps(in, trust, scopes, root, exps, sums)
	sg.exps, sg.sums, sg.apps, sg.gone = exps, sums, apps, map[string]bool{}
	sg.version = verify.ReadVersion(sg.dir).String
	if sg.expected {
		sg.log.Info("a release expected by expect-release, whose manifests verify: its files are update steps, not alerts, until "+sg.until.Format(time.RFC3339),
			zap.String("message_id", kind.IDUpdate), zap.String("dir", sg.dir), zap.String("release", sg.version),
			zap.Int("scopes", len(exps)), zap.Time("until", sg.until))
		return
	}
	sg.log.Info("Nextcloud's updater staged a release whose manifests verify: its files are update steps, not alerts",
		zap.String("message_id", kind.IDUpdate), zap.String("dir", sg.dir), zap.String("release", sg.version),
		zap.Int("scopes", len(exps)))
}

// stampNow tells whether the stage holds a release now (false: none, or
// an expected one whose time is over) and which.
func (sg *staged) stampNow(now time.Time) (stageStamp, bool) {
	if !sg.expected {
		return stampOf(filepath.Join(sg.dir, "core", "signature.json"))
	}
	stateDir := filepath.Dir(filepath.Dir(sg.dir))
	until, ok := expect.Until(stateDir)
	if !ok || !now.Before(until) {
		return stageStamp{}, false
	}
	sg.until = until
	return stampOf(filepath.Join(filepath.Dir(sg.dir), "until"))
}

// readApps reads the manifests of the apps the stage ships into exps and
// sums, for the apps the loop checks: the updater replaces ROOT/apps
// only; an expected app is the scope of its name wherever it is.
func (sg *staged) readApps(in *verify.Install, trust *verify.Trust, scopes map[string]*scope, root string, exps map[string]*verify.Expected, sums map[string][sha256.Size]byte) map[string]bool {
	apps := map[string]bool{}
	ents, _ := os.ReadDir(filepath.Join(sg.dir, "apps"))
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		apps[e.Name()] = true
		s := scopes[e.Name()]
		if s == nil || e.Name() == "core" || !sg.expected && s.sc.Dir != filepath.Join(root, "apps", e.Name()) {
			continue
		}
		am, aex := in.App(e.Name(), filepath.Join(sg.dir, "apps", e.Name())).LoadManifest(trust)
		if aex == nil {
			exps[e.Name()], sums[e.Name()] = s.sc.NewExpected(am), am.Sum()
		}
	}
	return apps
}

// exp is the staged manifest for s (nil: none).
func (sg *staged) exp(s *scope) *verify.Expected {
	return sg.exps[s.sc.Name]
}

// updateSteps drops from fresh, what a recheck of s found, what the
// updater does while it installs the staged release: files removed (but
// those missing already, which missing says), and entry points holding
// exactly its stub.
func (sg *staged) updateSteps(s *scope, fresh []finding.Finding, missing func(key string) bool) []finding.Finding {
	if sg.exp(s) == nil {
		return fresh
	}
	if sg.stub.IsZero() {
		sg.stub = finding.Hash(sha512.Sum512([]byte(updaterStub)))
	}
	return slices.DeleteFunc(fresh, func(f finding.Finding) bool {
		switch {
		case f.Kind == kind.FileMissing:
			return !missing(f.Path)
		case f.Kind == kind.InvalidHash && s.sc.Name == "core" && f.Current == sg.stub && !sg.expected:
			return slices.Contains(updaterEntryPoints[:], f.Path)
		}
		return false
	})
}

// shipped reports whether the removal of the signed app name is an
// update step (the staged release ships it); it logs that once.
func (sg *staged) shipped(name string) bool {
	if sg.exps == nil || !sg.apps[name] {
		return false
	}
	if !sg.gone[name] {
		sg.gone[name] = true
		sg.log.Info("app "+finding.EscapeControl(name)+" removed by the update: the staged release ships it", zap.String("message_id", kind.IDUpdate),
			zap.String("integrity_scope", name))
	}
	return true
}

// covers reports whether the manifest of s removed or unverifiable is an
// update step: a staged release has one for it (deleteOldFiles removes
// core/signature.json before the new one is moved in) and one was in
// force. The caller holds s: it keeps being checked against the manifest
// in force and the staged one, and is checked whole once quiet.
func (sg *staged) covers(s *scope) bool {
	return sg.exp(s) != nil && s.exp != nil
}

// adopted notes that s adopted a manifest; when it is the staged one,
// the scope's update is done: one entry says so, and the update's rules
// end for it.
func (sg *staged) adopted(s *scope, sum [sha256.Size]byte) {
	name := s.sc.Name
	if sg.exps[name] == nil || sg.sums[name] != sum {
		return
	}
	what := "the staged release "
	if sg.expected {
		what = "the expected release "
	}
	sg.log.Info(finding.EscapeControl(name)+" updated to "+what+finding.EscapeControl(sg.version), zap.String("message_id", kind.IDUpdate),
		zap.String("integrity_scope", name), zap.String("release", sg.version))
	delete(sg.exps, name)
}
