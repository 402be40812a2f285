package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/integrityd/integrityd/internal/verify"
)

// progress shows files and bytes checked, the rate and an ETA on stderr
// while a one-shot check runs, when stderr is a terminal; it is silent
// otherwise. p counts what is hashed; total is the number of files expected (0 if unknown). stop
// may be called more than once.
func progress(stderr io.Writer, p *verify.Progress, total func() int64) (stop func()) {
	f, ok := stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		files0, bytes0 := p.Files(), p.Bytes()
		want := total()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
			}
			files, bytes := p.Files()-files0, p.Bytes()-bytes0
			secs := time.Since(start).Seconds()
			line := fmt.Sprintf("checked %d files, %.1f MB, %.1f MB/s", files, float64(bytes)/1e6, float64(bytes)/1e6/secs)
			if want > 0 && files > 0 && files < want {
				eta := time.Duration(float64(want-files) / (float64(files) / secs) * float64(time.Second))
				line += fmt.Sprintf(", %d%%, ETA %s", files*100/want, eta.Round(time.Second))
			}
			fmt.Fprint(f, "\r\033[K"+line)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

// expectedFiles counts the files the scopes' manifests list (for the ETA).
func expectedFiles(scopes []*verify.Scope, t *verify.Trust) func() int64 {
	return func() int64 {
		var n int64
		for _, sc := range scopes {
			if m, ex := sc.LoadManifest(t); ex == nil {
				n += int64(sc.NewExpected(m).Len())
			}
		}
		return n
	}
}
