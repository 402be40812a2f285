package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	sdjournal "github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/integrityd/integrityd/internal/config"
	"github.com/integrityd/integrityd/internal/daemon"
	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/report"
	"github.com/integrityd/integrityd/internal/state"
	"github.com/integrityd/integrityd/internal/verify"
)

// newLogger logs JSON lines, or a console format on a terminal.
func newLogger(w io.Writer, format string) (*zap.Logger, error) {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	var encoder zapcore.Encoder
	if format == "auto" {
		format = "json"
		if ok, _ := sdjournal.StderrIsJournalStream(); ok {
			format = "journal"
		} else if f, ok := w.(*os.File); ok && isTerminal(f) {
			format = "console"
		}
	}
	switch format {
	case "journal":
		// Native journal fields; JSON on stderr if the journal is gone.
		stderr := zapcore.NewCore(journal.SafeEncoder(zapcore.NewJSONEncoder(enc)), zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel)
		return zap.New(journal.New(zapcore.InfoLevel, "integrityd", nil, stderr)), nil
	case "json":
		encoder = zapcore.NewJSONEncoder(enc)
	case "console":
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		enc.EncodeTime = zapcore.TimeEncoderOfLayout("2006-01-02 15:04:05.000")
		encoder = zapcore.NewConsoleEncoder(enc)
	default: // refused by the settings' validation
		return nil, fmt.Errorf("unknown log format %q", format)
	}
	// No sampling: alerts are never dropped. No bidi or C1 control
	// reaches a terminal or a log viewer as it is (journal.SafeEncoder).
	return zap.New(zapcore.NewCore(journal.SafeEncoder(encoder), zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel)), nil
}

// runCommand is what run and check-config take: the check's settings and
// the daemon's.
func runCommand() config.Command {
	return config.Command{
		Flags:  append(checkFlags(), "state-dir", "rescan-interval", "reverify-period", "log-format", "metrics-listen", "metrics-textfile", "who-data", "control-socket", "unsigned"),
		Output: "text", Outputs: report.Formats, NeedRoot: true,
	}
}

// loadRun reads the settings of integrityd run (the command name) from
// args and the configuration file, and builds the daemon's configuration
// from them: at start, on every SIGHUP, and for check-config.
//
// Nothing in the web root keeps the daemon from running: where Nextcloud
// would not enforce its own check (the release channel of version.php,
// integrity.check.disabled in config.php: both writable by whoever
// writes the web root), the daemon checks anyway and unenforced says why,
// for one warning. Only integrityd's own enforce = no refuses to start.
func loadRun(name string, args []string, stderr io.Writer) (s *config.Settings, cfg daemon.Config, unenforced string, err error) {
	fs := newFlagSet(name, stderr)
	f := runCommand().Bind(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return nil, daemon.Config{}, "", err
	}
	if s, err = settings(f); err != nil {
		return nil, daemon.Config{}, "", err
	}
	if s.Enforce == "no" {
		return nil, daemon.Config{}, "", errors.New("enforce = no: integrityd run does not start (the daemon has no other way to be told not to check; stop its unit instead)")
	}
	in, t, err := openInstall(s)
	if err != nil {
		return nil, daemon.Config{}, "", err
	}
	if ok, why, err := enforcedWhy(s, in); err != nil {
		unenforced = fmt.Sprintf("cannot tell whether Nextcloud enforces its integrity check: %v", err)
	} else if !ok {
		unenforced = why
	}
	cfg = daemon.Config{
		Root: in.Root, AppsPaths: in.AppsRoots, DataDir: in.DataDir, Exclude: in.Exclude,
		Trust: t.AnchorFile, CRL: t.CRLFile, StateDir: s.StateDir,
		Workers: s.Workers, RescanInterval: s.RescanInterval, ReverifyPeriod: s.ReverifyPeriod, Unsigned: s.Unsigned,
		// What integrityd's configuration does not pin follows Nextcloud's.
		FollowConfig: len(s.AppsPaths) == 0 || s.DataDir == "", PinnedAppsPaths: s.AppsPaths, PinnedDataDir: s.DataDir,
		WhoData: s.WhoData == "on",
	}
	if cfg.ReverifyPeriod == 0 {
		cfg.ReverifyPeriod = -1 // off (the daemon's zero is its default)
	}
	// The built-in trust (verify.EmbeddedAnchorFile, EmbeddedCRLFile)
	// names no file.
	if !verify.IsEmbedded(cfg.Trust) {
		if cfg.Trust, err = filepath.Abs(cfg.Trust); err != nil {
			return nil, daemon.Config{}, "", err
		}
	}
	if cfg.CRL != "" && !verify.IsEmbedded(cfg.CRL) {
		if cfg.CRL, err = filepath.Abs(cfg.CRL); err != nil {
			return nil, daemon.Config{}, "", err
		}
	}
	return s, cfg, unenforced, nil
}

// runDaemon is the long-running job: full scan, then watch.
//
// It refuses to start with a configuration error (exit 78, one line) and
// when another daemon holds the state directory (exit 2).
func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The flag package's own messages (and the flags' list) only for -h:
	// an error is one line.
	var flagOut bytes.Buffer
	s, cfg, unenforced, err := loadRun("run", args, &flagOut)
	if errors.Is(err, errHelp) {
		stderr.Write(flagOut.Bytes())
		return err
	}
	if err != nil {
		return configError{err}
	}
	sock, err := controlSocketPath(s.ControlSocket, os.Getenv("RUNTIME_DIRECTORY"))
	if err != nil {
		return configError{fmt.Errorf("control socket: %w", err)}
	}
	log, err := newLogger(stderr, s.LogFormat)
	if err != nil {
		return configError{err}
	}
	defer log.Sync()
	if cfg.StateDir != "" {
		lock, err := state.AcquireLock(cfg.StateDir)
		if err != nil {
			return err
		}
		defer lock.Close()
	}
	if cfg.Watchdog, err = sddaemon.SdWatchdogEnabled(false); err != nil {
		log.Warn("ignoring the watchdog settings", zap.Error(err))
	}
	log.Info("integrityd starting", zap.String("root", cfg.Root), zap.Strings("apps_paths", cfg.AppsPaths),
		zap.String("trust", cfg.Trust), zap.String("crl", cfg.CRL), zap.String("state_dir", cfg.StateDir),
		zap.Strings("exclude", cfg.Exclude), zap.Int("pid", os.Getpid()))
	if len(cfg.Exclude) > 0 {
		log.Warn("some paths are excluded from the check by configuration", zap.Strings("exclude", cfg.Exclude))
	}
	warnUnenforced(log, unenforced)
	if os.Geteuid() == 0 {
		log.Warn("running as root; the packaged unit runs as user integrityd with CAP_DAC_READ_SEARCH only")
	}
	for {
		err := serve(ctx, s, cfg, sock, args, log)
		var re restartError
		if errors.As(err, &re) {
			// A reload changed what only a new daemon applies (the root,
			// the metrics, the control socket): start again on it.
			if re.sock, err = controlSocketPath(re.s.ControlSocket, os.Getenv("RUNTIME_DIRECTORY")); err != nil {
				log.Error("SIGHUP: control socket", zap.Error(err))
				re.sock = sock
			}
			re.cfg.Watchdog = cfg.Watchdog
			s, cfg, sock = re.s, re.cfg, re.sock
			restoreNotify(re.notify) // the new daemon's READY=1 ends the reload
			continue
		}
		if !errors.Is(err, daemon.ErrInstallChanged) {
			log.Info("integrityd stopped")
			return err
		}
		// Nextcloud's configuration names other apps roots: start again
		// on them (the state is kept, the first scan finds what changed).
		_, next, unenforced, lerr := loadRun("run", args, io.Discard)
		if lerr != nil {
			log.Error("configuration cannot be loaded again; going on with the apps roots read before", zap.Error(lerr))
			next = cfg
		} else {
			warnUnenforced(log, unenforced)
		}
		next.Watchdog = cfg.Watchdog
		cfg = next
	}
}

// serve runs one daemon on cfg, with its metrics, control socket and
// SIGHUP handling, until ctx is done or the daemon stops.
func serve(ctx context.Context, s *config.Settings, cfg daemon.Config, sock string, args []string, log *zap.Logger) error {
	d, err := daemon.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopMetrics, err := startMetrics(ctx, metricsOptions{s.MetricsListen, s.MetricsTextfile, textfileInterval}, d, log)
	if err != nil {
		// A metrics setting that can never work (a relative unix:
		// path): exit 78. One that cannot work yet where the daemon
		// runs (TCP behind PrivateNetwork=yes, a read-only textfile
		// directory) is an error entry and a retry: the checking goes on.
		return configError{err}
	}
	defer stopMetrics()
	if sock != "" {
		ln, err := listenUnix("control socket", sock)
		if err != nil {
			return err
		}
		stopControl := startControl(ctx, ln, d.Rescan, d.AcceptReleases, log)
		defer stopControl()
		if cfg.StateDir != "" {
			if err := state.WriteControl(cfg.StateDir, sock); err != nil {
				return err
			}
			defer state.RemoveControl(cfg.StateDir)
		}
		log.Info("control socket listening", zap.String("socket", sock))
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	restart := make(chan restartError, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// Reload the configuration; keep the running one if the
				// new one is invalid. Then rescan everything.
				ns, next, unenforced, err := loadRun("run", args, io.Discard)
				if err != nil {
					log.Error("SIGHUP: configuration invalid, keeping the running one", zap.Error(err))
					d.Rescan(ctx)
					continue
				}
				warnUnenforced(log, unenforced)
				next.StateDir = cfg.StateDir // its lock is the process's
				again, never := restartKeys(s, cfg, ns, next)
				if len(never) > 0 {
					log.Warn("SIGHUP: these settings change only when integrityd is restarted (systemctl restart): "+strings.Join(never, ", "),
						zap.Strings("restart_needed", never))
				}
				if len(again) > 0 {
					log.Info("SIGHUP: configuration reloaded; starting the checks again to apply "+strings.Join(again, ", "),
						zap.Strings("applied", again))
					restart <- restartError{s: ns, cfg: next, notify: reloadQuietly(again)}
					cancel()
					return
				}
				log.Info("SIGHUP: configuration reloaded; full rescan")
				d.Reload(ctx, next)
			}
		}
	}()
	err = d.Run(ctx, func() { log.Info("initial scan done; watching") })
	select {
	case re := <-restart:
		return re
	default:
		return err
	}
}

// restartError ends serve when a reload changed settings only a new
// daemon applies; runDaemon starts again with them.
type restartError struct {
	s    *config.Settings
	cfg  daemon.Config
	sock string
	// notify is $NOTIFY_SOCKET, unset while the daemon stops ("" when
	// there is none).
	notify string
}

// restoreNotify sets $NOTIFY_SOCKET again to what reloadQuietly unset.
func restoreNotify(sock string) {
	if sock != "" {
		os.Setenv("NOTIFY_SOCKET", sock)
	}
}

// reloadQuietly tells systemd that a reload goes on (RELOADING=1) and
// unsets $NOTIFY_SOCKET until the next daemon of this process runs,
// returning it: the daemon stopping for the restart says STOPPING=1 on
// its way out (daemon.Run), which would hold the unit deactivating and
// have systemd kill it at TimeoutStopSec. The next daemon's READY=1, once
// its first check is done, ends the reload.
func reloadQuietly(applied []string) string {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return ""
	}
	sddaemon.SdNotify(false, "RELOADING=1\n"+sddaemon.SdNotifyMonotonicUsec()+"\nSTATUS=configuration reloaded; starting the checks again to apply "+strings.Join(applied, ", "))
	os.Unsetenv("NOTIFY_SOCKET")
	return sock
}

func (restartError) Error() string { return "restart to apply the reloaded configuration" }

// How a reload applies a key of the configuration file.
const (
	reloadApplied = iota // in place, by Daemon.Reload (then a full rescan)
	reloadAgain          // by starting the checks again in this process
	reloadRestart        // only by a new process (systemctl restart)
)

// reloadRule is how a reload applies one key, and what of the settings
// or the daemon's configuration it sets (for the keys not applied in
// place).
type reloadRule struct {
	key string
	how int
	get func(*config.Settings, daemon.Config) any
}

// reloadRules has a rule for every key of the configuration file
// (TestReloadRules): none is ignored by a reload.
func reloadRules() []reloadRule {
	in := func(*config.Settings, daemon.Config) any { return nil }
	return []reloadRule{
		{"root", reloadAgain, func(_ *config.Settings, c daemon.Config) any { return c.Root }},
		{"apps_path", reloadAgain, func(_ *config.Settings, c daemon.Config) any { return c.AppsPaths }},
		{"data_dir", reloadAgain, func(_ *config.Settings, c daemon.Config) any { return c.DataDir }},
		{"who_data", reloadAgain, func(_ *config.Settings, c daemon.Config) any { return c.WhoData }},
		// Daemon.Reload keeps the running period.
		{"reverify_period", reloadAgain, func(_ *config.Settings, c daemon.Config) any { return c.ReverifyPeriod }},
		{"metrics_listen", reloadAgain, func(s *config.Settings, _ daemon.Config) any { return s.MetricsListen }},
		{"metrics_textfile", reloadAgain, func(s *config.Settings, _ daemon.Config) any { return s.MetricsTextfile }},
		{"control_socket", reloadAgain, func(s *config.Settings, _ daemon.Config) any { return s.ControlSocket }},
		{"state_dir", reloadRestart, func(s *config.Settings, _ daemon.Config) any { return s.StateDir }},
		{"log_format", reloadRestart, func(s *config.Settings, _ daemon.Config) any { return s.LogFormat }},
		{"trust", reloadApplied, in}, {"crl", reloadApplied, in}, {"exclude", reloadApplied, in},
		{"rescan_interval", reloadApplied, in}, {"unsigned", reloadApplied, in},
		// enforce = no refuses the reload (check-config and run fail);
		// otherwise only the start's warning depends on it, given again.
		{"enforce", reloadApplied, in},
	}
}

// restartKeys compares the running settings with reloaded ones: again
// names what a new daemon in this process applies (serve is started
// again), never what only a new process does.
func restartKeys(s *config.Settings, cfg daemon.Config, ns *config.Settings, next daemon.Config) (again, never []string) {
	for _, r := range reloadRules() {
		if r.how == reloadApplied || fmt.Sprint(r.get(s, cfg)) == fmt.Sprint(r.get(ns, next)) {
			continue
		}
		if r.how == reloadAgain {
			again = append(again, r.key)
		} else {
			never = append(never, r.key)
		}
	}
	return again, never
}

// warnUnenforced logs, when why is set, that Nextcloud would not enforce
// its own check on the install, which the daemon checks all the same.
func warnUnenforced(log *zap.Logger, why string) {
	if why == "" {
		return
	}
	log.Warn("Nextcloud's own integrity check is not enforced on this install; integrityd checks it all the same",
		zap.String("reason", why), zap.String("message_id", kind.IDUnenforced))
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
