package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/integrityd/integrityd/internal/config"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/report"
	"github.com/integrityd/integrityd/internal/state"
	"github.com/integrityd/integrityd/internal/verify"
)

// exitNotRunning is status's exit code when the daemon is not running or
// its state is stale.
const exitNotRunning = 3

// errNotRunning makes run() exit with exitNotRunning.
type errNotRunning struct{ msg string }

func (e errNotRunning) Error() string { return e.msg }

// stateCommand is what the commands that read the daemon's state take.
func stateCommand(outputs ...string) config.Command {
	return config.Command{Flags: []string{"config", "state-dir", "output"}, Output: "text", Outputs: outputs}
}

// stateSettings parses args of a command that reads the daemon's state
// (with its own flags on fs) and returns the settings and the state.
func stateSettings(fs *flag.FlagSet, f *config.Flags, args []string) (*config.Settings, *daemonState, error) {
	if err := parseNoArgs(fs, args); err != nil {
		return nil, nil, err
	}
	s, err := settings(f)
	if err != nil {
		return nil, nil, err
	}
	ds, err := loadState(s.StateDir)
	if err != nil {
		return nil, nil, err
	}
	return s, ds, nil
}

// daemonState is the state with what status concludes from it.
type daemonState struct {
	*state.State
	dir     string
	running bool
	stale   string // why the state cannot be trusted ("" if it can)
}

// operatorGroup is the group whose members may read the daemon's state
// and use its control socket (the packaged unit's Group=).
const operatorGroup = "integrityd"

// permissionDenied is the error for an operator who may not read or use
// path: exit 2, not "not running".
func permissionDenied(what, path string) error {
	return fmt.Errorf("permission denied %s %s: run as root or as a member of group %s (see README)", what, path, operatorGroup)
}

func loadState(dir string) (*daemonState, error) {
	st, err := state.Load(dir)
	if errors.Is(err, fs.ErrPermission) {
		return nil, permissionDenied("reading", state.Path(dir))
	}
	if err != nil {
		return nil, errNotRunning{err.Error()}
	}
	if st == nil {
		return nil, errNotRunning{fmt.Sprintf("no state in %s: integrityd is not running there, or never ran", dir)}
	}
	ds := &daemonState{State: st, dir: dir, running: processIsIntegrityd(st.PID)}
	switch {
	case !ds.running:
		ds.stale = fmt.Sprintf("integrityd (pid %d) is not running", st.PID)
	case !st.Complete:
		ds.stale = "the first full scan has not finished"
	case state.HeartbeatStale(dir) != "":
		// The loop's own sign of life: a daemon stopped (SIGSTOP) or
		// wedged is not alive, however recent its last full scan.
		ds.stale = fmt.Sprintf("integrityd (pid %d): %s", st.PID, state.HeartbeatStale(dir))
	case st.RescanInterval > 0 && time.Since(st.LastFullScan) > 2*st.RescanInterval+time.Minute:
		ds.stale = fmt.Sprintf("the last full scan is %s old (rescan interval %s)", time.Since(st.LastFullScan).Round(time.Second), st.RescanInterval)
	}
	return ds, nil
}

// processIsIntegrityd reports whether pid is alive and runs integrityd
// (not another process that reused the pid).
func processIsIntegrityd(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return true // hidden (ProtectProc): alive is all we know
	}
	args := strings.Split(string(cmd), "\x00")
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return strings.Contains(exe, "integrityd") || strings.Contains(args[0], "integrityd")
}

func countKinds(fs []finding.Finding) map[kind.Kind]int {
	n := map[kind.Kind]int{}
	for _, f := range fs {
		n[f.Kind]++
	}
	return n
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format("2006-01-02 15:04:05"), time.Since(t).Round(time.Second))
}

// statusHelp is status -h before the flags.
const statusHelp = `usage: integrityd status [--output text|json] [--state-dir DIR] [--config FILE]
       integrityd status --all [--config-dir DIR] [--output text|json]

What the running daemon knows, read from its state (members of group integrityd may run it).
Exit status: 0 running and clean, 1 findings or trust anchor mismatch, 2 error (permission
denied: run as root or as a member of group integrityd), 3 not running or stale.

--output json prints one object:
  running                 bool: the daemon's pid runs integrityd
  stale                   why the state cannot be trusted ("" if it can)
  pid                     the daemon's pid
  updated                 when the state was last written (RFC 3339)
  last_full_scan          when the last full scan finished (RFC 3339)
  last_full_scan_seconds  how long it took
  files, scopes           files and scopes (core, apps) checked
  watched_dirs            directories watched
  degraded                why watching is incomplete ("" if it is not)
  findings                number of findings
  findings_by_kind        {"INVALID_HASH": n, ...}, only kinds present
  trust_differs           how the install's root.crt differs from the trust anchors ("" if not)
  unsigned                whether code no signature covers is checked, against which baseline
  unsigned_files          files of that code covered (see integrityd baseline)

`

// runStatus prints what the running daemon knows.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), statusHelp)
		fs.PrintDefaults()
	}
	f := stateCommand("text", "json").Bind(fs)
	health := fs.Bool("health", false, "exit 0 while the daemon runs, its loop beats (its heartbeat; frozen or wedged is not alive) and its state is fresh, findings or not (a container HEALTHCHECK: findings are alerts, not a reason to restart)")
	all := fs.Bool("all", false, "every instance of this host, one line each: the configurations *.conf of --config-dir (integrityd.conf is the unit integrityd, NAME.conf the unit integrityd@NAME); exit with the worst of their codes")
	confDir := fs.String("config-dir", filepath.Dir(config.DefaultPath), "where --all finds the configurations")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *all {
		out := "text"
		fs.Visit(func(fl *flag.Flag) {
			if fl.Name == "output" {
				out = fl.Value.String()
			}
		})
		if out != "text" && out != "json" {
			return usageError{fmt.Sprintf("--output %s: want text or json", out)}
		}
		return statusAll(stdout, *confDir, out)
	}
	s, ds, err := stateSettings(fs, f, nil)
	if err != nil {
		return err
	}
	kinds := countKinds(ds.Findings)
	if s.Output == "json" {
		out, _ := json.MarshalIndent(map[string]any{
			"running": ds.running, "stale": ds.stale, "pid": ds.PID, "updated": ds.Updated,
			"last_full_scan": ds.LastFullScan, "last_full_scan_seconds": ds.LastFullDuration.Seconds(),
			"files": ds.Files, "scopes": ds.Scopes, "watched_dirs": ds.WatchedDirs, "degraded": ds.Degraded,
			"findings": len(ds.Findings), "findings_by_kind": kinds, "trust_differs": ds.TrustDiffers,
			"unsigned": ds.Unsigned, "unsigned_files": ds.UnsignedFiles,
		}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", out)
	} else {
		run := fmt.Sprintf("running (pid %d)", ds.PID)
		if !ds.running {
			run = fmt.Sprintf("NOT RUNNING (last pid %d)", ds.PID)
		}
		fmt.Fprintf(stdout, "integrityd:      %s, state %s, updated %s\n", run, ds.dir, ago(ds.Updated))
		fmt.Fprintf(stdout, "last full scan:  %s, took %s\n", ago(ds.LastFullScan), ds.LastFullDuration.Round(time.Millisecond))
		fmt.Fprintf(stdout, "watching:        %d files in %d scopes, %d directories\n", ds.Files, ds.Scopes, ds.WatchedDirs)
		if ds.Degraded != "" {
			fmt.Fprintf(stdout, "watcher:         DEGRADED: %s\n", ds.Degraded)
		} else {
			fmt.Fprintf(stdout, "watcher:         ok\n")
		}
		if ds.Unsigned != "" {
			fmt.Fprintf(stdout, "unsigned code:   %s; %d files covered\n", strings.TrimPrefix(ds.Unsigned, "unsigned code: "), ds.UnsignedFiles)
		}
		// Nextcloud's kinds always, integrityd's own when there are some.
		var counts []string
		for _, k := range kind.All() {
			if n := kinds[k]; n > 0 || slices.Contains([]kind.Kind{kind.InvalidHash, kind.FileMissing, kind.ExtraFile, kind.Exception}, k) {
				counts = append(counts, fmt.Sprintf("%s %d", k, n))
			}
		}
		fmt.Fprintf(stdout, "findings:        %d (%s)\n", len(ds.Findings), strings.Join(counts, ", "))
		if ds.TrustDiffers != "" {
			fmt.Fprintf(stdout, "TRUST ANCHOR:    the install's root.crt differs from the pinned one: %s\n", ds.TrustDiffers)
		}
		if ds.stale != "" {
			fmt.Fprintf(stdout, "STALE:           %s\n", ds.stale)
		}
	}
	if err := ds.verdict(); err != nil && !(*health && errors.Is(err, errFindings)) {
		return err
	}
	return nil
}

// verdict is what status says of a state it could read: not running (or
// stale), findings (a trust anchor that differs counts), or nil.
func (ds *daemonState) verdict() error {
	if ds.stale != "" {
		return errNotRunning{ds.stale}
	}
	if len(ds.Findings) > 0 || ds.TrustDiffers != "" {
		return errFindings
	}
	return nil
}

// runReport prints the current findings like a one-shot check.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", stderr)
	s, ds, err := stateSettings(fs, stateCommand(report.Formats...).Bind(fs), args)
	if err != nil {
		return err
	}
	if ds.stale != "" {
		fmt.Fprintf(stderr, "integrityd report: warning: %s; these findings may be out of date\n", ds.stale)
	}
	return printReport(stdout, verify.ReportFromFindings(ds.Findings), s.Output, false)
}

// runRescan asks the running daemon for a full rescan, waits for it and
// prints the result.
func runRescan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var timeout time.Duration
	fs := newFlagSet("rescan", stderr)
	f := stateCommand(report.Formats...).Bind(fs)
	fs.DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for the rescan")
	s, ds, err := stateSettings(fs, f, args)
	if err != nil {
		return err
	}
	if !ds.running {
		return errNotRunning{ds.stale}
	}
	asked := time.Now()
	if err := askRescan(ctx, ds); err != nil {
		return err
	}
	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = isTerminal(f)
	}
	deadline := asked.Add(timeout)
	for {
		st, err := state.Load(ds.dir)
		if err == nil && st != nil && !st.LastFullScan.Before(asked) && !st.Updated.Before(st.LastFullScan) {
			if tty {
				fmt.Fprintf(stderr, "\r\033[Krescan done in %s\n", time.Since(asked).Round(100*time.Millisecond))
			}
			return printReport(stdout, verify.ReportFromFindings(st.Findings), s.Output, false)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no rescan result after %s (integrityd pid %d)", timeout, ds.PID)
		}
		if !processIsIntegrityd(ds.PID) {
			return errNotRunning{fmt.Sprintf("integrityd (pid %d) stopped during the rescan", ds.PID)}
		}
		if tty {
			fmt.Fprintf(stderr, "\r\033[Krescanning... %s", time.Since(asked).Round(100*time.Millisecond))
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// askRescan asks the daemon of ds for a full rescan: on its control
// socket when it has one (what operators in its group may use), else with
// SIGHUP (which also reloads its configuration, and which only root or
// the daemon's user may send).
func askRescan(ctx context.Context, ds *daemonState) error {
	sock, _, err := callDaemon(ctx, ds.dir, "rescan", controlTimeout)
	switch {
	case err == nil:
		return nil
	case sock == "" && !errors.Is(err, errNoSocket):
		return err // the control file could not be read
	case errors.Is(err, fs.ErrPermission):
		return permissionDenied("connecting to", sock)
	case !errors.Is(err, errNoSocket):
		return fmt.Errorf("ask integrityd (pid %d) for a rescan: %w", ds.PID, err)
	}
	// No socket, or one left by a daemon that died: this pid runs without.
	if err := syscall.Kill(ds.PID, syscall.SIGHUP); err != nil {
		if errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("not allowed to signal integrityd (pid %d), and it has no control socket: run as root, or use systemctl reload integrityd", ds.PID)
		}
		return fmt.Errorf("signal integrityd (pid %d): %w", ds.PID, err)
	}
	return nil
}

// runCheckConfig validates the configuration and the settings of run.
func runCheckConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, c, unenforced, err := loadRun("check-config", args, stderr)
	if err != nil {
		return err
	}
	if unenforced != "" {
		fmt.Fprintf(stdout, "note: %s (integrityd run checks it all the same)\n", unenforced)
	}
	fmt.Fprintf(stdout, "configuration OK\nroot:            %s\napps paths:      %s\ntrust anchors:   %s\nCRL:             %s\nstate directory: %s\nrescan interval: %s\n",
		c.Root, strings.Join(c.AppsPaths, ", "), c.Trust, orNone(c.CRL), c.StateDir, c.RescanInterval)
	if len(c.Exclude) > 0 {
		fmt.Fprintf(stdout, "excluded (NOT checked): %s\n", strings.Join(c.Exclude, ", "))
	}
	if s.MetricsListen != "" || s.MetricsTextfile != "" {
		fmt.Fprintf(stdout, "metrics:         %s\n", strings.TrimSpace(s.MetricsListen+" "+s.MetricsTextfile))
	}
	warnUnitNet(ctx, stdout, s.ConfigFile, s.MetricsListen)
	sock, err := controlSocketPath(s.ControlSocket, os.Getenv("RUNTIME_DIRECTORY"))
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if sock == "" && s.ControlSocket == "" {
		sock = "none here ($RUNTIME_DIRECTORY/" + controlDefaultName + " under systemd)"
	}
	fmt.Fprintf(stdout, "control socket:  %s\n", orNone(sock))
	// The directories the daemon writes in. A state directory that user
	// integrityd cannot write yet is only a warning: systemd's
	// StateDirectory= gives it to the service's user at start.
	if c.StateDir != "" {
		dc, err := checkWritableDir(c.StateDir)
		if err != nil {
			return fmt.Errorf("state directory %s: %v", c.StateDir, err)
		}
		fmt.Fprintf(stdout, "state dir:       %s\n", dc.note)
		if dc.service != "" {
			fmt.Fprintf(stdout, "WARNING:         %s (fine when it is the unit's StateDirectory=, which systemd gives to the service's user at start)\n", dc.service)
		}
	}
	if s.MetricsTextfile != "" {
		dir := filepath.Dir(s.MetricsTextfile)
		dc, err := checkWritableDir(dir)
		if err == nil && dc.service != "" {
			err = errors.New(dc.service)
		}
		if err != nil {
			return fmt.Errorf("metrics textfile directory %s: %v (the daemon writes %s there; under the packaged unit's ProtectSystem=strict it also needs ReadWritePaths=%s, see README)", dir, err, filepath.Base(s.MetricsTextfile), dir)
		}
		fmt.Fprintf(stdout, "metrics dir:     %s\n", dc.note)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
