package daemon

import (
	"crypto/sha256"
	"crypto/sha512"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

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

// staged is the loop's view of the updater's stage.
type staged struct {
	log     *zap.Logger
	dir     string                       // the stage ("" when the configuration cannot say)
	stamp   stageStamp                   // of the staged core manifest when it was read
	seen    time.Time                    // when the stage last held it
	version string                       // the staged release
	exps    map[string]*verify.Expected  // by scope: the staged manifest, for the files of the server root
	sums    map[string][sha256.Size]byte // ... and the manifest's SHA-256
	gone    map[string]bool              // shipped apps whose removal was logged as an update step
	apps    map[string]bool              // the apps the staged release ships
	stub    finding.Hash
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

// refresh looks at the updater's stage (one stat when nothing
// changed) and reads a new staged release's manifests.
func (sg *staged) refresh(trust *verify.Trust, scopes map[string]*scope, root string) {
	if sg.dir == "" {
		return
	}
	now := time.Now()
	st, ok := stampOf(filepath.Join(sg.dir, "core", "signature.json"))
	if !ok {
		if sg.exps != nil && now.Sub(sg.seen) > stageTTL {
			sg.log.Info("staged release no longer counts: an hour since it left the updater's stage", zap.String("dir", sg.dir))
			sg.exps, sg.sums, sg.apps = nil, nil, nil
		}
		return
	}
	sg.seen = now
	if sg.exps != nil && st == sg.stamp {
		return
	}
	sg.stamp = st
	in := verify.NewInstall(sg.dir, nil, "")
	m, ex := in.Core().LoadManifest(trust)
	if ex != nil {
		return // being extracted, or not a signed release: no update steps
	}
	exps, sums := map[string]*verify.Expected{}, map[string][sha256.Size]byte{}
	if core := scopes["core"]; core != nil {
		exps["core"], sums["core"] = core.sc.NewExpected(m), m.Sum()
	}
	apps := map[string]bool{}
	ents, _ := os.ReadDir(filepath.Join(sg.dir, "apps"))
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		apps[e.Name()] = true
		s := scopes[e.Name()]
		if s == nil || s.sc.Dir != filepath.Join(root, "apps", e.Name()) {
			continue // the updater replaces ROOT/apps only
		}
		am, aex := in.App(e.Name(), filepath.Join(sg.dir, "apps", e.Name())).LoadManifest(trust)
		if aex == nil {
			exps[e.Name()], sums[e.Name()] = s.sc.NewExpected(am), am.Sum()
		}
	}
	sg.exps, sg.sums, sg.apps, sg.gone = exps, sums, apps, map[string]bool{}
	sg.version = verify.ReadVersion(sg.dir).String
	sg.log.Info("Nextcloud's updater staged a release whose manifests verify: its files are update steps, not alerts",
		zap.String("message_id", kind.IDUpdate), zap.String("dir", sg.dir), zap.String("release", sg.version),
		zap.Int("scopes", len(exps)))
}

// exp is the staged manifest for s (nil: none).
func (sg *staged) exp(s *scope) *verify.Expected {
	return sg.exps[s.sc.Name]
}

// updateSteps drops from fresh, what a recheck of s found, what the
// updater does while it installs the staged release: files removed, and
// entry points holding exactly its stub.
func (sg *staged) updateSteps(s *scope, fresh []finding.Finding) []finding.Finding {
	if sg.exp(s) == nil {
		return fresh
	}
	if sg.stub.IsZero() {
		sg.stub = finding.Hash(sha512.Sum512([]byte(updaterStub)))
	}
	return slices.DeleteFunc(fresh, func(f finding.Finding) bool {
		switch {
		case f.Kind == kind.FileMissing:
			return true
		case f.Kind == kind.InvalidHash && s.sc.Name == "core" && f.Current == sg.stub:
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
	sg.log.Info(finding.EscapeControl(name)+" updated to the staged release "+finding.EscapeControl(sg.version), zap.String("message_id", kind.IDUpdate),
		zap.String("integrity_scope", name), zap.String("release", sg.version))
	delete(sg.exps, name)
}
