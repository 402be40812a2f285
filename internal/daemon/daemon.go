// Package daemon is integrityd's long-running job: a full scan of every
// scope, then incremental rechecks of what the watcher reports, with one
// alert per finding that appears and one entry per finding that heals.
//
// The order at start guarantees that no change is missed: watches first,
// then the full scan, then every batch of events that arrived meanwhile.
// A scope that churns (a manifest changes, as in an update, or a burst
// touches many of its files) is held: its events only push back a settle
// timer, and once it has been quiet for Settle it is reloaded and checked
// as a whole, so an update does not flood the journal and nothing is lost.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/state"
	"github.com/integrityd/integrityd/internal/verify"
	"github.com/integrityd/integrityd/internal/watch"
)

// Config is what the daemon checks and how.
type Config struct {
	Root      string
	AppsPaths []string
	DataDir   string
	Exclude   []string // absolute paths not checked (weakens the check)
	Trust     string   // PEM trust anchors
	CRL       string   // "" for none
	StateDir  string
	// RescanInterval is the safety-net full rescan (0: never).
	RescanInterval time.Duration
	// DegradedRescan is the full-rescan interval while some directories
	// cannot be watched.
	DegradedRescan time.Duration
	// Settle is how long a scope being updated must be quiet before it
	// is checked again; ChurnPaths is how many changed paths in one batch
	// are folded into one recheck of the whole scope.
	Settle     time.Duration
	ChurnPaths int
	// MaxHold bounds how long a churning scope waits.
	MaxHold time.Duration
	// Watchdog is systemd's WatchdogSec (0: no watchdog). Notifications go
	// to $NOTIFY_SOCKET when it is set.
	Watchdog time.Duration
}

// Defaults fills the zero fields of c.
func (c *Config) Defaults() {
	if c.RescanInterval == 0 {
		c.RescanInterval = time.Hour
	}
	if c.DegradedRescan == 0 {
		c.DegradedRescan = 5 * time.Minute
	}
	if c.Settle == 0 {
		c.Settle = 3 * time.Second
	}
	if c.MaxHold == 0 {
		c.MaxHold = 20 * c.Settle
	}
	if c.ChurnPaths == 0 {
		c.ChurnPaths = 256
	}
}

type scope struct {
	sc        *verify.Scope
	exp       *verify.Expected // nil when the manifest is not trusted
	files     int
	settle    time.Time // non-zero while the scope churns
	holdSince time.Time // when the scope started to churn
	// real is where a symlinked app directory resolves to ("" when Dir is
	// not a symlink): events arrive with that path.
	real string
	// links are the symlinks of the scope: their targets can change
	// without an event on them, so they are rechecked after every batch.
	links map[string]bool
}

// setLinks records the symlinks found at key and below.
func (s *scope) setLinks(key string, links []string) {
	if s.links == nil {
		s.links = map[string]bool{}
	}
	for l := range s.links {
		if key == "" || l == key || strings.HasPrefix(l, key+"/") {
			delete(s.links, l)
		}
	}
	for _, l := range links {
		s.links[l] = true
	}
}

// Daemon runs the checks. Use New, then Run.
type Daemon struct {
	cfg Config
	log *zap.Logger
	in  *verify.Install
	w   *watch.Watcher

	trust  *verify.Trust
	scopes map[string]*scope

	mu       sync.Mutex
	findings map[string]map[string]verify.Finding // scope -> path ("" for the scope) -> finding
	st       state.State
	dirty    bool // state not saved yet
	saveErr  string

	rescanReq chan rescanRequest
	lastPing  atomic.Int64 // when WATCHDOG=1 was last sent (unix ns)
	beat      atomic.Int64 // when the main loop last went round (unix ns)
	metrics   *Metrics
	extraTree map[string]bool // watched trees added for symlinked apps
	syncSeq   int
	syncs     map[string]chan struct{} // sync file name -> waiter
}

// New prepares a daemon; it loads the previous state (a corrupt one is
// logged and ignored).
func New(cfg Config, log *zap.Logger) (*Daemon, error) {
	cfg.Defaults()
	d := &Daemon{
		cfg:       cfg,
		log:       log,
		in:        newInstall(cfg),
		scopes:    map[string]*scope{},
		findings:  map[string]map[string]verify.Finding{},
		rescanReq: make(chan rescanRequest),
		syncs:     map[string]chan struct{}{},
		extraTree: map[string]bool{},
	}
	t, err := verify.LoadTrust(cfg.Trust, cfg.CRL)
	if err != nil {
		return nil, err
	}
	d.trust = t
	d.metrics = newMetrics(d)
	if cfg.StateDir != "" {
		state.CleanTemp(cfg.StateDir)
		prev, err := state.Load(cfg.StateDir)
		if err != nil {
			log.Warn("previous state unusable; starting from a full scan, findings will be alerted again", zap.Error(err))
		}
		if prev != nil {
			for _, f := range prev.Findings {
				d.put(f)
			}
			log.Info("previous state loaded", zap.Int("findings", len(prev.Findings)), zap.Time("updated", prev.Updated))
		}
	}
	return d, nil
}

func newInstall(cfg Config) *verify.Install {
	in := verify.NewInstall(cfg.Root, cfg.AppsPaths, cfg.DataDir)
	in.Exclude = cfg.Exclude
	return in
}

// skipDir says which directories are not watched: those no scope checks.
func (d *Daemon) skipDir(p string) bool {
	for _, e := range d.in.Exclude {
		if p == e {
			return true
		}
	}
	r := d.in.Root
	for _, a := range d.in.AppsRoots {
		if p == a {
			return false
		}
	}
	if p == d.in.DataDir {
		return true
	}
	if filepath.Dir(p) == r {
		switch filepath.Base(p) {
		case "data", "themes", "config", "assets", "lost+found", "updater", "_oc_upgrade":
			return true
		case "apps":
			return true // unless it is an apps root, handled above
		}
	}
	return false
}

// Run watches and checks until ctx is done. ready is called once the
// first full scan is done (for sd_notify).
func (d *Daemon) Run(ctx context.Context, ready func()) error {
	w, err := watch.New(d.log.Named("watch"), d.skipDir)
	if err != nil {
		return err
	}
	defer w.Close()
	d.w = w
	// Watches first, then the scan: nothing changed meanwhile is missed.
	if err := w.AddTree(d.in.Root); err != nil {
		return err
	}
	for _, a := range d.in.AppsRoots {
		if a != d.in.Root && !strings.HasPrefix(a, d.in.Root+"/") {
			if err := w.AddTree(a); err != nil {
				d.log.Error("apps directory not watched", zap.String("dir", a), zap.Error(err))
			}
		}
	}
	if d.cfg.StateDir != "" {
		if err := os.MkdirAll(d.cfg.StateDir, 0o750); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		if err := w.AddDir(d.cfg.StateDir); err != nil {
			d.log.Warn("state directory not watched; Sync will not work", zap.Error(err))
		}
	}
	for _, f := range []string{d.cfg.Trust, d.cfg.CRL} {
		if dir := filepath.Dir(f); f != "" && !d.inTree(dir) {
			if err := w.AddDir(dir); err != nil {
				d.log.Error("trust file not watched", zap.String("file", f), zap.Error(err))
			}
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()

	stop := d.pulse(true)
	err = d.fullScan(ctx, "start")
	stop()
	if err != nil {
		return err
	}
	d.notify("READY=1\nSTATUS=" + d.statusLine())
	if ready != nil {
		ready()
	}
	var heartbeat <-chan time.Time
	if d.cfg.Watchdog > 0 {
		// The loop beats at least every W/4, also when idle; the
		// watchdog goroutine pings while the beat is fresh or files are
		// being checked, so a wedged loop is restarted by systemd.
		t := time.NewTicker(d.cfg.Watchdog / 4)
		defer t.Stop()
		heartbeat = t.C
		go d.watchdog(ctx)
	}
	status := ""
	rescan := time.NewTicker(d.rescanInterval())
	defer rescan.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	save := time.NewTicker(time.Second)
	defer save.Stop()
	defer d.save()
	for {
		d.beat.Store(time.Now().UnixNano())
		select {
		case <-ctx.Done():
			d.notify("STOPPING=1")
			return nil
		case <-heartbeat:
		case err := <-werr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watcher stopped: %w", err)
		case b := <-w.Batches():
			if b.Rescan {
				d.metrics.eventsLost.Inc()
				d.log.Warn("rescanning everything", zap.String("reason", b.Reason))
				d.fullScan(ctx, b.Reason)
			} else {
				d.apply(ctx, b.Paths)
			}
			d.synced(b.Paths)
		case <-settle.C:
			d.settled(ctx)
		case <-rescan.C:
			w.Resync() // repairs watches, and retries those a limit refused
			d.fullScan(ctx, "periodic")
		case req := <-d.rescanReq:
			// systemctl reload: RELOADING=1 with the time, READY=1 when done.
			d.notify("RELOADING=1\n" + sddaemon.SdNotifyMonotonicUsec() + "\nSTATUS=full rescan")
			if req.cfg != nil {
				d.reconfigure(*req.cfg)
			}
			d.fullScan(ctx, "requested")
			d.notify("READY=1\nSTATUS=" + d.statusLine())
			status = ""
			close(req.done)
		case <-save.C:
			d.save()
		}
		if st := d.statusLine(); st != status {
			d.notify("STATUS=" + st)
			status = st
		}
		rescan.Reset(d.rescanInterval())
		if next := d.nextSettle(); !next.IsZero() {
			settle.Reset(max(time.Until(next), 0))
		}
	}
}

func (d *Daemon) rescanInterval() time.Duration {
	if d.w != nil {
		if _, degraded := d.w.Stats(); degraded != "" {
			return min(d.cfg.RescanInterval, d.cfg.DegradedRescan)
		}
	}
	return d.cfg.RescanInterval
}

func (d *Daemon) inTree(p string) bool {
	if p == d.in.Root || strings.HasPrefix(p, d.in.Root+"/") {
		return true
	}
	for _, a := range d.in.AppsRoots {
		if p == a || strings.HasPrefix(p, a+"/") {
			return true
		}
	}
	return false
}

type rescanRequest struct {
	done chan struct{}
	cfg  *Config // a new configuration to apply first, or nil
}

// Rescan asks for a full rescan and waits for it (SIGHUP).
func (d *Daemon) Rescan(ctx context.Context) error { return d.request(ctx, nil) }

// Reload applies a new configuration (what can change without a restart:
// trust anchors, CRL, exclusions, rescan interval) and rescans everything.
func (d *Daemon) Reload(ctx context.Context, cfg Config) error { return d.request(ctx, &cfg) }

func (d *Daemon) request(ctx context.Context, cfg *Config) error {
	done := make(chan struct{})
	select {
	case d.rescanReq <- rescanRequest{done, cfg}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sync waits until every change made before it was called has been
// checked: it creates a file in the (watched) state directory and waits
// for its event, which inotify delivers after all earlier ones, then for
// any settling scope to be checked.
func (d *Daemon) Sync(ctx context.Context) error {
	if d.cfg.StateDir == "" {
		return errors.New("sync needs a state directory")
	}
	for {
		d.mu.Lock()
		d.syncSeq++
		name := fmt.Sprintf(".sync-%d-%d", os.Getpid(), d.syncSeq)
		ch := make(chan struct{})
		d.syncs[name] = ch
		d.mu.Unlock()
		p := filepath.Join(d.cfg.StateDir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		var err error
		select {
		case <-ch:
		case <-time.After(2 * time.Second): // lost in an overflow: try again
			err = errRetry
		case <-ctx.Done():
			err = ctx.Err()
		}
		os.Remove(p)
		d.mu.Lock()
		delete(d.syncs, name)
		d.mu.Unlock()
		if err == errRetry {
			continue
		}
		if err != nil {
			return err
		}
		for !d.nextSettle().IsZero() {
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
}

var errRetry = errors.New("retry")

// synced releases the Sync callers whose file is among paths.
func (d *Daemon) synced(paths []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range paths {
		if filepath.Dir(p) != d.cfg.StateDir {
			continue
		}
		if ch, ok := d.syncs[filepath.Base(p)]; ok {
			close(ch)
			delete(d.syncs, filepath.Base(p))
		}
	}
}

func (d *Daemon) nextSettle() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var next time.Time
	for _, s := range d.scopes {
		if !s.settle.IsZero() && (next.IsZero() || s.settle.Before(next)) {
			next = s.settle
		}
	}
	return next
}

// Findings returns the current findings, scope exceptions first, in the
// order of a one-shot check (core, then apps by name).
func (d *Daemon) Findings() []verify.Finding {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []verify.Finding
	for _, m := range d.findings {
		for _, f := range m {
			out = append(out, f)
		}
	}
	SortFindings(out)
	return out
}

// SortFindings orders findings as a report lists them: core first, then
// scopes by name; in a scope the scope exception, then by kind and path.
func SortFindings(f []verify.Finding) {
	kind := map[verify.Kind]int{verify.InvalidHash: 0, verify.MissingFile: 1, verify.ExtraFile: 2, verify.KindException: 3}
	sort.SliceStable(f, func(i, j int) bool {
		a, b := f[i], f[j]
		if a.Scope != b.Scope {
			if a.Scope == "core" || b.Scope == "core" {
				return a.Scope == "core"
			}
			return a.Scope < b.Scope
		}
		if (a.Path == "") != (b.Path == "") {
			return a.Path == ""
		}
		if a.Kind != b.Kind {
			return kind[a.Kind] < kind[b.Kind]
		}
		return a.Path < b.Path
	})
}

func (d *Daemon) put(f verify.Finding) {
	m := d.findings[f.Scope]
	if m == nil {
		m = map[string]verify.Finding{}
		d.findings[f.Scope] = m
	}
	m[f.Path] = f
}

// replace sets the findings of scope name at key and below (all of the
// scope when key is "") and alerts on every transition: a finding that
// appears or changes kind, and one that heals.
func (d *Daemon) replace(name, key string, fresh []verify.Finding) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.findings[name]
	if cur == nil {
		cur = map[string]verify.Finding{}
		d.findings[name] = cur
	}
	next := make(map[string]verify.Finding, len(fresh))
	for _, f := range fresh {
		next[f.Path] = f
	}
	for p, f := range cur {
		if key != "" && p != key && !strings.HasPrefix(p, key+"/") {
			continue
		}
		if _, ok := next[p]; !ok {
			d.alertHealed(f)
			delete(cur, p)
			d.dirty = true
		}
	}
	for p, f := range next {
		o, ok := cur[p]
		// A transition: a new finding, another kind, or (for an
		// EXCEPTION) another reason. A file that stays INVALID_HASH with
		// other content, or an extra file that becomes unreadable, is
		// not alerted again.
		if !ok || o.Kind != f.Kind || (f.Kind == verify.KindException && o.Message != f.Message) {
			d.alert(f)
		}
		if o != f {
			cur[p] = f
			d.dirty = true
		}
	}
}

// drop forgets a scope that no longer exists (an app that was removed).
func (d *Daemon) drop(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := len(d.findings[name]); n > 0 {
		d.log.Info("app removed; its findings are dropped", zap.String("integrity_scope", name), zap.Int("findings", n))
	}
	delete(d.findings, name)
	d.dirty = true
}

func (d *Daemon) alertHealed(f verify.Finding) {
	d.log.Info("integrity finding resolved", append(alertFields(f), zap.String("message_id", journal.IDResolved))...)
}

func (d *Daemon) alert(f verify.Finding) {
	d.metrics.alerts.WithLabelValues(string(f.Kind)).Inc()
	fields := append(alertFields(f), zap.String("message_id", journal.AlertID(string(f.Kind))))
	if f.Kind == verify.KindException && f.Path == "" {
		d.log.Error("integrity check failed", fields...)
		return
	}
	d.log.Warn("integrity check failed", fields...)
}

func alertFields(f verify.Finding) []zap.Field {
	fs := []zap.Field{zap.String("integrity_kind", string(f.Kind)), zap.String("integrity_scope", f.Scope)}
	if f.Path != "" {
		fs = append(fs, zap.String("integrity_path", f.Path))
	}
	if f.Expected != "" {
		fs = append(fs, zap.String("integrity_expected", f.Expected))
	}
	if f.Current != "" {
		fs = append(fs, zap.String("integrity_current", f.Current))
	}
	if f.Class != "" {
		fs = append(fs, zap.String("integrity_class", f.Class))
	}
	if f.Message != "" {
		fs = append(fs, zap.String("integrity_message", f.Message))
	}
	if f.Detail != "" {
		fs = append(fs, zap.String("integrity_detail", f.Detail))
	}
	return fs
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

// statusLine is the one-line summary for systemctl status.
func (d *Daemon) statusLine() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	files, n := 0, 0
	for _, s := range d.scopes {
		files += s.files
	}
	for _, m := range d.findings {
		n += len(m)
	}
	line := fmt.Sprintf("watching %s files in %d scopes; %d findings", thousands(files), len(d.scopes), n)
	if d.w != nil {
		if _, degraded := d.w.Stats(); degraded != "" {
			line += "; degraded: some directories not watched"
		}
	}
	return line
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// watchdog sends WATCHDOG=1 every W/4 or so while the main loop goes round
// (its beat is fresh) or files are being checked (a long scan), and stays
// silent otherwise, so that systemd restarts a wedged daemon.
func (d *Daemon) watchdog(ctx context.Context) {
	w := d.cfg.Watchdog
	t := time.NewTicker(w / 8)
	defer t.Stop()
	last := progress()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := progress()
		alive := time.Since(time.Unix(0, d.beat.Load())) < w/2 || now != last
		last = now
		if alive && time.Since(time.Unix(0, d.lastPing.Load())) >= w/4 {
			d.notify("WATCHDOG=1")
		}
	}
}

// progress counts files and bytes checked (bytes move while a big file
// is read).
func progress() int64 { return verify.HashedFiles() + verify.HashedBytes() }

// pulse extends systemd's start timeout while the initial scan makes
// progress, and stays silent without progress.
func (d *Daemon) pulse(initial bool) (stop func()) {
	if !initial {
		return func() {}
	}
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
		last := progress()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if now := progress(); now != last {
				last = now
				d.notify(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d\nSTATUS=initial scan: %s files checked",
					(3 * every).Microseconds(), thousands(int(verify.HashedFiles()))))
			}
		}
	}()
	return func() { close(done); <-finished }
}

// reconfigure applies what can change without a restart.
func (d *Daemon) reconfigure(next Config) {
	fixed := []struct {
		name      string
		old, next any
	}{
		{"root", d.cfg.Root, next.Root}, {"apps paths", d.cfg.AppsPaths, next.AppsPaths},
		{"data directory", d.cfg.DataDir, next.DataDir}, {"state directory", d.cfg.StateDir, next.StateDir},
	}
	for _, f := range fixed {
		if fmt.Sprint(f.old) != fmt.Sprint(f.next) {
			d.log.Warn("this setting changes only with a restart", zap.String("setting", f.name),
				zap.Any("running", f.old), zap.Any("configured", f.next))
		}
	}
	d.cfg.Trust, d.cfg.CRL = next.Trust, next.CRL
	if next.RescanInterval > 0 {
		d.cfg.RescanInterval = next.RescanInterval
	}
	d.mu.Lock()
	d.in.Exclude = next.Exclude
	d.cfg.Exclude = next.Exclude
	d.mu.Unlock()
}
