package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/daemon"
	"github.com/integrityd/integrityd/internal/fsutil"
)

// textfileInterval is how often integrityd run rewrites the metrics
// textfile (when it changed).
const textfileInterval = 15 * time.Second

// metricsOptions say where the daemon's metrics go.
type metricsOptions struct {
	listen   string        // address to serve them on ("" for none)
	textfile string        // file to write them to ("" for none)
	interval time.Duration // how often the textfile is rewritten
}

// metricsRetry and metricsRetryMax bound the wait between two tries of a
// metrics endpoint that could not start (doubling from the first).
var (
	metricsRetry    = 5 * time.Second
	metricsRetryMax = 5 * time.Minute
)

// startMetrics serves or writes the daemon's metrics as o says. The
// returned function stops it (and writes the textfile a last time).
//
// Metrics never take the monitoring down: an endpoint that cannot start
// (TCP behind PrivateNetwork=yes, a port taken, a socket directory
// missing, a textfile directory the daemon cannot write) is an error
// entry, then tried again (every metricsRetry, doubling up to
// metricsRetryMax; the textfile at each interval) while the checking
// goes on. Only a setting that can never work (unix: with a relative
// path) is an error here.
func startMetrics(ctx context.Context, o metricsOptions, d *daemon.Daemon, log *zap.Logger) (func(), error) {
	reg := d.Metrics().Registry
	var stops []func()
	if o.listen != "" {
		if p, ok := strings.CutPrefix(o.listen, "unix:"); ok && !filepath.IsAbs(p) {
			return nil, fmt.Errorf("metrics: --metrics-listen unix:%s: want an absolute path, like unix:/run/integrityd/metrics.sock", p)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		done := make(chan struct{})
		finished := make(chan struct{})
		// The first try now, so that a working endpoint is there when
		// startMetrics returns; the retries in the goroutine.
		delay := metricsRetry
		cannot := func(err error) {
			log.Error(fmt.Sprintf("metrics endpoint cannot start, trying again in %v; the checking goes on: %v", delay, err),
				zap.String("address", o.listen), zap.Error(err))
		}
		ln, err := listenMetrics(o.listen, log)
		if err == nil {
			log.Info("serving metrics", zap.String("address", o.listen))
		} else {
			cannot(err)
		}
		go func() {
			defer close(finished)
			for err != nil {
				select {
				case <-time.After(delay):
				case <-done:
					return
				case <-ctx.Done():
					return
				}
				delay = min(2*delay, metricsRetryMax)
				if ln, err = listenMetrics(o.listen, log); err != nil {
					cannot(err)
					continue
				}
				log.Info("metrics endpoint started after all; serving metrics", zap.String("address", o.listen))
			}
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", zap.Error(err))
			}
		}()
		stops = append(stops, func() { close(done); srv.Close(); <-finished })
	}
	if o.textfile != "" {
		path := o.textfile
		var last []byte
		write := func() error {
			data, err := textfile(reg)
			if err == nil && !bytes.Equal(data, last) {
				err = writeTextfile(path, data)
			}
			if err != nil {
				return err
			}
			last = data
			return nil
		}
		// One entry when writing starts failing (the first one at start,
		// naming the directory and the fix), one when it works again.
		failing := false
		try := func() {
			err := write()
			switch {
			case err != nil && !failing:
				log.Error(fmt.Sprintf("cannot write the metrics textfile, trying again every %v; the checking goes on: %v", o.interval, err),
					zap.String("file", path), zap.Error(err))
				failing = true
			case err == nil && failing:
				log.Info("metrics textfile written again", zap.String("file", path))
				failing = false
			}
		}
		try()
		done := make(chan struct{})
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			t := time.NewTicker(o.interval)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					try()
				case <-done:
					return
				case <-ctx.Done():
					return
				}
			}
		}()
		stops = append(stops, func() { close(done); <-finished; try() })
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}, nil
}

// textfile renders the metrics in the text exposition format.
func textfile(g prometheus.Gatherer) ([]byte, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// listenMetrics listens on addr: unix:/path (mode 0660, a stale socket
// removed) or host:port. A TCP address in a network namespace with only
// lo (the packaged unit's PrivateNetwork=yes) is unreachable from outside:
// a failure says so, and so does a warning when it works.
func listenMetrics(addr string, log *zap.Logger) (net.Listener, error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("metrics: --metrics-listen unix:%s: want an absolute path, like unix:/run/integrityd/metrics.sock", p)
		}
		return listenUnix("metrics", p)
	}
	private := onlyLoopback()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if private {
			return nil, fmt.Errorf("metrics: listen on %s: %w; %s", addr, err, privateNetworkHint)
		}
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	if private {
		log.Warn("metrics served on "+addr+" inside a private network: "+privateNetworkHint, zap.String("address", addr))
	}
	return ln, nil
}

// privateNetworkHint says what to do when the daemon has no network.
const privateNetworkHint = "this process sees no network interface but lo (the packaged unit has PrivateNetwork=yes), " +
	"so TCP metrics are unreachable from outside: use --metrics-listen unix:/run/integrityd/metrics.sock or --metrics-textfile, " +
	"or lift it with a drop-in (systemctl edit integrityd: [Service] PrivateNetwork=no), see README"

// onlyLoopback reports whether every network interface is a loopback one.
func onlyLoopback() bool {
	ifs, err := net.Interfaces()
	if err != nil || len(ifs) == 0 {
		return false
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return false
		}
	}
	return true
}

// writeTextfile writes the metrics textfile atomically (a temporary file
// in the same directory, renamed over it), readable by node_exporter;
// an error names the directory and, for a read-only one, the unit's fix.
func writeTextfile(path string, data []byte) error {
	err := fsutil.WriteFileAtomic(path, data, 0o644)
	if err == nil {
		return nil
	}
	dir := filepath.Dir(path)
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("metrics textfile: directory %s is read-only for integrityd (under the packaged unit's ProtectSystem=strict, add ReadWritePaths=%s in a drop-in, see README): %w", dir, dir, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("metrics textfile: directory %s is not writable by uid %d (make it writable by user or group integrityd): %w", dir, os.Geteuid(), err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("metrics textfile: directory %s does not exist: %w", dir, err)
	}
	return fmt.Errorf("metrics textfile in %s: %w", dir, err)
}
