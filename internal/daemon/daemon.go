// Package daemon is integrityd's long-running job: a full scan of every
// scope, then incremental rechecks of what the watcher reports, with one
// alert per finding that appears and one entry per finding that heals.
//
// One goroutine, the loop (Run), owns every piece of mutable state: scopes,
// verified manifests, findings, trust, settings and the view of the
// install. Requests (rescan, reload) reach it on a channel. After each
// change it publishes an immutable Snapshot; metrics, Findings, the status
// line and state saving read only snapshots, so nothing holds a lock while
// the loop works or logs.
//
// The order at start guarantees that no change is missed: watches first,
// then the full scan, then every batch of events that arrived meanwhile.
// Later full scans (SIGHUP, periodic, lost events, new trust anchors) hash
// in their own goroutine beside the incremental path; the loop merges their
// result, and what it rechecked itself while the scan ran wins. A scope
// being updated (its manifest or version.php changes) is held: its events
// push back a settle timer, and once it has been quiet for Settle it is
// reloaded and checked as a whole, so an update does not flood the journal
// and nothing is lost.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// Config is what the daemon checks and how.
type Config struct {
	Root      string
	AppsPaths []string
	DataDir   string
	// FollowConfig is set when AppsPaths or DataDir come from Nextcloud's
	// configuration (config/config.php, config/*.config.php) rather than
	// from integrityd's: the daemon then watches config/ and ends Run with
	// ErrInstallChanged when they change. PinnedAppsPaths and PinnedDataDir
	// are what integrityd's configuration set (empty: Nextcloud's).
	FollowConfig    bool
	PinnedAppsPaths []string
	PinnedDataDir   string
	Exclude         []string // absolute paths not checked (weakens the check)
	Trust           string   // PEM trust anchors
	CRL             string   // "" for none
	StateDir        string
	// Workers is the number of files hashed at once (0: four per CPU).
	Workers int
	// RescanInterval is the interval of full rescans when re-verification
	// is off.
	RescanInterval time.Duration
	// ReverifyPeriod is the period within which the background
	// re-verification hashes every file again (0: the default, 10 min;
	// negative: off, full rescans every RescanInterval instead).
	ReverifyPeriod time.Duration
	// DegradedRescan is the full-rescan interval while some directories
	// cannot be watched.
	DegradedRescan time.Duration
	// Settle is how long a scope being updated must be quiet before it
	// is checked again. A batch with at least ChurnPaths changed paths of
	// one scope, and a quarter of its files or more, is folded into one
	// recheck of the whole scope.
	Settle     time.Duration
	ChurnPaths int
	// MaxHold bounds how long a churning scope waits.
	MaxHold time.Duration
	// Watchdog is systemd's WatchdogSec (0: no watchdog). Notifications go
	// to $NOTIFY_SOCKET when it is set.
	Watchdog time.Duration
	// Heartbeat is how often the loop beats, and the heartbeat file of
	// the state directory is touched while it does (state.Beat: status
	// judges the daemon's health by it); 0: 2 s, or Watchdog/4 when that
	// is shorter.
	Heartbeat time.Duration
	// SaveInterval is how often the state is saved when it changed, and
	// how soon a failed save is retried.
	SaveInterval time.Duration
	// PublishEvery bounds how often a new Snapshot is built while changes
	// keep coming (each one copies the findings of the scopes changed).
	PublishEvery time.Duration
	// Watch tunes the watcher's batching.
	Watch watch.Options
	// WhoData asks who makes each change (watch.Writers: fanotify on the
	// root's filesystem, which needs CAP_SYS_ADMIN and
	// CAP_DAC_READ_SEARCH). An alert then carries integrity_pid,
	// integrity_comm, integrity_exe, integrity_uid and integrity_unit,
	// and its MESSAGE ends with journal.WrittenBy, or
	// journal.WriterUnknown when the writer is not known (the kernel
	// refused fanotify, which is logged once at start, "writers unknown:
	// fanotify: ..."; the change predates the daemon; events were
	// dropped). It is an addition to inotify, which finds the changes
	// either way. Off, alerts are as before. It changes only with a
	// restart.
	WhoData bool
	// Unsigned is the unsigned setting: "auto" (or ""), "on" or "off"
	// (see baseline.Open).
	Unsigned string
}

// Defaults fills the zero fields of c.
func (c *Config) Defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.RescanInterval, time.Hour)
	def(&c.ReverifyPeriod, 10*time.Minute)
	def(&c.DegradedRescan, 5*time.Minute)
	def(&c.Settle, 3*time.Second)
	def(&c.MaxHold, 20*c.Settle)
	def(&c.SaveInterval, time.Second)
	def(&c.PublishEvery, 50*time.Millisecond)
	if c.Heartbeat == 0 {
		c.Heartbeat = 2 * time.Second
		if c.Watchdog > 0 {
			c.Heartbeat = min(c.Heartbeat, c.Watchdog/4)
		}
	}
	if c.ChurnPaths == 0 {
		c.ChurnPaths = 2048
	}
}

// Daemon runs the checks. Use New, then Run. Its methods other than Run
// are safe to call from any goroutine.
type Daemon struct {
	cfg     Config
	log     *zap.Logger
	metrics *Metrics
	snap    atomic.Pointer[Snapshot]
	reqs    chan request
	// install is the loop's current view of the install, for the
	// watcher's goroutine (which asks what to skip); the loop replaces
	// it, never changes it.
	install atomic.Pointer[verify.Install]
	// scopeDirs are the directories of the loop's app scopes, for the
	// watcher's goroutine too (skipDir); the loop replaces the set, never
	// changes it (watchScopes).
	scopeDirs atomic.Pointer[dirSet]
	// coverage is the loop's unsigned coverage (nil when unsigned code is
	// not checked), for skipDir too; replaced, never changed.
	coverage atomic.Pointer[baseline.Coverage]
	// progress counts what the daemon itself hashed: with the loop's
	// beat, the watchdog's sign of life.
	progress verify.Progress
	beat     atomic.Int64 // when the loop last went round (unix ns)
	lastPing atomic.Int64 // when WATCHDOG=1 was last sent (unix ns)

	loop  *loop // owned by Run's goroutine
	saver *saver
	// onBatch, when set (by tests, before Run), is called by the loop
	// after each batch with its paths.
	onBatch func(paths []string)
	// onMount, when set (by tests, before Run), is called by the loop
	// once it has handled a change of the mount table.
	onMount func(c watch.MountChange)
}

// New prepares a daemon; it loads the previous state (a corrupt one is
// logged and ignored).
func New(cfg Config, log *zap.Logger) (*Daemon, error) {
	cfg.Defaults()
	d := &Daemon{cfg: cfg, log: log, reqs: make(chan request)}
	d.saver = newSaver(d)
	in := verify.NewInstall(cfg.Root, cfg.AppsPaths, cfg.DataDir)
	in.Exclude = cfg.Exclude
	in.Checker = verify.Checker{Workers: cfg.Workers, Progress: &d.progress}
	t, err := verify.LoadTrust(cfg.Trust, cfg.CRL)
	if err != nil {
		return nil, err
	}
	d.install.Store(in)
	d.loop = newLoop(d, cfg, in, t)
	d.metrics = newMetrics(d)
	if cfg.StateDir != "" {
		state.CleanTemp(cfg.StateDir)
		prev, err := state.Load(cfg.StateDir)
		if err != nil {
			log.Warn("previous state unusable; starting from a full scan, findings will be alerted again", zap.Error(err))
		}
		if prev != nil {
			for _, f := range prev.Findings {
				d.loop.rec.findings.put(f)
			}
			if len(prev.Findings) > 0 {
				d.loop.rec.modified()
			}
			for name, dir := range prev.Signed {
				d.loop.meta.Signed[name] = dir
			}
			d.loop.meta.Releases = prev.Releases
			log.Info("previous state loaded", zap.Int("findings", len(prev.Findings)), zap.Time("updated", prev.Updated))
		}
	}
	if err := d.loop.uc.start(); err != nil {
		return nil, err
	}
	d.loop.rec.publish()
	return d, nil
}

// skipDir says which directories are not watched: those no scope checks.
// That is what the install excludes (verify.Install.Excluded), and, in an
// app directory of an apps root that is not a scope (neither signed nor
// shipped), everything but its top and appinfo/: a signature.json
// appearing there makes it a scope, which is then watched whole
// (watchScopes). Thousands of directories in an unsigned app cost two
// watches.
func (d *Daemon) skipDir(p string) bool {
	if c := d.coverage.Load(); c != nil && c.WatchDir(p) {
		return false // unsigned code checked against the baseline
	}
	in := d.install.Load()
	if in.Excluded(p) {
		return true
	}
	app, rest := appDir(in, p)
	return app != "" && rest != "" && rest != "appinfo" && !d.scopeDirs.Load().has(app)
}

// appDir returns the app directory p is in and p relative to it (""
// for the app directory itself), as verify.Install.Locate says (the
// deepest apps root holding p wins); app is "" when p is not in an app.
func appDir(in *verify.Install, p string) (app, rest string) {
	loc := in.Locate(p)
	return loc.App, loc.Rest
}

// dirSet is a set of directories, never changed once published.
type dirSet map[string]bool

// newDirSet returns the set of dirs and of where those that are symlinks
// resolve to.
func newDirSet(dirs []string) *dirSet {
	s := dirSet{}
	for _, dir := range dirs {
		s[dir] = true
		if r, err := filepath.EvalSymlinks(dir); err == nil && r != dir {
			s[r] = true
		}
	}
	return &s
}

func (s *dirSet) has(dir string) bool { return s != nil && (*s)[dir] }

// appScopeDirs returns the directories of the app scopes in scopes.
func appScopeDirs(scopes map[string]*verify.Scope) *dirSet {
	var dirs []string
	for name, sc := range scopes {
		if name != "core" {
			dirs = append(dirs, sc.Dir)
		}
	}
	return newDirSet(dirs)
}

// Snapshot is the latest published state.
func (d *Daemon) Snapshot() *Snapshot { return d.snap.Load() }

// Findings returns the current findings in report order.
func (d *Daemon) Findings() []finding.Finding { return d.snap.Load().Findings() }

// Run watches and checks until ctx is done. ready is called once the
// first full scan is done (for sd_notify). STOPPING=1 is sent on every
// way out but ErrInstallChanged, which is RELOADING=1 for systemd.
func (d *Daemon) Run(ctx context.Context, ready func()) (err error) {
	defer func() {
		if errors.Is(err, ErrInstallChanged) {
			// The caller starts a daemon on the new install: for systemd
			// that is a reload, which the next READY=1 ends.
			d.notify("RELOADING=1\n" + sddaemon.SdNotifyMonotonicUsec() + "\nSTATUS=Nextcloud's configuration changed; starting again")
			return
		}
		d.notify("STOPPING=1")
	}()
	l := d.loop
	w, err := watch.New(d.log.Named("watch"), d.skipDir, d.cfg.Watch)
	if err != nil {
		return err
	}
	w.SetGroup(func(dir string) string { // the app, by the rule of locate and skipDir
		app, _ := appDir(d.install.Load(), dir)
		return app
	})
	defer w.Close()
	l.w = w
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d.cfg.WhoData {
		// Before the watches and the first scan, like them: a change
		// made meanwhile has its writer.
		if wr := d.openWriters(wctx); wr != nil {
			defer wr.Close()
			l.writers, l.rep.writers = wr, wr
		}
	}
	if err := l.wa.addWatches(); err != nil {
		return err
	}
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()
	sctx, stopSaver := context.WithCancel(context.Background())
	saved := make(chan struct{})
	go func() { d.saver.run(sctx); close(saved) }()
	defer func() {
		// The last state: a running scan stops, what changed since the
		// last snapshot is published, the saver writes it.
		l.sched.q.cancel()
		l.rec.publish()
		stopSaver()
		<-saved
	}()

	mounts := l.wa.watchMounts(wctx)
	stop := d.pulse()
	res := runScan(ctx, l.sched.newJob("start"), l.trust)
	stop()
	if res.err != nil {
		return res.err
	}
	l.sched.merge(ctx, res)
	l.rep.flush()
	if l.cfg.StateDir != "" {
		// Before the state shows the first scan: status reads both.
		if err := state.StartHeartbeat(l.cfg.StateDir, d.cfg.Heartbeat); err != nil {
			l.log.Warn("no heartbeat: status will say the daemon is not alive", zap.Error(err))
		}
	}
	d.beat.Store(time.Now().UnixNano())
	d.saver.save() // the state shows the first scan once READY
	d.notify("READY=1\nSTATUS=" + d.snap.Load().statusLine())
	if ready != nil {
		ready()
	}
	return l.run(wctx, werr, mounts) // wctx: goroutines the loop starts end with Run
}

// openWriters starts watch.Writers on the root, or logs once why the
// writers will be unknown and returns nil.
func (d *Daemon) openWriters(ctx context.Context) *watch.Writers {
	wr, err := watch.OpenWriters(d.cfg.Root, 0)
	if err != nil {
		d.log.Warn(journal.WritersUnknownLine(err.Error()), zap.Error(err), zap.String("message_id", kind.IDWritersUnknown))
		return nil
	}
	d.log.Info("writers known: fanotify, "+wr.Mode(), zap.String("root", d.cfg.Root))
	go func() {
		if err := wr.Run(ctx); err != nil {
			d.log.Warn(journal.WritersUnknownLine("from now on: "+err.Error()), zap.Error(err), zap.String("message_id", kind.IDWritersUnknown))
		}
	}()
	return wr
}

// request is work for the loop, run on its goroutine (syncthing's
// pattern): fn has done closed once the request is handled, at once or
// later (a rescan: once merged).
type request struct {
	fn   func(ctx context.Context, l *loop, done chan struct{})
	done chan struct{}
}

// AcceptReleases takes the current release of each named scope as the
// one to compare with from now on: an admin's downgrade, whose
// VERSION_DOWNGRADE is then resolved. by says who asked, for the journal.
// It returns the scopes accepted; a scope without a VERSION_DOWNGRADE is
// an error.
func (d *Daemon) AcceptReleases(ctx context.Context, scopes []string, by string) ([]string, error) {
	var (
		accepted []string
		err      error
	)
	rerr := d.request(ctx, func(ctx context.Context, l *loop, done chan struct{}) {
		accepted, err = l.acceptReleases(ctx, scopes, by)
		close(done)
	})
	if rerr != nil {
		return nil, rerr
	}
	return accepted, err
}

// Rescan asks for a full rescan and waits for it (SIGHUP).
func (d *Daemon) Rescan(ctx context.Context) error {
	return d.request(ctx, func(ctx context.Context, l *loop, done chan struct{}) { l.rescanRequested(ctx, nil, done) })
}

// Reload applies a new configuration (what can change without a restart:
// trust anchors, CRL, exclusions, rescan interval) and rescans everything.
func (d *Daemon) Reload(ctx context.Context, cfg Config) error {
	return d.request(ctx, func(ctx context.Context, l *loop, done chan struct{}) { l.rescanRequested(ctx, &cfg, done) })
}

// request hands req to the loop and waits until it is handled.
func (d *Daemon) request(ctx context.Context, fn func(context.Context, *loop, chan struct{})) error {
	req := request{fn: fn, done: make(chan struct{})}
	select {
	case d.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// notify sends a state to systemd (nothing without $NOTIFY_SOCKET).
func (d *Daemon) notify(state string) {
	if strings.Contains(state, "WATCHDOG=1") {
		d.lastPing.Store(time.Now().UnixNano())
	}
	if _, err := sddaemon.SdNotify(false, state); err != nil {
		d.log.Debug("sd_notify failed", zap.Error(err))
	}
}

// watchdog goes round every Heartbeat/2: while the loop goes round (its
// beat is fresh) or the daemon hashes (a long scan), it touches the
// heartbeat file (every Heartbeat) and sends WATCHDOG=1 (every W/4 or
// so, with a watchdog); otherwise it stays silent, so that systemd
// restarts a wedged daemon and status says it is not alive.
func (d *Daemon) watchdog(ctx context.Context) {
	w, every := d.cfg.Watchdog, d.cfg.Heartbeat
	t := time.NewTicker(every / 2)
	defer t.Stop()
	last := d.progressMark()
	var beat time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := d.progressMark()
		alive := time.Since(time.Unix(0, d.beat.Load())) < 2*every || now != last
		last = now
		if !alive {
			continue
		}
		if d.cfg.StateDir != "" && time.Since(beat) >= every {
			beat = time.Now()
			if err := state.Beat(d.cfg.StateDir); err != nil {
				d.log.Debug("heartbeat", zap.Error(err))
			}
		}
		if w > 0 && time.Since(time.Unix(0, d.lastPing.Load())) >= w/4 {
			d.notify("WATCHDOG=1")
		}
	}
}

// progressMark moves while the daemon hashes (bytes move while a big
// file is read).
func (d *Daemon) progressMark() int64 { return d.progress.Files() + d.progress.Bytes() }

// pulse extends systemd's start timeout while the initial scan makes
// progress, and stays silent without progress.
func (d *Daemon) pulse() (stop func()) {
	every := 5 * time.Second
	if d.cfg.Watchdog > 0 {
		every = min(every, d.cfg.Watchdog/2)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		last := d.progressMark()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if now := d.progressMark(); now != last {
				last = now
				d.notify(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d\nSTATUS=initial scan: %s files checked",
					(3 * every).Microseconds(), thousands(int(d.progress.Files()))))
			}
		}
	}()
	return func() { close(done); <-finished }
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
