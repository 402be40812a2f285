package daemon

import (
	"context"
	"crypto/sha256"
	"maps"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

// scanJob is a full scan: every scope the loop knew when it started,
// checked in its own goroutine with the trust files reloaded.
type scanJob struct {
	reason     string
	in         *verify.Install
	trust, crl string
	scopes     []*verify.Scope
	start      time.Time
	waiters    []chan struct{} // closed once merged
	reload     bool            // a reload asked for it: READY=1 once merged
	paced      bool            // a background re-verification pass
	unsigned   bool            // the unsigned coverage is scanned too
	// touched (owned by the loop) are the keys, by scope, that the loop
	// rechecked itself while the scan ran: they win over the scan's view.
	// A set: a pass of minutes under steady writes sees the same paths
	// many times.
	touched map[string]map[string]bool
	// after is closed once the watcher's re-sync before it is done (nil:
	// none): the scan lists a directory only once it is watched.
	after <-chan struct{}
}

// scopeScan is a whole check of one scope.
type scopeScan struct {
	sc       *verify.Scope
	exp      *verify.Expected  // nil when the manifest is not trusted
	sum      [sha256.Size]byte // of the manifest verified
	findings []finding.Finding
	links    []string
	big      []string // files left unhashed (checkScope's over)
	err      error    // the check was cancelled
}

// scanResult is what a scanJob hands back to the loop.
type scanResult struct {
	job      *scanJob
	trust    *verify.Trust // nil when the trust files could not be loaded
	trustErr error
	scopes   []scopeScan
	dur      time.Duration
	cost     int64 // bytes hashed, and verify.PaceFileCost per file
	err      error // cancelled
	// unsigned is the unsigned coverage (nil when not scanned), uerr why
	// it could not be.
	unsigned baseline.Files
	uerr     error
}

// newJob prepares a full scan of the current scopes, listing them again
// first.
func (sq *scheduler) newJob(reason string) *scanJob {
	l := sq.l
	l.cat.syncScopes()
	j := &scanJob{reason: reason, in: l.in, trust: l.cfg.Trust, crl: l.cfg.CRL, touched: map[string]map[string]bool{}, unsigned: l.uc.base != nil, after: l.wa.resynced}
	for _, s := range l.scopes {
		j.scopes = append(j.scopes, s.sc)
	}
	sort.Slice(j.scopes, func(a, b int) bool { return j.scopes[a].Name < j.scopes[b].Name })
	return j
}

// runScan does the work of a job. It touches nothing of the loop's; prev
// is kept when the trust files cannot be loaded.
func runScan(ctx context.Context, j *scanJob, prev *verify.Trust) *scanResult {
	res := &scanResult{job: j, trust: prev}
	if j.after != nil {
		select {
		case <-j.after:
		case <-ctx.Done():
			res.err = ctx.Err()
			return res
		}
	}
	j.start = time.Now()
	p := j.in.Checker.Progress
	files0, bytes0 := p.Files(), p.Bytes()
	defer func() { res.cost = p.Bytes() - bytes0 + (p.Files()-files0)*verify.PaceFileCost }()
	if t, err := verify.LoadTrust(j.trust, j.crl); err != nil {
		res.trustErr = err
	} else {
		res.trust = t
	}
	for _, sc := range j.scopes {
		r := checkScope(ctx, sc, res.trust, 0)
		if r.err != nil {
			res.err = r.err
			return res
		}
		res.scopes = append(res.scopes, r)
	}
	res.unsigned, res.uerr = scanUnsigned(ctx, j)
	if ctx.Err() != nil {
		res.err = ctx.Err()
		return res
	}
	res.dur = time.Since(j.start)
	return res
}

// checkScope verifies the scope's manifest and checks the whole scope;
// regular files larger than over bytes (0: none) are not hashed but listed
// in big.
func checkScope(ctx context.Context, sc *verify.Scope, t *verify.Trust, over int64) scopeScan {
	m, ex := sc.LoadManifest(t)
	if ex != nil {
		return scopeScan{sc: sc, findings: []finding.Finding{*ex}}
	}
	r := scopeScan{sc: sc, exp: sc.NewExpected(m), sum: m.Sum()}
	fresh, links, big, err := sc.RecheckDeferred(ctx, r.exp, "", over)
	if err != nil {
		if ctx.Err() != nil {
			return scopeScan{err: ctx.Err()}
		}
		fresh = []finding.Finding{verify.ListException(sc.Name, err)}
	}
	r.findings, r.links, r.big = fresh, links, big
	return r
}

// requestScan starts a full scan, or queues one behind the scan running
// (requests queued together share one scan). done, if not nil, is closed
// once the scan is merged.
func (sq *scheduler) requestScan(ctx context.Context, reason string, done chan struct{}, reload bool) {
	if sq.q.queue(reason, done, reload) {
		sq.l.rec.changed = true
		return
	}
	j := sq.newJob(reason)
	if done != nil {
		j.waiters = append(j.waiters, done)
	}
	j.reload = reload
	sq.startScan(ctx, j)
}

func (sq *scheduler) startScan(ctx context.Context, j *scanJob) {
	l := sq.l
	sq.q.start(ctx, j, l.trust)
	l.rec.changed = true
}

// scanFinished merges a scan and starts the queued one.
func (sq *scheduler) scanFinished(ctx context.Context, res *scanResult) {
	sq.q.finished()
	if res.err == nil {
		sq.merge(ctx, res)
	}
	if queued := sq.q.queued(); queued != nil {
		j := sq.newJob(queued.reason)
		j.waiters, j.reload = queued.waiters, queued.reload
		sq.startScan(ctx, j)
	}
}

// touch notes keys of s that the loop checks itself, for the merge of a
// running scan and of the scope's settle check.
func (sq *scheduler) touch(s *scope, keys ...string) {
	sq.q.touch(s.sc.Name, keys...)
	if s.checking != nil {
		for _, k := range keys {
			s.checking.touched[k] = true
		}
	}
}

// merge takes the result of a full scan. For each scope still known as
// the scan saw it and not being updated, the scan's findings replace the
// loop's, except at the keys the loop rechecked while the scan ran: there
// the loop's view stays, and those keys are checked once more against
// the manifest the scan verified.
func (sq *scheduler) merge(ctx context.Context, res *scanResult) {
	l := sq.l
	j := res.job
	if res.trustErr != nil {
		l.log.Error("cannot reload the trust anchors; keeping the previous ones", zap.Error(res.trustErr))
	}
	l.trust = res.trust
	for _, r := range res.scopes {
		sq.mergeScope(ctx, j, r)
	}
	l.uc.merge(ctx, res)
	l.checkPinned()
	l.meta.Complete = true
	l.meta.LastFullScan = j.start
	l.meta.LastFullDuration = res.dur
	l.meta.RescanInterval = l.cfg.RescanInterval
	l.rec.modified()
	l.rec.publish()
	snap := l.d.snap.Load()
	l.d.metrics.scanDone(res.dur)
	l.log.Info("full scan done", zap.String("message_id", kind.IDFullScan), zap.String("reason", j.reason),
		zap.Int("scopes", snap.Scopes), zap.Int("files", snap.Files), zap.Int("findings", snap.Count()),
		zap.Duration("duration", res.dur), zap.Int("watched_dirs", snap.meta.WatchedDirs), zap.String("degraded", snap.meta.Degraded))
	if res.cost > 0 && !j.paced {
		sq.q.cost = res.cost
	}
	sq.q.due = sq.nextScanAfter(j, snap)
	l.d.saver.soon()
	// A full scan leaves tens of MB of garbage (manifests, hashes of
	// every file): give it back to the OS now rather than over minutes.
	debug.FreeOSMemory()
	if j.reload {
		l.d.notify("READY=1\nSTATUS=" + snap.statusLine())
	}
	for _, ch := range j.waiters {
		close(ch)
	}
}

// mergeScope takes the scan's check of one scope (see merge).
func (sq *scheduler) mergeScope(ctx context.Context, j *scanJob, r scopeScan) {
	l := sq.l
	s := l.scopes[r.sc.Name]
	touched := j.touched[r.sc.Name]
	if s == nil || s.sc.Dir != r.sc.Dir || !s.settle.IsZero() || touched[""] {
		return // gone, replaced, held, or checked whole meanwhile
	}
	if j.in == l.in {
		s.sc = r.sc
	}
	keys := topmost(slices.Collect(maps.Keys(touched)))
	r.findings, r.links = sq.overlay(s, r, keys)
	l.rk.adopt(s, r)
	for _, k := range keys {
		if s.exp == nil || !l.rk.recheck(ctx, s, k) {
			break
		}
	}
}

// nextScanAfter is when the scan after j is due: soon while some
// directories are not watched, half a period after j began while passes
// run (a file is hashed at least once per period), else after the rescan
// interval.
func (sq *scheduler) nextScanAfter(j *scanJob, snap *Snapshot) time.Time {
	l := sq.l
	switch {
	case snap.meta.Degraded != "":
		return time.Now().Add(min(l.cfg.RescanInterval, l.cfg.DegradedRescan))
	case sq.reverifying():
		return j.start.Add(l.cfg.ReverifyPeriod / 2)
	}
	return time.Now().Add(l.cfg.RescanInterval)
}

// overlay returns the scan's findings and links for s with those at keys
// (topmost: none below another) and below replaced by the loop's own.
func (sq *scheduler) overlay(s *scope, r scopeScan, keys []string) ([]finding.Finding, []string) {
	if len(keys) == 0 {
		return r.findings, r.links
	}
	set := make(map[string]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	touched := func(p string) bool {
		for ; p != ""; p = parentKey(p) {
			if set[p] {
				return true
			}
		}
		return false
	}
	fs := make([]finding.Finding, 0, len(r.findings))
	for _, f := range r.findings {
		if !touched(f.Path) {
			fs = append(fs, f)
		}
	}
	for _, k := range keys {
		for _, f := range sq.l.rec.part(s, k) {
			fs = append(fs, *f)
		}
	}
	links := make([]string, 0, len(r.links))
	for _, p := range r.links {
		if !touched(p) {
			links = append(links, p)
		}
	}
	for p := range s.links {
		if touched(p) {
			links = append(links, p)
		}
	}
	return fs, links
}

// parentKey is the key of the directory holding key ("" at the top).
func parentKey(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return ""
}

// rescanDue starts the periodic full scan, or the next re-verification
// pass.
func (sq *scheduler) rescanDue(ctx context.Context) {
	l := sq.l
	if !l.wa.treesPresent() {
		// Nothing at the install's path: a scan would find every file
		// missing. The tree's return is an event (roots.go).
		sq.q.due = time.Now().Add(l.cfg.RescanInterval)
		return
	}
	_, degraded := l.w.Stats()
	l.wa.resync() // repairs watches, and retries those a limit refused
	switch {
	case sq.q.cur != nil:
		sq.q.due = time.Time{} // its merge sets the next
	case sq.reverifying() && degraded == "":
		sq.q.due = time.Time{}
		sq.startScan(ctx, sq.newPass())
	default:
		sq.requestScan(ctx, "periodic", nil, false)
	}
}
