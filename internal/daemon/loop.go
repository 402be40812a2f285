package daemon

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"

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
	w     *watch.Watcher
	// writers says who made a change (nil: who-data off or refused);
	// it tracks the files with several names (linksChanged: to do
	// again), whose change through another name it reports (kicks).
	writers      *watch.Writers
	linksChanged bool

	scopes map[string]*scope
	// findings: scope -> path ("" for the scope) -> finding. The inner
	// maps are shared with the last snapshot while shared[scope] is set;
	// own() copies one before it changes.
	findings map[string]map[string]*finding.Finding
	shared   map[string]bool
	meta     state.State // scan metadata (its Findings stay nil)

	batches   uint64 // batches handled
	changed   bool   // something the snapshot shows changed since publish
	version   uint64 // increases when what the state file records changes
	published time.Time
	extraTree map[string]bool // watched trees added for symlinked apps

	flood      map[floodKey][]Transition // journal entries this round, by directory
	bigRunning map[bigKey]bool           // big files being hashed off the loop
	bigAgain   map[bigKey]bool           // ... and changed again meanwhile
	bigStale   map[bigKey]bool           // ... and looked at again by a recheck meanwhile
	bigSem     chan struct{}
	bigDone    chan bigResult

	scan     *scanJob // the full scan running, or nil
	scanCost int64    // what the last full scan hashed (for the pace of passes)
	next     *scanJob // the one to run after it, or nil
	scanDone chan *scanResult
	scanStop context.CancelFunc
	nextScan time.Time           // when the periodic rescan is due
	fatal    error               // ends run (ErrInstallChanged)
	conf     confRead            // how reading Nextcloud's configuration goes
	swaps    map[string]swapSeen // names new files took lately (swap.go)

	// The unsigned coverage (unsigned.go): the baseline (nil: not
	// checked), the coverage, what it holds now (nil before the first
	// full scan), and the pseudo-scope its findings are kept under.
	ubase  *verify.Baseline
	ucov   *verify.Coverage
	ufiles verify.UnsignedFiles
	uscope *scope
}

type scope struct {
	sc  *verify.Scope
	exp *verify.Expected  // nil when the manifest is not trusted
	sum [sha256.Size]byte // of the manifest exp comes from
	// next is a new, validly signed manifest seen while the scope is
	// being updated (nil when none): until the scope is quiet, a changed
	// file is a finding only if it matches neither manifest.
	next      *verify.Expected
	nextSum   [sha256.Size]byte
	settle    time.Time // non-zero while the scope is being updated
	holdSince time.Time // when the update started
	// real is where a symlinked app directory resolves to ("" when Dir is
	// not a symlink): events arrive with that path.
	real string
	// links are the symlinks of the scope: their targets can change
	// without an event on them, so they are rechecked after every batch.
	links map[string]bool
	// dirs counts, for each directory key, the findings below it: a
	// recheck of a file key then only looks at that key.
	dirs map[string]int
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
	return &loop{
		d: d, log: d.log, cfg: cfg, in: in, trust: t,
		scopes:     map[string]*scope{},
		findings:   map[string]map[string]*finding.Finding{},
		shared:     map[string]bool{},
		extraTree:  map[string]bool{},
		scanDone:   make(chan *scanResult, 1),
		meta:       state.State{Signed: map[string]string{}},
		bigRunning: map[bigKey]bool{},
		bigAgain:   map[bigKey]bool{},
		bigStale:   map[bigKey]bool{},
		bigSem:     make(chan struct{}, bigWorkers),
		bigDone:    make(chan bigResult),
	}
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
	t := time.NewTicker(d.cfg.Heartbeat)
	defer t.Stop()
	heartbeat := t.C
	d.beat.Store(time.Now().UnixNano())
	go d.watchdog(ctx)
	status := d.snap.Load().statusLine()
	rescan := time.NewTimer(time.Until(l.nextScan))
	defer rescan.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	publish := time.NewTimer(time.Hour)
	publish.Stop()
	confRetry := time.NewTimer(time.Hour)
	confRetry.Stop()
	var kicks <-chan struct{}
	if l.writers != nil {
		kicks = l.writers.Kicks()
		l.trackLinks()
	}
	for {
		d.beat.Store(time.Now().UnixNano())
		select {
		case <-ctx.Done():
			return nil
		case <-heartbeat:
		case err := <-werr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watcher stopped: %w", err)
		case b := <-l.w.Batches():
			l.batch(ctx, b)
		case <-settle.C:
			l.settled(ctx)
		case <-rescan.C:
			l.w.Resync() // repairs watches, and retries those a limit refused
			_, degraded := l.w.Stats()
			switch {
			case l.scan != nil:
				l.nextScan = time.Time{} // its merge sets the next
			case l.reverifying() && degraded == "":
				l.nextScan = time.Time{}
				l.startScan(ctx, l.newPass())
			default:
				l.requestScan(ctx, "periodic", nil, false)
			}
		case req := <-d.reqs:
			l.request(ctx, req)
		case res := <-l.scanDone:
			l.scanFinished(ctx, res)
		case c := <-mounts:
			l.mountChanged(ctx, c, false)
		case r := <-l.bigDone:
			l.bigFinished(ctx, r)
		case <-publish.C:
		case <-confRetry.C:
			if l.fatal == nil {
				l.fatal = l.configChanged()
			}
		case <-kicks:
			// A file with another name changed, maybe through a name
			// outside the install: no inotify event, no batch.
			l.recheckLinks(ctx)
		}
		if l.writers != nil && l.linksChanged {
			l.trackLinks()
		}
		l.flushFlood()
		if l.fatal != nil {
			return l.fatal
		}
		l.publishSoon(publish)
		if st := d.snap.Load().statusLine(); st != status {
			d.notify("STATUS=" + st)
			status = st
		}
		if l.nextScan.IsZero() {
			rescan.Stop() // a scan is on its way; its merge sets the next
		} else {
			rescan.Reset(max(time.Until(l.nextScan), 0))
		}
		if next := l.nextSettle(); !next.IsZero() {
			settle.Reset(max(time.Until(next), 0))
		}
		if !l.conf.retry.IsZero() {
			confRetry.Reset(max(time.Until(l.conf.retry), 0))
		}
	}
}

// batch handles one batch of the watcher.
func (l *loop) batch(ctx context.Context, b watch.Batch) {
	l.batches++
	l.changed = true
	if b.Rescan {
		l.d.metrics.eventsLost.Inc()
		l.log.Warn("rescanning everything", zap.String("reason", b.Reason))
		l.requestScan(ctx, b.Reason, nil, false)
	} else {
		l.noteEntered(b.Entered, time.Now())
		l.apply(ctx, b.Paths)
		l.checkSwaps(b.Entered)
	}
	if l.d.onBatch != nil {
		l.d.onBatch(b.Paths)
	}
}

// request handles a reload or rescan (systemctl reload): RELOADING=1 with
// the time now, READY=1 once the rescan is merged.
func (l *loop) request(ctx context.Context, req request) {
	if req.answer != nil {
		req.answer.scopes, req.answer.err = l.acceptReleases(ctx, req.accept, req.by)
		close(req.done)
		return
	}
	l.d.notify("RELOADING=1\n" + sddaemon.SdNotifyMonotonicUsec() + "\nSTATUS=full rescan")
	if req.cfg != nil {
		l.reconfigure(*req.cfg)
	}
	l.requestScan(ctx, "requested", req.done, true)
}

// publishSoon publishes what changed, at most every PublishEvery: the
// timer t publishes the rest.
func (l *loop) publishSoon(t *time.Timer) {
	if !l.changed {
		return
	}
	if wait := l.cfg.PublishEvery - time.Since(l.published); wait > 0 {
		t.Reset(wait)
		return
	}
	l.publish()
}

// put records a finding without alerting (the previous state).
func (l *loop) put(f finding.Finding) {
	l.own(f.Scope)[f.Path] = &f
	if s := l.scopes[f.Scope]; s != nil {
		s.count(f.Path, 1)
	}
	l.modified()
}

// own returns the findings of scope, ready to be changed.
func (l *loop) own(scope string) map[string]*finding.Finding {
	m := l.findings[scope]
	if m == nil {
		m = map[string]*finding.Finding{}
		l.findings[scope] = m
		l.shared[scope] = false
		return m
	}
	if l.shared[scope] {
		m = maps.Clone(m)
		l.findings[scope], l.shared[scope] = m, false
	}
	return m
}

// count adds n to the finding counts of the directories above path.
func (s *scope) count(path string, n int) {
	if s.dirs == nil {
		s.dirs = map[string]int{}
	}
	for i := strings.LastIndexByte(path, '/'); i > 0; i = strings.LastIndexByte(path[:i], '/') {
		if s.dirs[path[:i]] += n; s.dirs[path[:i]] <= 0 {
			delete(s.dirs, path[:i])
		}
	}
}

// recount rebuilds the directory counts of s from its findings.
func (l *loop) recount(s *scope) {
	s.dirs = nil
	for p := range l.findings[s.sc.Name] {
		s.count(p, 1)
	}
}

// part returns the findings of scope s at key and below.
func (l *loop) part(s *scope, key string) map[string]*finding.Finding {
	cur := l.findings[s.sc.Name]
	out := map[string]*finding.Finding{}
	if key != "" && s.dirs[key] == 0 {
		if f, ok := cur[key]; ok {
			out[key] = f
		}
		return out
	}
	for p, f := range cur {
		if under(p, key) {
			out[p] = f
		}
	}
	return out
}

// replace sets the findings of s at key and below (all of the scope when
// key is "") and logs every transition.
func (l *loop) replace(s *scope, key string, fresh []finding.Finding) {
	fresh = l.withRelease(s, key, fresh)
	ts := diff(l.part(s, key), fresh)
	if len(ts) == 0 {
		return
	}
	m := l.own(s.sc.Name)
	for _, t := range ts {
		switch {
		case t.New == nil:
			delete(m, t.Old.Path)
			s.count(t.Old.Path, -1)
		case t.Old == nil:
			f := *t.New
			if s.exp != nil {
				f.Path = s.exp.Intern(f.Path)
			}
			m[f.Path] = &f
			s.count(f.Path, 1)
		default:
			f := *t.New
			f.Path = t.Old.Path
			m[f.Path] = &f
		}
		l.report(t)
	}
	l.modified()
}

// drop forgets a scope that no longer exists (an app that was removed).
func (l *loop) drop(name string) {
	if n := len(l.findings[name]); n > 0 {
		l.log.Info(fmt.Sprintf("app %s is no longer checked (removed, or in no apps root now); its %d findings are resolved", journal.Token(name), n),
			zap.String("integrity_scope", name), zap.Int("findings", n))
	}
	delete(l.findings, name)
	delete(l.shared, name)
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
		findings:  make(map[string]map[string]*finding.Finding, len(l.findings)),
		meta:      l.meta,
		Scopes:    len(l.scopes),
		Batches:   l.batches,
		Scanning:  (l.scan != nil && !l.scan.paced) || l.next != nil || len(l.bigRunning) > 0,
		Published: time.Now(),
	}
	for name, m := range l.findings {
		s.findings[name] = m
		l.shared[name] = true
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
	l.changed, l.published = false, s.Published
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
		l.w.Resync()
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
		l.log.Error("TRUST_ANCHOR core "+verify.InTreeAnchors+": differs from the pinned one ("+verify.EscapeControl(l.cfg.Trust)+"): "+verify.EscapeControl(why), zap.String("message_id", kind.IDTrustDiffer),
			zap.String("integrity_scope", "core"), zap.String("integrity_path", verify.InTreeAnchors),
			zap.String("pinned", l.cfg.Trust), zap.String("integrity_detail", why))
	case why == "" && was != "":
		l.log.Info("resolved TRUST_ANCHOR core "+verify.InTreeAnchors+": matches the pinned one ("+verify.EscapeControl(l.cfg.Trust)+") again", zap.String("message_id", kind.IDResolved),
			zap.String("integrity_scope", "core"), zap.String("integrity_path", verify.InTreeAnchors), zap.String("pinned", l.cfg.Trust))
	}
}
