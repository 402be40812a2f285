package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/integrityd/integrityd/internal/verify"
)

// Re-verification: inotify does not see everything (a write through a
// shared mapping, through a hard link from an unwatched directory, to the
// raw device, in a directory it could not watch). The daemon therefore
// hashes the whole install again and again in the background, one file at
// a time, each pass paced to take half of ReverifyPeriod: every file is
// hashed at least once per period, so any change is found within it. A
// pass never runs as a spike: it reads at the rate that spreads the last
// full scan's work over its time, between minReverifyRate and
// maxReverifyRate.
const (
	minReverifyRate = 1 << 20  // bytes/s: a small install still goes round quickly
	maxReverifyRate = 64 << 20 // bytes/s: the I/O bound (a large install takes longer than the period: the docs say so)
)

// pacer spreads work at rate bytes per second (verify.Checker.Pace).
type pacer struct {
	rate float64
	mu   sync.Mutex
	next time.Time // when the work handed so far is due
}

func (p *pacer) wait(ctx context.Context, n int64) error {
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	d := p.next.Sub(now)
	p.mu.Unlock()
	if d < 20*time.Millisecond { // no sleeps shorter than that
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reverifyRate is the pace of a pass for a full scan that cost cost
// (bytes, and verify.PaceFileCost per file) over half the period.
func (sq *scheduler) reverifyRate() float64 {
	rate := float64(sq.q.cost) / (sq.l.cfg.ReverifyPeriod / 2).Seconds()
	return min(max(rate, minReverifyRate), maxReverifyRate)
}

// newPass prepares a re-verification pass: a full scan whose scopes hash
// with one worker and the pacer.
func (sq *scheduler) newPass() *scanJob {
	l := sq.l
	j := sq.newJob("re-verification")
	in := *l.in
	in.Checker = verify.Checker{Workers: 1, Progress: &l.d.progress, Pace: (&pacer{rate: sq.reverifyRate()}).wait}
	j.in, j.paced = &in, true
	for i, sc := range j.scopes {
		// The same scope with the pass's checker: what Apps found (the
		// note of an app's other copies, DUPLICATE_APP) is kept.
		j.scopes[i] = sc.ForInstall(&in)
	}
	return j
}

// reverifying reports whether passes run.
func (sq *scheduler) reverifying() bool {
	return sq.l.cfg.ReverifyPeriod > 0
}
