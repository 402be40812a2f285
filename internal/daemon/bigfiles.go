package daemon

import (
	"context"

	"go.uber.org/zap"

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
	ucov   *verify.Coverage
	ukey   string
	ufiles verify.UnsignedFiles
}

// hashLater rechecks key of s off the loop.
func (l *loop) hashLater(ctx context.Context, s *scope, key string) {
	sc, exp, next := s.sc, s.exp, s.next
	l.offLoop(ctx, bigResult{k: bigKey{sc.Name, key}, sc: s, exp: exp}, func(r *bigResult) {
		r.findings, r.links, r.err = sc.Recheck(ctx, exp, key)
		if r.err == nil && next != nil {
			var n []finding.Finding
			if n, _, r.err = sc.Recheck(ctx, next, key); r.err == nil {
				r.findings = wrongUnderBoth(r.findings, n)
			}
		}
	})
}

// offLoop runs work on r in a goroutine (at most bigWorkers at once) and
// hands r to the loop (bigFinished). One runs per big file at a time; a
// change meanwhile makes it run again once done (bigAgain).
func (l *loop) offLoop(ctx context.Context, r bigResult, work func(*bigResult)) {
	if l.bigRunning[r.k] {
		l.bigAgain[r.k] = true
		return
	}
	l.bigRunning[r.k] = true
	l.changed = true
	sem, done := l.bigSem, l.bigDone
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

// bigFinished takes the recheck of a big file.
func (l *loop) bigFinished(ctx context.Context, r bigResult) {
	delete(l.bigRunning, r.k)
	if r.k.scope == verify.UnsignedScope {
		l.changed = true
		l.unsignedFinished(ctx, r)
		return
	}
	again := l.bigAgain[r.k]
	delete(l.bigAgain, r.k)
	l.changed = true
	s := r.sc
	if l.scopes[r.k.scope] != s || s.exp != r.exp {
		// The scope was replaced or its manifest changed meanwhile.
		if l.scopes[r.k.scope] == s && s.exp != nil {
			l.hashLater(ctx, s, r.k.key)
		}
		return
	}
	if l.bigStale[r.k] {
		// Looked at again since (renamed, removed, shrunk): check it as
		// it is now rather than take an older view.
		delete(l.bigStale, r.k)
		l.recheck(ctx, s, r.k.key)
		return
	}
	switch {
	case r.err != nil && ctx.Err() != nil:
		return
	case r.err != nil:
		l.log.Error("recheck of a big file failed; rechecking the scope", zap.String("integrity_scope", s.sc.Name),
			zap.String("path", r.k.key), zap.Error(r.err))
		l.hold(s)
	default:
		l.touch(s, r.k.key)
		s.setLinks(r.k.key, r.links)
		l.linksChanged = true
		l.replace(s, r.k.key, r.findings)
	}
	if again {
		l.hashLater(ctx, s, r.k.key)
	}
}
