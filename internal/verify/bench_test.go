package verify

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/phpcompat"
)

// benchTree writes n files of about size bytes each under root/lib and
// signs root as core with a fresh key; it returns the trust.
func benchTree(b *testing.B, root string, n, size int) *Trust {
	b.Helper()
	block := make([]byte, size)
	rand.Read(block)
	for i := 0; i < n; i++ {
		p := filepath.Join(root, "lib", fmt.Sprintf("d%03d", i%100), fmt.Sprintf("f%05d.php", i))
		if i < 100 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		if err := os.WriteFile(p, block[:1+(i*7919)%size], 0o644); err != nil {
			b.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "core"), 0o755)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "core"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := NewInstall(root, nil, "").Core().Sign(context.Background(), key, certPEM, DigestSHA1); err != nil {
		b.Fatal(err)
	}
	crt := filepath.Join(b.TempDir(), "root.crt")
	os.WriteFile(crt, certPEM, 0o644)
	tr, err := LoadTrust(crt, "")
	if err != nil {
		b.Fatal(err)
	}
	return tr
}

// BenchmarkCheck is a full check of a 3,000-file, ~50 MB core tree (warm
// cache). bench/check.sh runs the 30,000-file, 500 MB comparison with
// sha512sum.
func BenchmarkCheck(b *testing.B) {
	root := b.TempDir()
	const n, size = 3000, 32 << 10
	tr := benchTree(b, root, n, size)
	sc := NewInstall(root, nil, "").Core()
	var bytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := sc.Check(context.Background(), tr)
		if err != nil || !r.Clean() {
			b.Fatalf("check: %v %+v %d findings", err, r.Exception, len(r.Findings))
		}
		bytes = r.Bytes
	}
	b.SetBytes(bytes)
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkParseManifest parses and canonicalises a 30,000-entry manifest,
// about the size of Nextcloud's core signature.json.
func BenchmarkParseManifest(b *testing.B) {
	var e []phpcompat.Entry
	for i := 0; i < 30000; i++ {
		k := phpcompat.NewKey(fmt.Sprintf("apps/app%03d/lib/Controller/File%05d.php", i%300, i))
		k.Pos = i
		e = append(e, phpcompat.Entry{Key: k, Value: fmt.Sprintf("%0128x", i)})
	}
	hashes, err := phpcompat.JSONEncode(e, true, 1)
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"hashes": ` + string(hashes) + `, "signature": "AAAA", "certificate": "x"}`)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := parseManifest(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCancelHuge measures how long a full check busy hashing a
// 20 GiB sparse file takes to return once its context is cancelled
// (ms/stop: the mean, max-ms/stop: the worst); each iteration cancels
// once 64 MiB of it have been hashed.
func BenchmarkCancelHuge(b *testing.B) {
	root := b.TempDir()
	tr := benchTree(b, root, 10, 1<<10)
	sparseFile(b, filepath.Join(root, "lib", "huge.bin"), hugeSize)
	in := NewInstall(root, nil, "")
	prog := &Progress{}
	in.Checker.Progress = prog
	sc := in.Core()
	var total, worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		start := prog.Bytes()
		done := make(chan error, 1)
		go func() {
			_, err := sc.Check(ctx, tr)
			done <- err
		}()
		for prog.Bytes()-start < 64<<20 {
			time.Sleep(100 * time.Microsecond)
		}
		t0 := time.Now()
		cancel()
		err := <-done
		d := time.Since(t0)
		if !errors.Is(err, context.Canceled) {
			b.Fatalf("got %v, want context.Canceled", err)
		}
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/stop")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms/stop")
}

// BenchmarkCheckSmallFiles is a full check of 30,000 files of about 1 KB
// (warm cache), where the cost per file (walk, open, fstat, the
// comparison) shows beside the hash's; peak-live-MB is the heap in use at
// its highest during a check, whole-peak-live-MB the same for checkWhole,
// which holds the manifest's entries (issue 21: the streaming check keeps
// none, its heap is the hashing's buffers and the files in flight, the
// same at any size). "In
// use" is what the last GC found live (/gc/heap/live:bytes), sampled
// every millisecond: garbage not yet collected is not counted.
func BenchmarkCheckSmallFiles(b *testing.B) {
	root := b.TempDir()
	const n, size = 30000, 2 << 10
	tr := benchTree(b, root, n, size)
	sc := NewInstall(root, nil, "").Core()
	// live is the heap the last GC found live.
	live := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	peak := func(f func()) uint64 {
		runtime.GC()
		base := live()
		var top atomic.Uint64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				if l := live(); l > top.Load() {
					top.Store(l)
				}
			}
		}()
		f()
		close(stop)
		<-done
		return top.Load() - min(top.Load(), base)
	}
	var stream, whole uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stream = max(stream, peak(func() {
			r, err := sc.Check(context.Background(), tr)
			if err != nil || !r.Clean() {
				b.Fatalf("check: %v %+v %d findings", err, r.Exception, len(r.Findings))
			}
		}))
	}
	b.StopTimer()
	whole = peak(func() { sc.checkWhole(context.Background(), tr) })
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
	b.ReportMetric(float64(stream)/1e6, "peak-live-MB")
	b.ReportMetric(float64(whole)/1e6, "whole-peak-live-MB")
}
