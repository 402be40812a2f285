package daemon

import (
	"context"
	"time"

	"github.com/integrityd/integrityd/internal/verify"
)

// scanQueue holds the full scans: the one running (in its own goroutine,
// its result on done), the one queued behind it (requests made meanwhile
// share it), what the last one cost (the pace of re-verification
// passes), and when the periodic one is due (zero: a scan is on its way,
// whose merge sets the next). Only the loop touches it.
type scanQueue struct {
	cur, next *scanJob
	cost      int64
	done      chan *scanResult
	stop      context.CancelFunc
	due       time.Time
}

func newScanQueue() scanQueue { return scanQueue{done: make(chan *scanResult, 1)} }

// queue queues a scan behind the one running and reports true, or
// reports false when none runs: the caller starts one. A running
// re-verification pass gives way (the next one starts over).
func (q *scanQueue) queue(reason string, done chan struct{}, reload bool) bool {
	q.due = time.Time{} // the periodic one waits for this one's end
	if q.cur != nil && q.cur.paced {
		q.cancel()
	}
	if q.cur == nil {
		return false
	}
	if q.next == nil {
		q.next = &scanJob{reason: reason}
	}
	if done != nil {
		q.next.waiters = append(q.next.waiters, done)
	}
	q.next.reload = q.next.reload || reload
	return true
}

// start runs j in its own goroutine, with trust as the trust to keep
// when the trust files cannot be loaded.
func (q *scanQueue) start(ctx context.Context, j *scanJob, trust *verify.Trust) {
	sctx, cancel := context.WithCancel(ctx)
	q.cur, q.stop = j, cancel
	done := q.done
	go func() { done <- runScan(sctx, j, trust) }()
}

// cancel stops the running scan and waits for it.
func (q *scanQueue) cancel() {
	if q.cur == nil {
		return
	}
	q.stop()
	<-q.done
	q.cur = nil
}

// finished notes that the running scan handed its result.
func (q *scanQueue) finished() {
	q.stop()
	q.cur = nil
}

// queued takes the scan queued (its reason, waiters and reload: the
// caller makes the job), or nil.
func (q *scanQueue) queued() *scanJob {
	next := q.next
	q.next = nil
	return next
}

// running reports whether a scan runs or is queued that is not a
// background pass.
func (q *scanQueue) running() bool { return (q.cur != nil && !q.cur.paced) || q.next != nil }

// touch notes keys of scope that the loop checked itself while a scan
// runs: the scan's view of them is older.
func (q *scanQueue) touch(scope string, keys ...string) {
	if q.cur == nil {
		return
	}
	set := q.cur.touched[scope]
	if set == nil {
		set = map[string]bool{}
		q.cur.touched[scope] = set
	}
	for _, k := range keys {
		set[k] = true
	}
}
