package daemon

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync/atomic"
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
	if err := buildDemoTree(context.Background(), root); err != nil {
		b.Fatal(err)
	}
	entries, log := entryTimes()
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
		lat = append(lat, writeToEntry(b, file, content, entries))
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

// BenchmarkFindingMemory measures the heap a finding costs the daemon:
// 20,000 signed files are modified (20,000 INVALID_HASH, each with both
// hashes), and the live heap after a GC is compared with before.
func BenchmarkFindingMemory(b *testing.B) {
	const n = 20000
	root, files := stormTree(b, n)
	cfg := testConfig(root, b.TempDir())
	r := startWith(b, cfg, zap.NewNop())
	ctx := context.Background()
	// The live heap, at its lowest of a few looks: a state save in
	// flight holds the JSON of every finding for a moment.
	heap := func() uint64 {
		low := ^uint64(0)
		for range 5 {
			var m runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m)
			low = min(low, m.HeapAlloc)
			time.Sleep(50 * time.Millisecond)
		}
		return low
	}
	for i := 0; i < b.N; i++ {
		for i, f := range files { // heal (after the first round)
			os.WriteFile(f, []byte(fmt.Sprintf("<?php // %d\n", i)), 0o644)
		}
		if err := r.sync.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		if got := r.d.Snapshot().Count(); got != 0 {
			b.Fatalf("%d findings before the tamper, want 0", got)
		}
		before := heap()
		for _, f := range files {
			if err := appendTo(f, "// tampered\n"); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.sync.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		if got := r.d.Snapshot().Count(); got != n {
			b.Fatalf("%d findings, want %d", got, n)
		}
		after := heap()
		b.ReportMetric(float64(int64(after)-int64(before))/n, "bytes/finding")
	}
}

// BenchmarkAlertLatencyDuringRescan measures single-file change-to-alert
// latency while full rescans of a 30,000-file tree run back to back.
func BenchmarkAlertLatencyDuringRescan(b *testing.B) {
	root, _ := stormTree(b, 30000)
	entries, log := entryTimes()
	r := startWith(b, testConfig(root, b.TempDir()), log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rescans atomic.Int64
	go func() {
		for ctx.Err() == nil {
			if r.d.Rescan(ctx) == nil {
				rescans.Add(1)
			}
		}
	}()
	file := filepath.Join(root, "index.php")
	orig := []byte(demo.Files["index.php"])
	var lat []time.Duration
	scanning := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		content := orig
		if i%2 == 0 {
			content = []byte("<?php system($_GET['c']);\n")
		}
		time.Sleep(time.Duration(rand.Intn(50)) * time.Millisecond) // land anywhere in a scan
		if r.d.Snapshot().Scanning {
			scanning++
		}
		lat = append(lat, writeToEntry(b, file, content, entries))
	}
	b.StopTimer()
	cancel()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(scanning)/float64(b.N), "during-scan-ratio")
	b.ReportMetric(float64(rescans.Load()), "rescans")
}

// entryTimes is a logger that sends the time of each alert and "resolved"
// entry to the channel.
func entryTimes() (chan time.Time, *zap.Logger) {
	entries := make(chan time.Time, 16)
	discard := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)
	return entries, zap.New(discard, zap.Hooks(func(e zapcore.Entry) error {
		if findingMessage(e.Message) {
			entries <- time.Now()
		}
		return nil
	}))
}

// writeToEntry writes content to file and returns the time until the next
// journal entry.
func writeToEntry(b *testing.B, file string, content []byte, entries <-chan time.Time) time.Duration {
	start := time.Now()
	if err := os.WriteFile(file, content, 0o644); err != nil {
		b.Fatal(err)
	}
	select {
	case at := <-entries:
		return at.Sub(start)
	case <-time.After(10 * time.Second):
		b.Fatal("no journal entry 10 s after a change")
	}
	return 0
}
