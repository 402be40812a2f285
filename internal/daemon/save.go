package daemon

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/state"
)

// saver writes the latest snapshot to the state directory, off the loop
// (a slow disk never delays an alert). A failure is logged once until
// saving works again (messages vary with temporary names) and retried.
type saver struct {
	d       *Daemon
	poke    chan struct{}
	mu      sync.Mutex
	saved   uint64 // Version of the snapshot last written
	failing bool
	// rounds counts the saves done (each tick or poke, written or not):
	// tests wait on it rather than on the clock.
	rounds atomic.Uint64
}

func newSaver(d *Daemon) *saver { return &saver{d: d, poke: make(chan struct{}, 1)} }

// soon asks for a save now rather than at the next tick.
func (sv *saver) soon() {
	select {
	case sv.poke <- struct{}{}:
	default:
	}
}

// save writes the latest snapshot if it is newer than the last written.
func (sv *saver) save() {
	d := sv.d
	if d.cfg.StateDir == "" {
		return
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	defer sv.rounds.Add(1)
	s := d.snap.Load()
	if s.Version == sv.saved {
		return
	}
	st := s.meta
	st.PID = os.Getpid()
	st.Updated = time.Now()
	if err := state.SaveFindings(d.cfg.StateDir, &st, s.sorted()); err != nil {
		if !sv.failing {
			d.log.Warn("cannot save state in "+finding.EscapeControl(d.cfg.StateDir)+"; still watching, will retry: "+finding.EscapeControl(err.Error()), zap.String("message_id", kind.IDStateError), zap.Error(err))
		}
		sv.failing = true
		return
	}
	if sv.failing {
		d.log.Info("state saved again in "+finding.EscapeControl(d.cfg.StateDir), zap.String("dir", d.cfg.StateDir))
	}
	sv.failing, sv.saved = false, s.Version
}

// run saves every SaveInterval and when poked, and once more when ctx is
// done.
func (sv *saver) run(ctx context.Context) {
	t := time.NewTicker(sv.d.cfg.SaveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sv.save()
			return
		case <-t.C:
		case <-sv.poke:
		}
		sv.save()
	}
}
