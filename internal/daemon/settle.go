package daemon

import (
	"context"
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/verify"
)

// A scope held while it is being updated (hold) is checked whole once it
// has been quiet for Settle: its manifest read again, every file hashed.
// That check runs off the loop, like a full scan, so that an alert
// elsewhere does not wait for the hashing of core; changes to the scope
// meanwhile are checked by the loop as they come (against both
// manifests while a new one waits) and their keys win over the check's
// view, as in a full scan's merge.

// stalledUpdate is how long a scope whose manifest is missing during an
// update by the updater waits for its next whole check.
const stalledUpdate = 30 * time.Second

// settleCheck is the whole check of a held scope running off the loop:
// what the scope's manifests and settle time were when it started, and
// the keys the loop checked itself meanwhile.
type settleCheck struct {
	exp, next *verify.Expected
	settleAt  time.Time
	touched   map[string]bool
}

// settleResult is a settle check's result, for the loop.
type settleResult struct {
	s     *scope
	check *settleCheck
	r     scopeScan
}

// settled starts the whole check of each scope whose settle time has
// come and that is not being checked already.
func (rk *rechecker) settled(ctx context.Context) {
	l := rk.l
	now := time.Now()
	for _, s := range l.scopes {
		if s.settle.IsZero() || s.settle.After(now) || s.checking != nil {
			continue
		}
		c := &settleCheck{exp: s.exp, next: s.next, settleAt: s.settle, touched: map[string]bool{}}
		s.checking = c
		sc, trust, done := s.sc, l.trust, rk.settleDone
		go func() {
			r := checkScope(ctx, sc, trust, bigFile)
			select {
			case done <- settleResult{s, c, r}:
			case <-ctx.Done():
			}
		}()
	}
}

// settleFinished takes the whole check of a held scope: its findings but
// at the keys the loop checked meanwhile (checked once more against the
// manifest now in force). A scope whose manifests changed meanwhile (its
// manifest rewritten again, or unverifiable) is checked again once
// quiet; one that changed otherwise meanwhile stays held for another
// check.
func (rk *rechecker) settleFinished(ctx context.Context, res settleResult) {
	l := rk.l
	s, c, r := res.s, res.check, res.r
	s.checking = nil
	l.rec.changed = true
	if l.scopes[s.sc.Name] != s || r.err != nil {
		return // dropped or replaced meanwhile, or cancelled
	}
	if s.exp != c.exp || s.next != c.next {
		if s.settle.IsZero() {
			rk.hold(s)
		}
		return
	}
	if r.exp == nil && l.stage.covers(s) {
		// Still no manifest in the middle of an update by the updater:
		// checked against both meanwhile; the whole check again in a
		// while (not at once, again and again, if the updater stalls).
		rk.hold(s)
		s.settle, s.holdSince = time.Now().Add(stalledUpdate), time.Now()
		return
	}
	keys := topmost(slices.Collect(maps.Keys(c.touched)))
	r.findings, r.links = l.sched.overlay(s, r, keys)
	r.big = slices.DeleteFunc(r.big, func(k string) bool {
		return slices.ContainsFunc(keys, func(t string) bool { return under(k, t) })
	})
	r.findings, r.links = rk.keepBig(s, r.big, r.findings, r.links)
	l.sched.touch(s, "")
	rk.adoptAs(s, r, true)
	if r.exp != nil {
		l.stage.adopted(s, r.sum)
	}
	for _, k := range keys {
		if s.exp == nil || !rk.recheck(ctx, s, k) {
			break
		}
	}
	for _, k := range r.big {
		rk.hashLater(ctx, s, k)
	}
	if s.settle.Equal(c.settleAt) {
		s.settle = time.Time{}
	}
	l.log.Info("scope checked after changes", zap.String("integrity_scope", s.sc.Name), zap.Int("files", s.files()))
}

// nextSettle is when the next scope's settle time comes (zero: none is
// held, or every held one is being checked).
func (rk *rechecker) nextSettle() time.Time {
	var next time.Time
	for _, s := range rk.l.scopes {
		if !s.settle.IsZero() && s.checking == nil && (next.IsZero() || s.settle.Before(next)) {
			next = s.settle
		}
	}
	return next
}
