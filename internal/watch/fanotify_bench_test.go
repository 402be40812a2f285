package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkWriters measures what who-data costs: b.N writes (open, write,
// close: one of 1,000 files in turn), without fanotify ("no-fanotify":
// no group at all, the cost of the writes themselves) and with a Writers
// recording them ("fanotify"). Reported: writes/s and events/s handled,
// and the CPU time (user+system, the writers' and this process's
// reader) per 1,000 writes; the difference between the two is the cost.
//
//	go test -run '^$' -bench Writers -benchtime 20000x ./internal/watch
func BenchmarkWriters(b *testing.B) {
	for _, withWriters := range []bool{false, true} {
		name := "no-fanotify"
		if withWriters {
			name = "fanotify"
		}
		b.Run(name, func(b *testing.B) {
			root := b.TempDir()
			var files []string
			for i := range 1000 {
				p := filepath.Join(root, fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%d.php", i))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					b.Fatal(err)
				}
				files = append(files, p)
			}
			var w *Writers
			if withWriters {
				var err error
				if w, err = OpenWriters(root, 0); err != nil {
					b.Skipf("fanotify refused here: %v", err)
				}
				ctx := b.Context()
				go w.Run(ctx)
				defer w.Close()
			}
			payload := []byte("<?php // x\n")
			cpu0 := cpuTime()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				f, err := os.OpenFile(files[i%len(files)], os.O_WRONLY|os.O_TRUNC, 0)
				if err != nil {
					b.Fatal(err)
				}
				f.Write(payload)
				f.Close()
			}
			var events uint64
			if w != nil {
				w.Lookup(files[0]) // drains what is queued
				events = w.Stats().Events
				if lost := w.Stats().Overflow; lost > 0 {
					b.Logf("%d queue overflows", lost)
				}
			}
			el := time.Since(start)
			b.StopTimer()
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(b.N)/el.Seconds(), "writes/s")
			b.ReportMetric(float64(events)/el.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N)*1000, "cpu-ms/1000writes")
			if w != nil {
				if _, ok := w.Lookup(files[(b.N-1)%len(files)]); !ok {
					b.Errorf("the last file written has no writer (stats %+v)", w.Stats())
				}
			}
		})
	}
}

// cpuTime is this process's user and system time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
