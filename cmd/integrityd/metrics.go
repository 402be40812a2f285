package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/daemon"
	"github.com/integrityd/integrityd/internal/verify"
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

// startMetrics serves or writes the daemon's metrics as o says. The
// returned function stops it (and writes the textfile a last time).
func startMetrics(ctx context.Context, o metricsOptions, d *daemon.Daemon, log *zap.Logger) (func(), error) {
	reg := d.Metrics().Registry
	var stops []func()
	if o.listen != "" {
		network, addr := "tcp", o.listen
		if p, ok := strings.CutPrefix(addr, "unix:"); ok {
			network, addr = "unix", p
			if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
				os.Remove(p) // left by an earlier run
			}
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", zap.Error(err))
			}
		}()
		log.Info("serving metrics", zap.String("address", o.listen))
		stops = append(stops, func() { srv.Close() })
	}
	if o.textfile != "" {
		path := o.textfile
		var last []byte
		write := func() {
			data, err := textfile(reg)
			if err == nil && !bytes.Equal(data, last) {
				err = verify.WriteFileAtomic(path, data, 0o644)
			}
			if err != nil {
				log.Warn("cannot write the metrics textfile", zap.String("file", path), zap.Error(err))
				return
			}
			last = data
		}
		done := make(chan struct{})
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			t := time.NewTicker(o.interval)
			defer t.Stop()
			for {
				write()
				select {
				case <-t.C:
				case <-done:
					return
				case <-ctx.Done():
					return
				}
			}
		}()
		stops = append(stops, func() { close(done); <-finished; write() })
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
