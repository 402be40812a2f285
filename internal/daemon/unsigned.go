package daemon

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// The unsigned coverage (baseline.Coverage) is checked against the admin's
// baseline (baseline.Baseline, in the state directory) when the unsigned
// setting says so: its findings are those of a pseudo-scope,
// baseline.ScopeName, kept beside the signed scopes (not in l.scopes:
// it has no manifest), alerted through the same replace/diff path: the
// coverage (unsignedCode) is checked, as a signed scope is (parts.go).

// baselinePath is the baseline file in the state directory ("" without
// one).
func (uc *unsignedCode) baselinePath() string {
	l := uc.l
	if l.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(l.cfg.StateDir, baseline.FileName)
}

// setting is the unsigned setting ("auto" when unset).
func (uc *unsignedCode) setting() string {
	l := uc.l
	if l.cfg.Unsigned == "" {
		return baseline.Auto
	}
	return l.cfg.Unsigned
}

// start reads the baseline at start and says which mode applies;
// a baseline that cannot be read is an error (the daemon does not start:
// the state directory is integrityd's own).
func (uc *unsignedCode) start() error {
	l := uc.l
	path := uc.baselinePath()
	if path == "" {
		l.meta.Unsigned = "unsigned code: not checked (no state directory)"
		l.log.Info(l.meta.Unsigned, zap.String("message_id", kind.IDBaseline))
		uc.drop()
		return nil
	}
	b, mode, err := baseline.Open(uc.setting(), path, l.in.Root)
	if err != nil {
		return err
	}
	l.log.Info(mode, zap.String("message_id", kind.IDBaseline), zap.String("baseline", path))
	l.meta.Unsigned = mode
	uc.setBaseline(b)
	return nil
}

// setBaseline makes b the baseline (nil: unsigned code is not checked).
// When checking starts or stops, the covered directories are watched
// again under the new rule (skipDir).
func (uc *unsignedCode) setBaseline(b *baseline.Baseline) {
	was := uc.base != nil
	uc.base = b
	if b == nil {
		uc.cov, uc.files = nil, nil
		uc.l.d.coverage.Store(nil)
		uc.drop()
	} else {
		uc.refreshCoverage()
	}
	if was != (b != nil) {
		uc.rewatchCoverage()
	}
}

// rewatchCoverage applies the watch rule again where the coverage may
// be: the directories of the root that no scope checks, and the apps
// roots.
func (uc *unsignedCode) rewatchCoverage() {
	l := uc.l
	if l.w == nil {
		return
	}
	dirs := slices.Clone(l.in.AppsRoots)
	if ents, err := os.ReadDir(l.in.Root); err == nil {
		for _, e := range ents {
			if p := l.in.Root + "/" + e.Name(); e.IsDir() && l.in.Excluded(p) {
				dirs = append(dirs, p)
			}
		}
	}
	dirs = append(dirs, l.in.Exclude...)
	for _, d := range dirs {
		if l.cat.inTree(d) {
			l.w.Rewatch(d)
		}
	}
}

// drop forgets the unsigned findings (the mode is off).
func (uc *unsignedCode) drop() {
	l := uc.l
	if l.rec.findings.drop(baseline.ScopeName) > 0 {
		l.rec.modified()
	}
}

// refreshCoverage lists the unsigned apps again; it returns the app
// directories that became or ceased to be unsigned apps.
func (uc *unsignedCode) refreshCoverage() []string {
	l := uc.l
	if uc.base == nil {
		return nil
	}
	c, err := baseline.NewCoverage(l.in)
	if err != nil {
		l.log.Error("cannot list the unsigned apps; keeping the known ones", zap.Error(err))
		return nil
	}
	var old []string
	if uc.cov != nil {
		old = uc.cov.UnsignedApps()
	}
	now := c.UnsignedApps()
	var changed []string
	for _, a := range now {
		if !slices.Contains(old, a) {
			changed = append(changed, a)
		}
	}
	for _, a := range old {
		if !slices.Contains(now, a) {
			changed = append(changed, a)
		}
	}
	uc.cov = c
	l.d.coverage.Store(c)
	return changed
}

// baselineChanged reads the baseline again after its file changed (an
// accept): the findings follow it; one that cannot be read keeps the
// previous one.
func (uc *unsignedCode) baselineChanged(ctx context.Context) {
	was := uc.base != nil
	if !uc.reloadBaseline() || uc.base == nil {
		return
	}
	if !was || uc.files == nil {
		uc.scanCoverage(ctx)
		return
	}
	uc.l.rec.replace(uc, "", uc.base.Compare(uc.files, ""))
}

// scanCoverage scans the unsigned coverage at once, on the loop, when a
// baseline starts the checks: every change from then on is rechecked by
// its event (changes made during this scan wait in the watcher's batch).
// A full scan instead would leave a gap while it runs, its view of a
// directory older than a web shell written there just after the
// baseline. When the coverage is unknown or cannot be scanned, a full
// scan does it.
func (uc *unsignedCode) scanCoverage(ctx context.Context) {
	l := uc.l
	if uc.cov != nil {
		files, err := uc.cov.Scan(ctx)
		if err == nil {
			uc.files = files
			l.rec.modified()
			l.rec.replace(uc, "", uc.base.Compare(uc.files, ""))
			return
		}
		if ctx.Err() != nil {
			return
		}
		l.log.Error("unsigned code could not be scanned; a full scan follows", zap.Error(err))
	}
	l.sched.requestScan(ctx, "baseline recorded", nil, false)
}

// reloadBaseline reads the baseline again with the unsigned setting as
// it is now; false when it is unusable (the previous one stays) or
// nothing changes (off before and after).
func (uc *unsignedCode) reloadBaseline() bool {
	l := uc.l
	path := uc.baselinePath()
	if path == "" {
		return false
	}
	b, mode, err := baseline.Open(uc.setting(), path, l.in.Root)
	if err != nil {
		l.log.Error("baseline unusable; keeping the previous one", zap.String("message_id", kind.IDBaseline), zap.Error(err))
		return false
	}
	if b == nil && uc.base == nil && mode == l.meta.Unsigned {
		return false
	}
	l.log.Info(mode+" (read again)", zap.String("message_id", kind.IDBaseline), zap.String("baseline", path))
	l.meta.Unsigned = mode
	l.rec.modified()
	uc.setBaseline(b)
	return true
}

// paths rechecks the covered paths of a batch (after the apps
// were listed again when they may have changed).
func (uc *unsignedCode) paths(ctx context.Context, paths []string, apps bool) {
	if path := uc.baselinePath(); path != "" && slices.Contains(paths, path) {
		uc.baselineChanged(ctx)
	}
	if uc.base == nil || uc.files == nil {
		return // off, or before the first full scan
	}
	if apps {
		paths = append(paths, uc.refreshCoverage()...)
	}
	var keys []string
	for _, p := range paths {
		if uc.cov.Covers(p) {
			keys = append(keys, p)
		}
	}
	for _, p := range topmost(keys) {
		if !uc.recheck(ctx, p) {
			return
		}
	}
}

// recheck checks absolute path p of the coverage (and what is
// below it) against the baseline; false when ctx is done.
func (uc *unsignedCode) recheck(ctx context.Context, p string) bool {
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() > bigFile {
		uc.hashLater(ctx, p)
		return true
	}
	uc.l.rk.big.looked(baseline.ScopeName, p, nil) // looked at now: the result on its way is older
	key, files, err := uc.cov.ScanPath(ctx, p)
	if err != nil {
		return false
	}
	uc.apply(key, files)
	return true
}

// apply takes a recheck of key (files: what is there now) into
// the loop's view, and alerts.
func (uc *unsignedCode) apply(key string, files baseline.Files) {
	l := uc.l
	l.sched.q.touch(baseline.ScopeName, key)
	for k := range uc.files {
		if k == key || strings.HasPrefix(k, key+"/") {
			delete(uc.files, k)
		}
	}
	for k, f := range files {
		uc.files[k] = f
	}
	l.rec.replace(uc, key, uc.base.Compare(files, key))
}

// hashLater hashes the big file at p off the loop, as rechecker.hashLater does
// for the signed scopes (bigfiles.go): a huge file dropped in themes/
// holds no other alert.
func (uc *unsignedCode) hashLater(ctx context.Context, p string) {
	l := uc.l
	cov := uc.cov
	l.rec.changed = true // the snapshot says a file is being hashed
	l.rk.big.run(ctx, bigResult{k: bigKey{baseline.ScopeName, p}, ucov: cov, finish: uc.finished}, func(r *bigResult) {
		r.ukey, r.ufiles, r.err = cov.ScanPath(ctx, p)
	})
}

// finished takes the hash of a big file of the coverage.
func (uc *unsignedCode) finished(ctx context.Context, r bigResult) {
	l := uc.l
	p := r.k.key
	again, stale := l.rk.big.finished(r.k), l.rk.big.takeStale(r.k)
	switch {
	case uc.base == nil || uc.files == nil || uc.cov == nil:
		return // off meanwhile, or before the first scan's merge
	case stale || r.ucov != uc.cov:
		uc.recheck(ctx, p) // looked at again, or the coverage changed
		return
	case r.err != nil && ctx.Err() != nil:
		return
	case r.err != nil:
		l.log.Error("hash of a big unsigned file failed", zap.String("path", p), zap.Error(r.err))
	default:
		uc.apply(r.ukey, r.ufiles)
	}
	if again {
		uc.hashLater(ctx, p)
	}
}

// scanUnsigned is the full scan's part of the unsigned coverage (nil
// when it is not checked).
func scanUnsigned(ctx context.Context, j *scanJob) (baseline.Files, error) {
	if !j.unsigned {
		return nil, nil
	}
	c, err := baseline.NewCoverage(j.in)
	if err != nil {
		return nil, err
	}
	return c.Scan(ctx)
}

// merge takes the full scan's view of the coverage, but for the
// keys the loop rechecked meanwhile, which are checked again.
func (uc *unsignedCode) merge(ctx context.Context, res *scanResult) {
	l := uc.l
	if uc.base == nil {
		return
	}
	if res.uerr != nil {
		l.log.Error("unsigned code could not be scanned", zap.Error(res.uerr))
		return
	}
	if res.unsigned == nil {
		return // the scan started before the baseline
	}
	uc.files = res.unsigned
	l.rec.replace(uc, "", uc.base.Compare(uc.files, ""))
	touched := res.job.touched[baseline.ScopeName]
	for _, k := range topmost(slices.Collect(maps.Keys(touched))) {
		p := k
		if !strings.HasPrefix(k, "/") {
			p = l.in.Root + "/" + k
		}
		if !uc.recheck(ctx, p) {
			return
		}
	}
}

// name is the pseudo-scope the findings of the coverage are kept under
// (checked).
func (uc *unsignedCode) name() string { return baseline.ScopeName }

// abs is the absolute path of key of the coverage (checked): its keys
// are the root's.
func (uc *unsignedCode) abs(key string) string {
	return filepath.Join(uc.l.in.Root, filepath.FromSlash(key))
}

// inForce is nil: no manifest covers unsigned code (checked).
func (uc *unsignedCode) inForce() *verify.Expected { return nil }

// interner is nil: the paths of the coverage are not interned (checked).
func (uc *unsignedCode) interner() func(string) string { return nil }

// withRelease returns fresh: unsigned code has no release (checked).
func (uc *unsignedCode) withRelease(_ *record, _ string, fresh []finding.Finding) []finding.Finding {
	return fresh
}

// folding is false: an update by hand does not hold back the alerts of
// unsigned code (checked).
func (uc *unsignedCode) folding(*record) bool { return false }

// highPriority says which alerts are logged at priority err rather than
// warning: a directive that makes Apache run code, and a new executable
// file where no signature covers the code (the web shell).
func highPriority(f *finding.Finding) bool {
	switch f.Kind {
	case kind.HtaccessDirective:
		return true
	case kind.UnsignedExtra:
		return baseline.IsExecutableName(filepath.Base(f.Path))
	}
	return false
}
