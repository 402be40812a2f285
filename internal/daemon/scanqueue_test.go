package daemon

import "testing"

func TestScanQueue(t *testing.T) {
	q := newScanQueue()
	if q.queue("first", nil, false) {
		t.Fatal("queued behind nothing: want the caller to start one")
	}
	q.touch("core", "a.php") // no scan: nothing to note, no panic
	q.cur = &scanJob{reason: "running", touched: map[string]map[string]bool{}}
	q.stop = func() {}
	w1, w2 := make(chan struct{}), make(chan struct{})
	if !q.queue("requested", w1, false) || !q.queue("periodic", w2, true) {
		t.Fatal("not queued behind the running scan")
	}
	if !q.running() {
		t.Error("running() false with a scan running and one queued")
	}
	q.touch("core", "a.php", "lib")
	q.touch("core", "a.php")
	if got := q.cur.touched["core"]; len(got) != 2 || !got["a.php"] || !got["lib"] {
		t.Errorf("touched = %v", got)
	}
	q.finished()
	next := q.queued()
	if next == nil || next.reason != "requested" || len(next.waiters) != 2 || !next.reload {
		t.Fatalf("queued = %+v: want one job for both requests, the first's reason, reload set", next)
	}
	if q.queued() != nil || q.running() {
		t.Error("the queue is not empty after taking its job")
	}

	// A background pass gives way to a request: it is cancelled and
	// waited for, and the request is the caller's to start.
	q.cur = &scanJob{paced: true, touched: map[string]map[string]bool{}}
	stopped := false
	q.stop = func() { stopped = true; q.done <- &scanResult{} }
	if q.running() {
		t.Error("a background pass counts as running")
	}
	if q.queue("trust anchors changed", nil, false) || !stopped || q.cur != nil {
		t.Errorf("pass not cancelled for a request (stopped %v, cur %v)", stopped, q.cur)
	}
}
