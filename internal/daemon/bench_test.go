package daemon

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/integrityd/integrityd/internal/demo"
)

// BenchmarkAlertLatency measures the time from a single-file change to its
// journal entry (an alert, then the "resolved" entry when it is restored),
// and reports p50 and p99.
func BenchmarkAlertLatency(b *testing.B) {
	root := filepath.Join(b.TempDir(), "nc")
	if err := demo.Build(context.Background(), root); err != nil {
		b.Fatal(err)
	}
	entries := make(chan time.Time, 16)
	discard := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)
	log := zap.New(discard, zap.Hooks(func(e zapcore.Entry) error {
		if e.Message == "integrity check failed" || e.Message == "integrity finding resolved" {
			entries <- time.Now()
		}
		return nil
	}))
	startWith(b, testConfig(root, b.TempDir()), log)
	file := filepath.Join(root, "index.php")
	orig := []byte(demo.Files["index.php"])
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		content := orig
		if i%2 == 0 {
			content = []byte("<?php system($_GET['c']);\n")
		}
		start := time.Now()
		if err := os.WriteFile(file, content, 0o644); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-entries:
			lat = append(lat, at.Sub(start))
		case <-time.After(10 * time.Second):
			b.Fatal("no journal entry 10 s after a change")
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkBurst measures how long the daemon takes to absorb 10,000
// modified files (from the first write until everything is checked).
func BenchmarkBurst(b *testing.B) {
	root, files := stormTree(b, 10000)
	cfg := testConfig(root, b.TempDir())
	cfg.Settle = time.Second
	r := startWith(b, cfg, zap.NewNop())
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		for _, f := range files {
			h, err := os.OpenFile(f, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			h.Write([]byte("x"))
			h.Close()
		}
		written := time.Since(start)
		if err := r.sync.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(written.Seconds(), "write-s")
		b.ReportMetric(time.Since(start).Seconds()-cfg.Settle.Seconds(), "absorb-minus-settle-s")
	}
}
