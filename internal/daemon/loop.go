package daemon

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/state"
	"github.com/integrityd/integrityd/internal/verify"
	"github.com/integrityd/integrityd/internal/watch"
)

// loop is the daemon's state. Only the goroutine running Daemon.Run (and
// New, before it) touches it; the rest of the process sees snapshots.
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
	// it tracks the files with several names (linksChanged: to do
	// again), whose change through another name it reports (kicks).
	writers      *watch.Writers
	linksChanged bool

	scopes map[string]*scope
	// findings: what is wrong, by scope and path (findings.go).
	findings findingSet
	meta     state.State // scan metadata (its Findings stay nil)

	batches   uint64 // batches handled
	changed   bool   // something the snapshot shows changed since publish
	version   uint64 // increases when what the state file records changes
	published time.Time
	publishAt time.Time       // when what changed since is published (zero: nothing waits)
	extraTree map[string]bool // watched trees added for symlinked apps

	big offLoop // big files being hashed off the loop (bigfiles.go)

	scans      scanQueue           // the full scans (scanqueue.go)
	settleDone chan settleResult   // settle.go
	trees      map[string]treeID   // what stands at the followed trees' paths (roots.go)
	stage      staged              // the updater's stage (stage.go)
	expect     staged              // the release expect-release staged (stage.go)
	writes     writes              // new findings of files being written during an update (writing.go)
	resynced   <-chan struct{}     // closed once the watcher's last re-sync is done
	fatal      error               // ends run (ErrInstallChanged)
	conf       confWatch           // how reading Nextcloud's configuration goes
	swaps      map[string]swapSeen // names new files took lately (swap.go)
	folds      folds               // alerts held back during an update by hand (fold.go)
	gone       map[string]goneApp  // signed apps removed moments ago (appupdate.go)

	// The unsigned coverage (unsigned.go): the baseline (nil: not
	// checked), the coverage, what it holds now (nil before the first
	// full scan), and the pseudo-scope its findings are kept under.
	ubase  *baseline.Baseline
	ucov   *baseline.Coverage
	ufiles baseline.Files
	uscope *scope
}

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
		conf:       confWatch{dir: filepath.Join(in.Root, "config")},
		stage:      staged{dir: in.UpdaterStage()},
		expect:     staged{dir: expectDir(cfg.StateDir), expected: true},
		rep:        reporter{d: d, whoData: cfg.WhoData},
		scopes:     map[string]*scope{},
		findings:   newFindingSet(),
		extraTree:  map[string]bool{},
		scans:      newScanQueue(),
		settleDone: make(chan settleResult),
		meta:       state.State{Signed: map[string]string{}},
		big:        newOffLoop(),
	}
	l.rep.pathOf = l.findingPath
	l.trustSeen, _ = trustFilesOf(cfg)
	return l
}

// findingPath is the absolute path of f's file (false: no such scope).
func (l *loop) findingPath(f *finding.Finding) (string, bool) {
	if s := l.scopes[f.Scope]; s != nil {
		dir := s.sc.Dir
		if s.real != "" {
			dir = s.real
		}
		return filepath.Join(dir, filepath.FromSlash(f.Path)), true
	}
	if f.Scope == baseline.ScopeName && l.ucov != nil {
		return filepath.Join(l.in.Root, filepath.FromSlash(f.Path)), true // the unsigned coverage's keys are the root's
	}
	return "", false
}

// trackLinks has the writers track the files of every scope that can
// change without an event under the install (symlinks' targets, files with
// several names).
func (l *loop) trackLinks() {
	l.linksChanged = false
	var paths []string
	for _, s := range l.scopes {
		dir := s.sc.Dir
		if s.real != "" {
			dir = s.real
		}
		for k := range s.links {
			paths = append(paths, filepath.Join(dir, filepath.FromSlash(k)))
		}
	}
	l.writers.Track(paths)
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
	timer := time.NewTimer(time.Until(l.scans.due))
	defer timer.Stop()
	kicks := l.linkKicks()
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
		case res := <-l.scans.done:
			l.scanFinished(ctx, res)
		case c := <-mounts:
			l.mountChanged(ctx, c, false)
		case r := <-l.big.done:
			l.bigFinished(ctx, r)
		case r := <-l.settleDone:
			l.settleFinished(ctx, r)
		case <-kicks:
			// A file with another name changed, maybe through a name
			// outside the install: no inotify event, no batch.
			l.recheckLinks(ctx)
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

// linkKicks is the channel of changes to files with several names (nil
// without who-data), whose files it tracks from now on.
func (l *loop) linkKicks() <-chan struct{} {
	if l.writers == nil {
		return nil
	}
	l.trackLinks()
	return l.writers.Kicks()
}

// watcherStopped is what ends run when the watcher failed with err.
func (l *loop) watcherStopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("watcher stopped: %w", err)
}

// deadlines are when the loop has work without an event: the periodic
// rescan (scans.due), the settled scopes (scope.settle), the retry of
// reading the configuration (conf.retry), the publish of what changed
// (publishAt, zero when nothing waits) and the end of a fold (fold.go).
func (l *loop) nextDue() time.Time {
	next := time.Time{}
	for _, t := range []time.Time{l.scans.due, l.nextSettle(), l.conf.retry, l.publishAt, l.folds.due(l.cfg.Settle, l.cfg.MaxHold), l.goneNext(), l.writes.due()} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// due does the work whose deadline has come at now.
func (l *loop) due(ctx context.Context, now time.Time) {
	if !l.publishAt.IsZero() && !now.Before(l.publishAt) {
		l.publishAt = time.Time{} // endRound publishes
	}
	if next := l.nextSettle(); !next.IsZero() && !now.Before(next) {
		l.settled(ctx)
	}
	if !l.scans.due.IsZero() && !now.Before(l.scans.due) {
		l.rescanDue(ctx)
	}
	l.goneDue(now)
	l.writesDue(ctx, now)
	if !l.conf.retry.IsZero() && !now.Before(l.conf.retry) && l.fatal == nil {
		l.conf.retry = time.Time{}
		l.fatal = l.configChanged()
	}
}

// rescanDue starts the periodic full scan, or the next re-verification
// pass.
func (l *loop) rescanDue(ctx context.Context) {
	if !l.treesPresent() {
		// Nothing at the install's path: a scan would find every file
		// missing. The tree's return is an event (roots.go).
		l.scans.due = time.Now().Add(l.cfg.RescanInterval)
		return
	}
	_, degraded := l.w.Stats()
	l.resync() // repairs watches, and retries those a limit refused
	switch {
	case l.scans.cur != nil:
		l.scans.due = time.Time{} // its merge sets the next
	case l.reverifying() && degraded == "":
		l.scans.due = time.Time{}
		l.startScan(ctx, l.newPass())
	default:
		l.requestScan(ctx, "periodic", nil, false)
	}
}

// resync has the watcher walk its trees again on its own goroutine (the
// walk costs about half of watching the tree from scratch): the next
// full scan waits for it, so that a directory it watches is listed only
// after its watch is there.
func (l *loop) resync() { l.resynced = l.w.ResyncAsync() }

// endRound ends one round of the loop: the journal's entries written,
// what changed published (at most every PublishEvery) and the status
// line brought up to date.
func (l *loop) endRound(status *string) {
	if l.writers != nil && l.linksChanged {
		l.trackLinks()
	}
	l.foldRound(time.Now())
	l.rep.flush()
	l.publishSoon()
	if st := l.d.snap.Load().statusLine(); st != *status {
		l.d.notify("STATUS=" + st)
		*status = st
	}
}

// batch handles one batch of the watcher.
func (l *loop) batch(ctx context.Context, b watch.Batch) {
	l.batches++
	l.changed = true
	if b.Rescan {
		l.folds.lastChange = time.Now() // changes were lost: the install changed
		l.d.metrics.eventsLost.Inc()
		l.log.Warn("rescanning everything", zap.String("reason", b.Reason))
		l.requestScan(ctx, b.Reason, nil, false)
	} else {
		at := b.First
		if at.IsZero() {
			at = time.Now()
		}
		l.noteEntered(b.Entered, at)
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
	l.requestScan(ctx, "requested", done, true)
}

// publishSoon publishes what changed, at most every PublishEvery: the
// rest at publishAt.
func (l *loop) publishSoon() {
	if !l.changed {
		return
	}
	if next := l.published.Add(l.cfg.PublishEvery); time.Now().Before(next) {
		l.publishAt = next
		return
	}
	l.publish()
}

// part returns the findings of scope s at key and below.
func (l *loop) part(s *scope, key string) map[string]*finding.Finding {
	return l.findings.part(s.sc.Name, key)
}

// replace sets the findings of s at key and below (all of the scope when
// key is "") and logs every transition.
func (l *loop) replace(s *scope, key string, fresh []finding.Finding) {
	l.replaceAs(s, key, fresh, byScan)
}

// replaceHow says where the findings replace takes come from, for the
// fold (fold.go): a full scan's are logged as they are; a live recheck's
// and a held scope's whole check's new alerts may wait, and only under
// the same manifest is a waiting finding's heal suspicious.
type replaceHow int

const (
	byScan    replaceHow = iota // a full scan, the first one
	byEvent                     // the recheck of an event
	byAdopted                   // a held scope's whole check, with a new manifest
)

// replaceAs is replace for findings that come as how says.
func (l *loop) replaceAs(s *scope, key string, fresh []finding.Finding, how replaceHow) {
	fresh = l.withRelease(s, key, fresh)
	ts := diff(l.part(s, key), fresh)
	if len(ts) == 0 {
		return
	}
	var intern func(string) string
	if s.exp != nil {
		intern = s.exp.Intern
	}
	l.findings.apply(s.sc.Name, ts, intern)
	open, now := how != byScan && l.folding(s), time.Now()
	same := open && how == byEvent
	prev := s.exp
	if prev == nil {
		prev = s.last
	}
	for _, t := range ts {
		for _, t := range l.folds.take(s.sc.Name, t, open, same, prev, now) {
			l.rep.queue(t)
		}
	}
	l.modified()
}

// drop forgets a scope that no longer exists (an app that was removed).
func (l *loop) drop(name string) {
	if _, back := l.gone[name]; !back {
		delete(l.folds.by, name) // else kept for the app copied in again
	}
	if n := l.findings.drop(name); n > 0 {
		l.log.Info(fmt.Sprintf("app %s is no longer checked (removed, or in no apps root now); its %d findings are resolved", journal.Token(name), n),
			zap.String("integrity_scope", name), zap.Int("findings", n))
	}
	l.modified()
}

// modified notes a change of what the state file records (findings, scan
// metadata): the saver writes it. Other changes (a batch handled, a scope
// held) are only published.
func (l *loop) modified() {
	l.version++
	l.changed = true
}

// publish makes the current state the snapshot that readers see.
func (l *loop) publish() {
	s := &Snapshot{
		findings:  l.findings.share(),
		meta:      l.meta,
		Scopes:    len(l.scopes),
		Batches:   l.batches,
		Scanning:  l.scans.running() || l.big.busy(),
		Folding:   len(l.folds.by) + len(l.gone) + len(l.writes.first) + len(l.writes.manifests),
		Published: time.Now(),
	}
	for _, sc := range l.scopes {
		s.Files += sc.files()
		if !sc.settle.IsZero() {
			s.Settling++
		}
	}
	s.meta.Files, s.meta.Scopes = s.Files, s.Scopes
	s.meta.UnsignedFiles = len(l.ufiles)
	s.meta.Signed = make(map[string]string, len(l.meta.Signed))
	for name, dir := range l.meta.Signed {
		s.meta.Signed[name] = dir
	}
	s.meta.Releases = maps.Clone(l.meta.Releases)
	if l.w != nil {
		s.meta.WatchedDirs, s.meta.Degraded = l.w.Stats()
	}
	if prev := l.d.snap.Load(); prev != nil {
		s.Seq = prev.Seq + 1
		if prev.meta.WatchedDirs != s.meta.WatchedDirs || prev.meta.Degraded != s.meta.Degraded {
			l.version++
		}
	}
	s.Version = l.version
	l.d.snap.Store(s)
	l.changed, l.published, l.publishAt = false, s.Published, time.Time{}
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
	if !l.reloadBaseline() && l.ubase != nil {
		l.refreshCoverage()
	}
	if l.w != nil {
		l.watchTrust()
		// Directories no longer excluded get their watches (Resync
		// walks every tree with the new rule).
		l.resync()
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
	if _, err := os.Lstat(inTree); err != nil && l.stage.exps != nil {
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
	l.modified()
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
