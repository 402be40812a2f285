package daemon

import (
	"context"
	"slices"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/verify"
)

// Big files are hashed off the loop: a 20 GB file (an attacker's sparse
// file, a symlink to a huge one) would otherwise hold every other alert
// for as long as it takes to read. A recheck skips regular files larger
// than bigFile and keeps what was known of them; each is then rechecked
// on its own in a goroutine (at most bigWorkers at once), and the loop
// takes the result.
const (
	bigFile    = 32 << 20 // bytes: about 30 ms of hashing
	bigWorkers = 2
)

// bigKey names one big file of one scope.
type bigKey struct{ scope, key string }

// bigResult is the recheck of a big file, done off the loop.
type bigResult struct {
	k        bigKey
	sc       *scope
	exp      *verify.Expected // what it was checked against
	findings []finding.Finding
	links    []string
	err      error
	// A big file of the unsigned coverage (unsigned.go): the coverage it
	// was hashed with, its key and what is there.
	ucov   *baseline.Coverage
	ukey   string
	ufiles baseline.Files
	// finish takes the result on the loop (rechecker.scopeFinished,
	// unsignedCode.finished).
	finish func(context.Context, bigResult)
}

// hashLater rechecks key of s off the loop.
func (rk *rechecker) hashLater(ctx context.Context, s *scope, key string) {
	sc, exp, next := s.sc, s.exp, s.next
	rk.l.rec.changed = true // the snapshot says a file is being hashed
	rk.big.run(ctx, bigResult{k: bigKey{sc.Name, key}, sc: s, exp: exp, finish: rk.scopeFinished}, func(r *bigResult) {
		r.findings, r.links, r.err = sc.Recheck(ctx, exp, key)
		if r.err == nil && next != nil {
			var n []finding.Finding
			if n, _, r.err = sc.Recheck(ctx, next, key); r.err == nil {
				r.findings = wrongUnderBoth(r.findings, n)
			}
		}
	})
}

// offLoop is the big files being hashed off the loop: at most bigWorkers
// at once, one at a time per file; a change meanwhile makes it run again
// once done (again), a recheck of the file meanwhile makes its result
// older than what the loop knows (stale). Only the loop touches the
// maps; the workers hand their result on done.
type offLoop struct {
	running, again, stale map[bigKey]bool
	sem                   chan struct{}
	done                  chan bigResult
}

func newOffLoop() offLoop {
	return offLoop{running: map[bigKey]bool{}, again: map[bigKey]bool{}, stale: map[bigKey]bool{},
		sem: make(chan struct{}, bigWorkers), done: make(chan bigResult)}
}

// run runs work on r in a goroutine and hands r on done, or notes that
// it must run again when one runs for the same file.
func (o *offLoop) run(ctx context.Context, r bigResult, work func(*bigResult)) {
	if o.running[r.k] {
		o.again[r.k] = true
		return
	}
	o.running[r.k] = true
	sem, done := o.sem, o.done
	go func() {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
			work(&r)
		case <-ctx.Done():
			r.err = ctx.Err()
		}
		select {
		case done <- r:
		case <-ctx.Done():
		}
	}()
}

// finished notes that k's result came; it reports whether k must run
// again.
func (o *offLoop) finished(k bigKey) (again bool) {
	again = o.again[k]
	delete(o.running, k)
	delete(o.again, k)
	return again
}

// takeStale reports whether k was looked at again since it started,
// and forgets it.
func (o *offLoop) takeStale(k bigKey) bool {
	stale := o.stale[k]
	delete(o.stale, k)
	return stale
}

// looked notes that the loop checked key of scope and below itself, but
// for the files in except: the results on their way there are older.
func (o *offLoop) looked(scope, key string, except []string) {
	for k := range o.running {
		if k.scope == scope && under(k.key, key) && !slices.Contains(except, k.key) {
			o.stale[k] = true
		}
	}
}

// busy reports whether a file is being hashed.
func (o *offLoop) busy() bool { return len(o.running) > 0 }

// bigFinished takes the recheck of a big file: the snapshot shows one
// hashed less, and what asked for it (r.finish) takes the result.
func (rk *rechecker) bigFinished(ctx context.Context, r bigResult) {
	rk.l.rec.changed = true
	r.finish(ctx, r)
}

// scopeFinished takes the recheck of a big file of a signed scope
// (hashLater).
func (rk *rechecker) scopeFinished(ctx context.Context, r bigResult) {
	l := rk.l
	again := rk.big.finished(r.k)
	s := r.sc
	if l.scopes[r.k.scope] != s || s.exp != r.exp {
		// The scope was replaced or its manifest changed meanwhile.
		if l.scopes[r.k.scope] == s && s.exp != nil {
			rk.hashLater(ctx, s, r.k.key)
		}
		return
	}
	if rk.big.takeStale(r.k) {
		// Looked at again since (renamed, removed, shrunk): check it as
		// it is now rather than take an older view.
		rk.recheck(ctx, s, r.k.key)
		return
	}
	switch {
	case r.err != nil && ctx.Err() != nil:
		return
	case r.err != nil:
		l.log.Error("recheck of a big file failed; rechecking the scope", zap.String("integrity_scope", s.sc.Name),
			zap.String("path", r.k.key), zap.Error(r.err))
		rk.hold(s)
	default:
		l.sched.touch(s, r.k.key)
		s.setLinks(r.k.key, r.links)
		l.wa.linksChanged = true
		l.rec.replace(s, r.k.key, r.findings)
	}
	if again {
		rk.hashLater(ctx, s, r.k.key)
	}
}
