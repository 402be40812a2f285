package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/integrityd/integrityd/internal/watch"
)

// syncer lets a test wait until the daemon has handled every change made
// before: it creates a file in the (watched) state directory and waits for
// the batch with its event, which inotify delivers after all earlier ones,
// then for a snapshot published after that batch with no scope settling
// and no full scan running.
type syncer struct {
	d       *Daemon
	mu      sync.Mutex
	seq     int
	waiting map[string]chan uint64 // marker file name -> batch number
	// expected: paths whose batch a test waits for (expectBatch).
	expected map[string]chan struct{}
	// mounts: the changes of the mount table the loop has handled.
	mounts []watch.MountChange
}

// enableSync installs the hooks; call it before Run.
func enableSync(d *Daemon) *syncer {
	s := &syncer{d: d, waiting: map[string]chan uint64{}, expected: map[string]chan struct{}{}}
	d.onMount = func(c watch.MountChange) { // on the loop's goroutine
		s.mu.Lock()
		defer s.mu.Unlock()
		s.mounts = append(s.mounts, c)
	}
	d.onBatch = func(paths []string) { // on the loop's goroutine
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range paths {
			if ch, ok := s.expected[p]; ok {
				close(ch)
				delete(s.expected, p)
			}
			if filepath.Dir(p) != d.cfg.StateDir {
				continue
			}
			if ch, ok := s.waiting[filepath.Base(p)]; ok {
				ch <- d.loop.batches
				delete(s.waiting, filepath.Base(p))
			}
		}
	}
	return s
}

var errRetry = errors.New("retry")

// Sync waits until every change made before it was called has been
// checked and published.
func (s *syncer) Sync(ctx context.Context) error {
	if s.d.cfg.StateDir == "" {
		return errors.New("sync needs a state directory")
	}
	for {
		s.mu.Lock()
		s.seq++
		name := fmt.Sprintf(".sync-%d-%d", os.Getpid(), s.seq)
		ch := make(chan uint64, 1)
		s.waiting[name] = ch
		s.mu.Unlock()
		p := filepath.Join(s.d.cfg.StateDir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		var n uint64
		var err error
		select {
		case n = <-ch:
		case <-time.After(2 * time.Second): // lost in an overflow: try again
			err = errRetry
		case <-ctx.Done():
			err = ctx.Err()
		}
		os.Remove(p)
		s.mu.Lock()
		delete(s.waiting, name)
		s.mu.Unlock()
		if err == errRetry {
			continue
		}
		if err != nil {
			return err
		}
		for {
			if snap := s.d.snap.Load(); snap.Batches >= n && snap.Settling == 0 && snap.Folding == 0 && !snap.Scanning {
				return nil
			}
			select {
			case <-time.After(5 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// expectBatch returns a channel closed once the loop has handled a batch
// with path p (absolute); call it before the change that makes the event.
func (s *syncer) expectBatch(p string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.expected[p] = ch
	return ch
}

// mountsHandled counts the changes of the mount table handled so far
// whose point is point and whose Mounted is mounted.
func (s *syncer) mountsHandled(point string, mounted bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.mounts {
		if c.Point == point && c.Mounted == mounted {
			n++
		}
	}
	return n
}
