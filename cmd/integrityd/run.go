package main

import (
	"context"
	"errors"
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

// runDaemon is the long-running job: full scan, then watch.
func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c checkFlags
	var stateDir, logFormat string
	var rescan time.Duration
	fs := newFlagSet("run", stderr)
	c.register(fs, "text")
	fs.StringVar(&stateDir, "state-dir", "/var/lib/integrityd", "where findings and scan metadata persist")
	fs.DurationVar(&rescan, "rescan-interval", time.Hour, "safety-net full rescan interval")
	fs.StringVar(&logFormat, "log-format", "auto", `"journal", "json", "console", or "auto" (journal when stderr is the journal, console on a terminal, else json)`)
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	if rescan <= 0 {
		return usageError{"--rescan-interval must be positive"}
	}
	log, err := newLogger(stderr, logFormat)
	if err != nil {
		return err
	}
	defer log.Sync()
	in, t, err := c.setup()
	if err != nil {
		return err
	}
	if ok, why, err := c.enforced(in); err != nil {
		return err
	} else if !ok {
		return errors.New(why)
	}
	watchdog, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("ignoring the watchdog settings", zap.Error(err))
	}
	cfg := daemon.Config{
		Watchdog: watchdog,
		Root:     in.Root, AppsPaths: in.AppsRoots, DataDir: in.DataDir,
		Trust: t.AnchorFile, CRL: t.CRLFile, StateDir: stateDir, RescanInterval: rescan,
	}
	if cfg.Trust, err = filepath.Abs(cfg.Trust); err != nil {
		return err
	}
	if cfg.CRL != "" {
		if cfg.CRL, err = filepath.Abs(cfg.CRL); err != nil {
			return err
		}
	}
	log.Info("integrityd starting", zap.String("root", in.Root), zap.Strings("apps_paths", in.AppsRoots),
		zap.String("trust", cfg.Trust), zap.String("crl", cfg.CRL), zap.String("state_dir", stateDir), zap.Int("pid", os.Getpid()))
	d, err := daemon.New(cfg, log)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: full rescan")
				d.Rescan(ctx)
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
