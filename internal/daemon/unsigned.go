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
// it has no manifest), alerted through the same replace/diff path.

// baselinePath is the baseline file in the state directory ("" without
// one).
func (l *loop) baselinePath() string {
	if l.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(l.cfg.StateDir, baseline.FileName)
}

// unsignedSetting is the unsigned setting ("auto" when unset).
func (l *loop) unsignedSetting() string {
	if l.cfg.Unsigned == "" {
		return baseline.Auto
	}
	return l.cfg.Unsigned
}

// startUnsigned reads the baseline at start and says which mode applies;
// a baseline that cannot be read is an error (the daemon does not start:
// the state directory is integrityd's own).
func (l *loop) startUnsigned() error {
	l.uscope = &scope{sc: &verify.Scope{Name: baseline.ScopeName, Dir: l.in.Root}}
	path := l.baselinePath()
	if path == "" {
		l.meta.Unsigned = "unsigned code: not checked (no state directory)"
		l.log.Info(l.meta.Unsigned, zap.String("message_id", kind.IDBaseline))
		l.dropUnsigned()
		return nil
	}
	b, mode, err := baseline.Open(l.unsignedSetting(), path, l.in.Root)
	if err != nil {
		return err
	}
	l.log.Info(mode, zap.String("message_id", kind.IDBaseline), zap.String("baseline", path))
	l.meta.Unsigned = mode
	l.setBaseline(b)
	return nil
}

// setBaseline makes b the baseline (nil: unsigned code is not checked).
// When checking starts or stops, the covered directories are watched
// again under the new rule (skipDir).
func (l *loop) setBaseline(b *baseline.Baseline) {
	was := l.ubase != nil
	l.ubase = b
	if b == nil {
		l.ucov, l.ufiles = nil, nil
		l.d.coverage.Store(nil)
		l.dropUnsigned()
	} else {
		l.refreshCoverage()
	}
	if was != (b != nil) {
		l.rewatchCoverage()
	}
}

// rewatchCoverage applies the watch rule again where the coverage may
// be: the directories of the root that no scope checks, and the apps
// roots.
func (l *loop) rewatchCoverage() {
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
		if l.inTree(d) {
			l.w.Rewatch(d)
		}
	}
}

// dropUnsigned forgets the unsigned findings (the mode is off).
func (l *loop) dropUnsigned() {
	if l.findings.drop(baseline.ScopeName) > 0 {
		l.modified()
	}
}

// refreshCoverage lists the unsigned apps again; it returns the app
// directories that became or ceased to be unsigned apps.
func (l *loop) refreshCoverage() []string {
	if l.ubase == nil {
		return nil
	}
	c, err := baseline.NewCoverage(l.in)
	if err != nil {
		l.log.Error("cannot list the unsigned apps; keeping the known ones", zap.Error(err))
		return nil
	}
	var old []string
	if l.ucov != nil {
		old = l.ucov.UnsignedApps()
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
	l.ucov = c
	l.d.coverage.Store(c)
	return changed
}

// baselineChanged reads the baseline again after its file changed (an
// accept): the findings follow it; one that cannot be read keeps the
// previous one.
func (l *loop) baselineChanged(ctx context.Context) {
	was := l.ubase != nil
	if !l.reloadBaseline() || l.ubase == nil {
		return
	}
	if !was || l.ufiles == nil {
		l.scanCoverage(ctx)
		return
	}
	l.replace(l.uscope, "", l.ubase.Compare(l.ufiles, ""))
}

// scanCoverage scans the unsigned coverage at once, on the loop, when a
// baseline starts the checks: every change from then on is rechecked by
// its event (changes made during this scan wait in the watcher's batch).
// A full scan instead would leave a gap while it runs, its view of a
// directory older than a web shell written there just after the
// baseline. When the coverage is unknown or cannot be scanned, a full
// scan does it.
func (l *loop) scanCoverage(ctx context.Context) {
	if l.ucov != nil {
		files, err := l.ucov.Scan(ctx)
		if err == nil {
			l.ufiles = files
			l.modified()
			l.replace(l.uscope, "", l.ubase.Compare(l.ufiles, ""))
			return
		}
		if ctx.Err() != nil {
			return
		}
		l.log.Error("unsigned code could not be scanned; a full scan follows", zap.Error(err))
	}
	l.requestScan(ctx, "baseline recorded", nil, false)
}

// reloadBaseline reads the baseline again with the unsigned setting as
// it is now; false when it is unusable (the previous one stays) or
// nothing changes (off before and after).
func (l *loop) reloadBaseline() bool {
	path := l.baselinePath()
	if path == "" {
		return false
	}
	b, mode, err := baseline.Open(l.unsignedSetting(), path, l.in.Root)
	if err != nil {
		l.log.Error("baseline unusable; keeping the previous one", zap.String("message_id", kind.IDBaseline), zap.Error(err))
		return false
	}
	if b == nil && l.ubase == nil && mode == l.meta.Unsigned {
		return false
	}
	l.log.Info(mode+" (read again)", zap.String("message_id", kind.IDBaseline), zap.String("baseline", path))
	l.meta.Unsigned = mode
	l.modified()
	l.setBaseline(b)
	return true
}

// unsignedPaths rechecks the covered paths of a batch (after the apps
// were listed again when they may have changed).
func (l *loop) unsignedPaths(ctx context.Context, paths []string, apps bool) {
	if path := l.baselinePath(); path != "" && slices.Contains(paths, path) {
		l.baselineChanged(ctx)
	}
	if l.ubase == nil || l.ufiles == nil {
		return // off, or before the first full scan
	}
	if apps {
		paths = append(paths, l.refreshCoverage()...)
	}
	var keys []string
	for _, p := range paths {
		if l.ucov.Covers(p) {
			keys = append(keys, p)
		}
	}
	for _, p := range topmost(keys) {
		if !l.recheckUnsigned(ctx, p) {
			return
		}
	}
}

// recheckUnsigned checks absolute path p of the coverage (and what is
// below it) against the baseline; false when ctx is done.
func (l *loop) recheckUnsigned(ctx context.Context, p string) bool {
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() > bigFile {
		l.unsignedLater(ctx, p)
		return true
	}
	l.big.looked(baseline.ScopeName, p, nil) // looked at now: the result on its way is older
	key, files, err := l.ucov.ScanPath(ctx, p)
	if err != nil {
		return false
	}
	l.applyUnsigned(key, files)
	return true
}

// applyUnsigned takes a recheck of key (files: what is there now) into
// the loop's view, and alerts.
func (l *loop) applyUnsigned(key string, files baseline.Files) {
	l.scans.touch(baseline.ScopeName, key)
	for k := range l.ufiles {
		if k == key || strings.HasPrefix(k, key+"/") {
			delete(l.ufiles, k)
		}
	}
	for k, f := range files {
		l.ufiles[k] = f
	}
	l.replace(l.uscope, key, l.ubase.Compare(files, key))
}

// unsignedLater hashes the big file at p off the loop, as hashLater does
// for the signed scopes (bigfiles.go): a huge file dropped in themes/
// holds no other alert.
func (l *loop) unsignedLater(ctx context.Context, p string) {
	cov := l.ucov
	l.changed = true // the snapshot says a file is being hashed
	l.big.run(ctx, bigResult{k: bigKey{baseline.ScopeName, p}, sc: l.uscope, ucov: cov}, func(r *bigResult) {
		r.ukey, r.ufiles, r.err = cov.ScanPath(ctx, p)
	})
}

// unsignedFinished takes the hash of a big file of the coverage.
func (l *loop) unsignedFinished(ctx context.Context, r bigResult) {
	p := r.k.key
	again, stale := l.big.finished(r.k), l.big.takeStale(r.k)
	switch {
	case l.ubase == nil || l.ufiles == nil || l.ucov == nil:
		return // off meanwhile, or before the first scan's merge
	case stale || r.ucov != l.ucov:
		l.recheckUnsigned(ctx, p) // looked at again, or the coverage changed
		return
	case r.err != nil && ctx.Err() != nil:
		return
	case r.err != nil:
		l.log.Error("hash of a big unsigned file failed", zap.String("path", p), zap.Error(r.err))
	default:
		l.applyUnsigned(r.ukey, r.ufiles)
	}
	if again {
		l.unsignedLater(ctx, p)
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

// mergeUnsigned takes the full scan's view of the coverage, but for the
// keys the loop rechecked meanwhile, which are checked again.
func (l *loop) mergeUnsigned(ctx context.Context, res *scanResult) {
	if l.ubase == nil {
		return
	}
	if res.uerr != nil {
		l.log.Error("unsigned code could not be scanned", zap.Error(res.uerr))
		return
	}
	if res.unsigned == nil {
		return // the scan started before the baseline
	}
	l.ufiles = res.unsigned
	l.replace(l.uscope, "", l.ubase.Compare(l.ufiles, ""))
	touched := res.job.touched[baseline.ScopeName]
	for _, k := range topmost(slices.Collect(maps.Keys(touched))) {
		p := k
		if !strings.HasPrefix(k, "/") {
			p = l.in.Root + "/" + k
		}
		if !l.recheckUnsigned(ctx, p) {
			return
		}
	}
}

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
