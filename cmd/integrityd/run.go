package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	sdjournal "github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/integrityd/integrityd/internal/daemon"
	"github.com/integrityd/integrityd/internal/journal"
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
		stderr := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel)
		return zap.New(journal.New(zapcore.InfoLevel, "integrityd", nil, stderr)), nil
	case "json":
		encoder = zapcore.NewJSONEncoder(enc)
	case "console":
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		enc.EncodeTime = zapcore.TimeEncoderOfLayout("2006-01-02 15:04:05.000")
		encoder = zapcore.NewConsoleEncoder(enc)
	default:
		return nil, usageError{fmt.Sprintf(`--log-format must be "auto", "journal", "json" or "console", not %q`, format)}
	}
	// No sampling: alerts are never dropped.
	return zap.New(zapcore.NewCore(encoder, zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel)), nil
}

// runSettings are the daemon's settings: flags over the configuration file.
type runSettings struct {
	cfg                            daemon.Config
	logFormat                      string
	metricsListen, metricsTextfile string
}

// parseRun reads the settings of integrityd run from args and the
// configuration file; it runs again on SIGHUP.
func parseRun(args []string, stderr io.Writer) (*runSettings, error) {
	var c checkFlags
	var stateDir, logFormat, metricsListen, metricsTextfile string
	var rescan time.Duration
	fs := newFlagSet("run", stderr)
	c.register(fs, "text")
	fs.StringVar(&stateDir, "state-dir", "/var/lib/integrityd", "where findings and scan metadata persist")
	fs.DurationVar(&rescan, "rescan-interval", time.Hour, "safety-net full rescan interval")
	fs.StringVar(&logFormat, "log-format", "auto", `"journal", "json", "console", or "auto" (journal when stderr is the journal, console on a terminal, else json)`)
	fs.StringVar(&metricsListen, "metrics-listen", "", "serve Prometheus metrics on this address (host:port, or unix:/path)")
	fs.StringVar(&metricsTextfile, "metrics-textfile", "", "write Prometheus metrics to this file for node_exporter's textfile collector")
	if err := parseNoArgs(fs, args); err != nil {
		return nil, err
	}
	in, t, err := c.setup()
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if f := c.file; f != nil {
		if !set["state-dir"] && f.Set["state_dir"] {
			stateDir = f.StateDir
		}
		if !set["rescan-interval"] && f.Set["rescan_interval"] {
			rescan = f.RescanInterval
		}
		if !set["log-format"] && f.Set["log_format"] {
			logFormat = f.LogFormat
		}
		if !set["metrics-listen"] && f.Set["metrics_listen"] {
			metricsListen = f.MetricsListen
		}
		if !set["metrics-textfile"] && f.Set["metrics_textfile"] {
			metricsTextfile = f.MetricsTextfile
		}
	}
	if rescan <= 0 {
		return nil, usageError{"--rescan-interval must be positive"}
	}
	if ok, why, err := c.enforced(in); err != nil {
		return nil, err
	} else if !ok {
		return nil, errors.New(why)
	}
	s := &runSettings{logFormat: logFormat, metricsListen: metricsListen, metricsTextfile: metricsTextfile}
	s.cfg = daemon.Config{
		Root: in.Root, AppsPaths: in.AppsRoots, DataDir: in.DataDir, Exclude: in.Exclude,
		Trust: t.AnchorFile, CRL: t.CRLFile, StateDir: stateDir, RescanInterval: rescan,
	}
	if s.cfg.Trust, err = filepath.Abs(s.cfg.Trust); err != nil {
		return nil, err
	}
	if s.cfg.CRL != "" {
		if s.cfg.CRL, err = filepath.Abs(s.cfg.CRL); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// runDaemon is the long-running job: full scan, then watch.
func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseRun(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, s.logFormat)
	if err != nil {
		return err
	}
	defer log.Sync()
	cfg := s.cfg
	if cfg.Watchdog, err = sddaemon.SdWatchdogEnabled(false); err != nil {
		log.Warn("ignoring the watchdog settings", zap.Error(err))
	}
	log.Info("integrityd starting", zap.String("root", cfg.Root), zap.Strings("apps_paths", cfg.AppsPaths),
		zap.String("trust", cfg.Trust), zap.String("crl", cfg.CRL), zap.String("state_dir", cfg.StateDir),
		zap.Strings("exclude", cfg.Exclude), zap.Int("pid", os.Getpid()))
	if len(cfg.Exclude) > 0 {
		log.Warn("some paths are excluded from the check by configuration", zap.Strings("exclude", cfg.Exclude))
	}
	if os.Geteuid() == 0 {
		log.Warn("running as root; the packaged unit runs with a dynamic user and CAP_DAC_READ_SEARCH only")
	}
	d, err := daemon.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopMetrics, err := startMetrics(ctx, s, d, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// Reload the configuration; keep the running one if the
				// new one is invalid. Then rescan everything.
				next, err := parseRun(args, io.Discard)
				if err != nil {
					log.Error("SIGHUP: configuration invalid, keeping the running one", zap.Error(err))
					d.Rescan(ctx)
					continue
				}
				log.Info("SIGHUP: configuration reloaded; full rescan")
				d.Reload(ctx, next.cfg)
			}
		}
	}()
	err = d.Run(ctx, func() { log.Info("initial scan done; watching") })
	log.Info("integrityd stopped")
	return err
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
