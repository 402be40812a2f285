package daemon

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/state"
	"github.com/integrityd/integrityd/internal/verify"
	"github.com/integrityd/integrityd/internal/watch"
)

// loop is the daemon's state. Only the goroutine running Daemon.Run (and
// New, before it) touches it; the rest of the process sees snapshots.
// What it holds is split into parts (parts.go), each a plain struct the
// loop owns with the state of one job and the methods that change it; the
// loop itself runs the rounds (run), the deadlines and the requests.
type loop struct {
	d     *Daemon
	log   *zap.Logger
	cfg   Config // the running settings (Reload changes some)
	in    *verify.Install
	trust *verify.Trust
	// trustSeen is what the trust files held when last looked at
	// (trustfiles.go).
	trustSeen trustFiles
	w         *watch.Watcher
	rep       reporter // the journal's entries (report.go)
	// writers says who made a change (nil: who-data off or refused);
	// it tracks the files with several names (wa.linksChanged: to do
	// again), whose change through another name it reports (kicks).
	writers *watch.Writers

	scopes map[string]*scope
	meta   state.State // scan metadata (its Findings stay nil)

	batches uint64    // batches handled
	fatal   error     // ends run (ErrInstallChanged)
	conf    confWatch // how reading Nextcloud's configuration goes

	// The parts (parts.go).
	rec    *record       // the findings and what is published of them
	rk     *rechecker    // the live recheck of changed paths
	cat    *catalog      // which scopes there are, and where a path belongs
	wa     *watches      // the watches, the followed trees, the mounts
	sched  *scheduler    // the full scans and re-verification passes
	uc     *unsignedCode // the unsigned coverage (unsigned.go)
	stage  stages        // the updater's stage, the expected release (stage.go)
	writes writes        // new findings of files being written during an update (writing.go)
	swaps  swapLog       // names new files took lately (swap.go)
	gone   goneApps      // signed apps removed moments ago (appupdate.go)
}

// scope is a signed scope (core, or an app) as the loop checks it: the
// manifests it is checked against, its hold while it is being updated and
// its symlinks. Its findings are the record's (checked).
type scope struct {
	sc  *verify.Scope
	exp *verify.Expected  // nil when the manifest is not trusted
	sum [sha256.Size]byte // of the manifest exp comes from
	// next is a new, validly signed manifest seen while the scope is
	// being updated (nil when none): until the scope is quiet, a changed
	// file is a finding only if it matches neither manifest.
	next    *verify.Expected
	nextSum [sha256.Size]byte
	// last is the manifest that was in force while none is (exp nil: it
	// was removed, or no longer verifies): changes meanwhile are checked
	// against it, and against next or a staged one.
	last      *verify.Expected
	settle    time.Time    // non-zero while the scope is being updated
	holdSince time.Time    // when the update started
	checking  *settleCheck // the whole check running off the loop (settle.go), or nil
	// real is where a symlinked app directory resolves to ("" when Dir is
	// not a symlink): events arrive with that path.
	real string
	// links are the symlinks of the scope: their targets can change
	// without an event on them, so they are rechecked after every batch.
	links map[string]bool
}

// name is the scope the findings of s are kept under (checked).
func (s *scope) name() string { return s.sc.Name }

// inForce is the manifest in force, or the last one while none is
// (checked): the fold's judge of a heal.
func (s *scope) inForce() *verify.Expected {
	if s.exp == nil {
		return s.last
	}
	return s.exp
}

// interner interns the paths of the findings of s with the manifest in
// force (checked; nil without one).
func (s *scope) interner() func(string) string {
	if s.exp == nil {
		return nil
	}
	return s.exp.Intern
}

// withRelease is record.withRelease for s (checked).
func (s *scope) withRelease(rc *record, key string, fresh []finding.Finding) []finding.Finding {
	return rc.withRelease(s, key, fresh)
}

// folding is record.folding for s (checked).
func (s *scope) folding(rc *record) bool { return rc.folding(s) }

// abs is the absolute path of key of s (checked): below the target of a
// symlinked app directory, where its events arrive.
func (s *scope) abs(key string) string {
	dir := s.sc.Dir
	if s.real != "" {
		dir = s.real
	}
	return filepath.Join(dir, filepath.FromSlash(key))
}

// files is how many files the manifest in force of s lists.
func (s *scope) files() int {
	if s.exp == nil {
		return 0
	}
	return s.exp.Len()
}

// setLinks records the symlinks found at key and below.
func (s *scope) setLinks(key string, links []string) {
	if s.links == nil {
		s.links = map[string]bool{}
	}
	for l := range s.links {
		if under(l, key) {
			delete(s.links, l)
		}
	}
	for _, l := range links {
		s.links[l] = true
	}
}

// under reports whether key p is key or below it ("" covers all).
func under(p, key string) bool {
	return key == "" || p == key || (len(p) > len(key) && p[len(key)] == '/' && p[:len(key)] == key)
}

func newLoop(d *Daemon, cfg Config, in *verify.Install, t *verify.Trust) *loop {
	l := &loop{
		d: d, log: d.log, cfg: cfg, in: in, trust: t,
		conf:   confWatch{dir: filepath.Join(in.Root, "config")},
		rep:    reporter{d: d, whoData: cfg.WhoData},
		scopes: map[string]*scope{},
		meta:   state.State{Signed: map[string]string{}},
	}
	l.rec = &record{l: l, findings: newFindingSet()}
	l.rk = &rechecker{l: l, big: newOffLoop(), settleDone: make(chan settleResult)}
	l.cat = &catalog{l: l, extraTree: map[string]bool{}}
	l.wa = &watches{l: l}
	l.sched = &scheduler{l: l, q: newScanQueue()}
	l.uc = &unsignedCode{l: l}
	l.stage = newStages(d.log, in.UpdaterStage(), cfg.StateDir)
	l.gone = goneApps{log: d.log}
	l.rep.pathOf = l.findingPath
	l.trustSeen, _ = trustFilesOf(cfg)
	return l
}

// findingPath is the absolute path of f's file (false: no such scope).
func (l *loop) findingPath(f *finding.Finding) (string, bool) {
	if c := l.checkedAs(f.Scope); c != nil {
		return c.abs(f.Path), true
	}
	return "", false
}

// checkedAs is what the findings of scope name are kept under: a signed
// scope, the unsigned coverage while it is checked, or nil.
func (l *loop) checkedAs(name string) checked {
	if s := l.scopes[name]; s != nil {
		return s
	}
	if name == baseline.ScopeName && l.uc.cov != nil {
		return l.uc
	}
	return nil
}

// run is the loop: batches, settle timers, scans, requests, until ctx is
// done.
func (l *loop) run(ctx context.Context, werr <-chan error, mounts <-chan watch.MountChange) error {
	d := l.d
	// The loop beats at least every Heartbeat (at most W/4), also when
	// idle; the watchdog goroutine touches the heartbeat file and pings
	// while the beat is fresh or files are being checked, so a wedged
	// loop is restarted by systemd and status says it is not alive.
	heartbeat := time.NewTicker(d.cfg.Heartbeat)
	defer heartbeat.Stop()
	d.beat.Store(time.Now().UnixNano())
	go d.watchdog(ctx)
	status := d.snap.Load().statusLine()
	// One timer, for the earliest of the loop's deadlines (due).
	timer := time.NewTimer(time.Until(l.sched.q.due))
	defer timer.Stop()
	kicks := l.wa.linkKicks()
	for {
		d.beat.Store(time.Now().UnixNano())
		select {
		case <-ctx.Done():
			return nil
		case <-heartbeat.C:
		case err := <-werr:
			return l.watcherStopped(ctx, err)
		case b := <-l.w.Batches():
			l.batch(ctx, b)
		case <-timer.C:
			l.due(ctx, time.Now())
		case req := <-d.reqs:
			req.fn(ctx, l, req.done)
		case res := <-l.sched.q.done:
			l.sched.scanFinished(ctx, res)
		case c := <-mounts:
			l.wa.mountChanged(ctx, c, false)
		case r := <-l.rk.big.done:
			l.rk.bigFinished(ctx, r)
		case r := <-l.rk.settleDone:
			l.rk.settleFinished(ctx, r)
		case <-kicks:
			// A file with another name changed, maybe through a name
			// outside the install: no inotify event, no batch.
			l.rk.recheckLinks(ctx)
		}
		if l.fatal != nil {
			l.rep.flush()
			return l.fatal
		}
		l.endRound(&status)
		if next := l.nextDue(); !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		} else {
			timer.Stop()
		}
	}
}

// watcherStopped is what ends run when the watcher failed with err.
func (l *loop) watcherStopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("watcher stopped: %w", err)
}

// nextDue is the earliest of the deadlines, when the loop has work
// without an event: the periodic rescan (sched.q.due), the settled
// scopes (scope.settle), the retry of reading the configuration
// (conf.retry), the publish of what changed (rec.publishAt, zero when
// nothing waits), the end of a fold (fold.go) and the removed apps
// (appupdate.go).
func (l *loop) nextDue() time.Time {
	next := time.Time{}
	for _, t := range []time.Time{l.sched.q.due, l.rk.nextSettle(), l.conf.retry, l.rec.publishAt, l.rec.folds.due(l.cfg.Settle, l.cfg.MaxHold), l.gone.next(), l.writes.due()} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// due does the work whose deadline has come at now.
func (l *loop) due(ctx context.Context, now time.Time) {
	if !l.rec.publishAt.IsZero() && !now.Before(l.rec.publishAt) {
		l.rec.publishAt = time.Time{} // endRound publishes
	}
	if next := l.rk.nextSettle(); !next.IsZero() && !now.Before(next) {
		l.rk.settled(ctx)
	}
	if !l.sched.q.due.IsZero() && !now.Before(l.sched.q.due) {
		l.sched.rescanDue(ctx)
	}
	l.cat.appsGone(now)
	l.writesDue(ctx, now)
	if !l.conf.retry.IsZero() && !now.Before(l.conf.retry) && l.fatal == nil {
		l.conf.retry = time.Time{}
		l.fatal = l.configChanged()
	}
}

// endRound ends one round of the loop: the journal's entries written,
// what changed published (at most every PublishEvery) and the status
// line brought up to date.
func (l *loop) endRound(status *string) {
	if l.writers != nil && l.wa.linksChanged {
		l.wa.trackLinks()
	}
	l.rec.foldRound(time.Now())
	l.rep.flush()
	l.rec.publishSoon()
	if st := l.d.snap.Load().statusLine(); st != *status {
		l.d.notify("STATUS=" + st)
		*status = st
	}
}

// batch handles one batch of the watcher.
func (l *loop) batch(ctx context.Context, b watch.Batch) {
	l.batches++
	l.rec.changed = true
	if b.Rescan {
		l.rec.folds.lastChange = time.Now() // changes were lost: the install changed
		l.d.metrics.eventsLost.Inc()
		l.log.Warn("rescanning everything", zap.String("reason", b.Reason))
		l.sched.requestScan(ctx, b.Reason, nil, false)
	} else {
		at := b.First
		if at.IsZero() {
			at = time.Now()
		}
		l.swaps.noteEntered(b.Entered, at)
		l.apply(ctx, b.Paths)
		l.checkSwaps(b.Entered)
	}
	if l.d.onBatch != nil {
		l.d.onBatch(b.Paths)
	}
}

// rescanRequested handles a reload or rescan (systemctl reload):
// RELOADING=1 with the time now, READY=1 once the rescan is merged, when
// done is closed.
func (l *loop) rescanRequested(ctx context.Context, cfg *Config, done chan struct{}) {
	l.d.notify("RELOADING=1\n" + sddaemon.SdNotifyMonotonicUsec() + "\nSTATUS=full rescan")
	if cfg != nil {
		l.reconfigure(*cfg)
	}
	l.sched.requestScan(ctx, "requested", done, true)
}

// reconfigure applies what can change without a restart.
func (l *loop) reconfigure(next Config) {
	fixed := []struct {
		name      string
		old, next any
	}{
		{"root", l.cfg.Root, next.Root}, {"apps paths", l.cfg.AppsPaths, next.AppsPaths},
		{"data directory", l.cfg.DataDir, next.DataDir}, {"state directory", l.cfg.StateDir, next.StateDir},
		{"who data", l.cfg.WhoData, next.WhoData},
	}
	for _, f := range fixed {
		if fmt.Sprint(f.old) != fmt.Sprint(f.next) {
			l.log.Warn("this setting changes only with a restart", zap.String("setting", f.name),
				zap.Any("running", f.old), zap.Any("configured", f.next))
		}
	}
	l.cfg.Trust, l.cfg.CRL = next.Trust, next.CRL
	if next.RescanInterval > 0 {
		l.cfg.RescanInterval = next.RescanInterval
	}
	l.cfg.Exclude = next.Exclude
	l.cfg.Workers = next.Workers
	in := *l.in // an Install is never changed once shared
	in.Exclude = next.Exclude
	in.Checker.Workers = next.Workers
	l.setInstall(&in)
	// The unsigned setting, and the coverage of the new exclusions (the
	// rescan that follows checks them).
	l.cfg.Unsigned = next.Unsigned
	if !l.uc.reloadBaseline() && l.uc.base != nil {
		l.uc.refreshCoverage()
	}
	if l.w != nil {
		l.wa.watchTrust()
		// Directories no longer excluded get their watches (Resync
		// walks every tree with the new rule).
		l.wa.resync()
	}
}

// checkPinned compares the install's root.crt with the pinned trust
// anchors (when they are pinned outside the install) and alerts when that
// changes: whoever can write the install can also write its root.crt.
func (l *loop) checkPinned() {
	inTree := l.in.Root + "/" + verify.InTreeAnchors
	if l.cfg.Trust == inTree {
		return
	}
	if _, err := os.Lstat(inTree); err != nil && l.stage.updater.exps != nil {
		return // removed by the updater's deleteOldFiles; the staged release brings it back
	}
	differs, why := l.trust.DiffersFrom(inTree)
	if !differs {
		why = ""
	}
	was := l.meta.TrustDiffers
	if was == why {
		return
	}
	l.meta.TrustDiffers = why
	l.rec.modified()
	switch {
	case why != "" && was == "":
		l.log.Error("TRUST_ANCHOR core "+verify.InTreeAnchors+": differs from the pinned one ("+finding.EscapeControl(l.cfg.Trust)+"): "+finding.EscapeControl(why), zap.String("message_id", kind.IDTrustDiffer),
			zap.String("integrity_scope", "core"), zap.String("integrity_path", verify.InTreeAnchors),
			zap.String("pinned", l.cfg.Trust), zap.String("integrity_detail", why))
	case why == "" && was != "":
		l.log.Info("resolved TRUST_ANCHOR core "+verify.InTreeAnchors+": matches the pinned one ("+finding.EscapeControl(l.cfg.Trust)+") again", zap.String("message_id", kind.IDResolved),
			zap.String("integrity_scope", "core"), zap.String("integrity_path", verify.InTreeAnchors), zap.String("pinned", l.cfg.Trust))
	}
}
